"""The machine's limits, measured in the same run: GEMM rate and memory bandwidth."""

from __future__ import annotations

import numpy as np

from .timer import measure


def gemm_gflops(m: int, k: int, n: int, dtype: str = "float32", min_time: float = 0.3) -> float:
    """GFLOP/s of the BLAS for ``(m, k) @ (k, n)`` (``2 m k n`` flops), at its current threads."""
    rng = np.random.default_rng(0)
    A = rng.random((m, k), dtype=np.float64).astype(dtype)
    B = rng.random((k, n), dtype=np.float64).astype(dtype)
    C = np.empty((m, n), dtype=dtype)
    seconds = measure(lambda: np.matmul(A, B, out=C), min_time=min_time)
    return 2.0 * m * k * n / seconds / 1e9


def peak_gemm_gflops(dtype: str = "float32", size: int = 2048) -> float:
    """GFLOP/s of a large square GEMM: the practical peak of this machine's BLAS."""
    return gemm_gflops(size, size, size, dtype, min_time=1.0)


def memory_bandwidth_gbs(megabytes: int = 256) -> float:
    """GB/s of a large array copy, counting the bytes read plus the bytes written."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    seconds = measure(lambda: np.copyto(dst, src), min_time=0.5)
    return 2 * src.nbytes / seconds / 1e9
