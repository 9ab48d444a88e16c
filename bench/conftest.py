"""pytest-benchmark comparisons: run with ``pytest bench/ --benchmark-only``.

Every benchmark checks its result against the NumPy float64 reference, warms up outside
the timed region, then is timed by pytest-benchmark. At the end a table prints each
result as samples/s, GFLOP/s, % of this machine's measured GEMM peak, and ratios against
fastnn's NumPy backend and PyTorch measured in the same run.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark", reason="pip install 'fastnn[bench]' for pytest-benchmark")

from fastnn.backends import known_backends, unavailable_reason
from fastnn.benchmarking import machine
from fastnn.benchmarking.ceilings import best_gemm_gflops, memory_bandwidth_gbs
from fastnn.benchmarking.peers import PeerUnavailable
from fastnn.benchmarking.report import format_table
from fastnn.benchmarking.suite import checked
from fastnn.benchmarking.workloads import ARCHITECTURES, CPU_ARCHITECTURES, Workload

_RESULTS: list[dict] = []
_CEILINGS: dict = {}


# Tests list ``backend`` before ``measure``: a backend that cannot run here is skipped
# before pytest-benchmark's fixture is set up (it objects to being set up and not used).
@pytest.fixture(params=known_backends())
def backend(request):
    reason = unavailable_reason(request.param)
    if reason is not None:
        pytest.skip(f"[{request.param}] {reason}")
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=list(CPU_ARCHITECTURES))
def arch(request):
    return ARCHITECTURES[request.param]


@pytest.fixture(scope="session")
def machine_info():
    return machine.describe()


@pytest.fixture(scope="session")
def ceilings():
    """The machine's limits, measured once per run, before the benchmarks."""
    if not _CEILINGS:
        by_library = {d: best_gemm_gflops(d) for d in ("float32", "float64")}
        _CEILINGS["gemm_gflops_by_library"] = by_library
        _CEILINGS["peak_gemm_gflops"] = {d: max(r.values()) for d, r in by_library.items()}
        _CEILINGS["bandwidth_gbs"] = memory_bandwidth_gbs()
    return _CEILINGS


@pytest.fixture
def measure(benchmark, machine_info, ceilings):
    """``measure(build)``: build a workload (skip if its peer is missing), check it against
    the float64 reference, warm it up, then let pytest-benchmark time it."""

    def run(build):
        try:
            workload: Workload = build()
        except PeerUnavailable as exc:
            pytest.skip(str(exc))
        error = checked(workload).info["deviation"]
        workload.run()  # warm-up: JIT compilation, kernel builds, allocator growth
        benchmark.group = f"{workload.arch.name} {workload.kind} {workload.dtype}"
        benchmark.extra_info.update(
            {
                "implementation": workload.implementation,
                "arch": workload.arch.describe(),
                "kind": workload.kind,
                "dtype": workload.dtype,
                "samples": workload.samples,
                "flops": workload.flops,
                "deviation": error,
                **workload.info,
                "cpu": machine_info["cpu"],
                "cores": machine_info["cores"],
                "blas": machine_info["blas"],
                "numba": machine_info["numba"],
                "versions": machine_info["versions"],
                "environment": machine_info["environment"],
            }
        )
        benchmark(workload.run)
        if benchmark.stats is None:  # --benchmark-disable: run once as a smoke test, untimed
            return
        seconds = benchmark.stats.stats.median
        _RESULTS.append(
            {
                "implementation": workload.implementation,
                "arch": workload.arch.name,
                "kind": workload.kind,
                "dtype": workload.dtype,
                "seconds": seconds,
                "seconds_per_step": seconds / workload.steps,
                "samples_per_s": workload.samples / seconds,
                "gflops": workload.flops / seconds / 1e9,
            }
        )

    return run


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    from fastnn.benchmarking.report import table_rows

    report = {"ceilings": _CEILINGS, "results": _RESULTS}
    terminalreporter.section("fastnn: ratios measured side by side in this run")
    peak = _CEILINGS["peak_gemm_gflops"]
    terminalreporter.write_line(
        "peak GEMM (2048^3, the fastest library of the run): "
        + ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in peak.items())
        + f"; memory bandwidth: {_CEILINGS['bandwidth_gbs']:.1f} GB/s"
    )
    terminalreporter.write_line(format_table(table_rows(report)))
