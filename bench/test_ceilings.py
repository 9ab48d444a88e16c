"""The machine's own limits, as benchmarks: BLAS GEMM and memory bandwidth."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.benchmarking.workloads import ARCHITECTURES


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape",
    [
        (2048, 2048, 2048),
        *[
            (a.batch, a.sizes[0], a.sizes[1])
            for a in ARCHITECTURES.values()
            if a.name not in ("lecture", "XL")
        ],
    ],
    ids=lambda s: "x".join(map(str, s)) if isinstance(s, tuple) else s,
)
def test_gemm(benchmark, dtype, shape, machine_info):
    m, k, n = shape
    rng = np.random.default_rng(0)
    A, B = rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype)
    C = np.empty((m, n), dtype=dtype)
    np.testing.assert_allclose(np.matmul(A, B, out=C), A.astype(np.float64) @ B, rtol=1e-4)
    benchmark.group = f"ceiling gemm {dtype}"
    benchmark.extra_info.update({"flops": 2.0 * m * k * n, "blas": machine_info["blas"]})
    benchmark(np.matmul, A, B, out=C)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["gflops"] = 2.0 * m * k * n / benchmark.stats.stats.median / 1e9


def test_memory_bandwidth(benchmark):
    src = np.ones(2**25)  # 256 MiB
    dst = np.empty_like(src)
    benchmark.group = "ceiling bandwidth"
    benchmark(np.copyto, dst, src)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["gb_per_s"] = 2 * src.nbytes / benchmark.stats.stats.median / 1e9
    assert (dst == 1).all()
