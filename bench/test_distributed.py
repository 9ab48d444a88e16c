"""Data-parallel overhead as a pytest-benchmark: 2 MPI ranks x 1 thread against 1 process
x 2 threads on M (``fastnn bench --distributed`` prints the same for M and L)."""

from __future__ import annotations

import shutil

import pytest

from fastnn.benchmarking import distributed


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="pip install 'fastnn[mpi]'")
def test_distributed_overhead(benchmark):
    pytest.importorskip("mpi4py", reason="pip install 'fastnn[mpi]'")
    row = benchmark.pedantic(lambda: distributed.measure("M"), rounds=1, iterations=1)
    benchmark.extra_info.update(row)
    print("\n" + distributed.format_table([row]))
