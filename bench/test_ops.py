"""Single backend operations at each benchmark network's layer shapes."""

from __future__ import annotations

import pytest

from fastnn.benchmarking.ops import OPS, op_workload


@pytest.mark.parametrize("op", OPS)
def test_op(backend, arch, dtype, op, measure):
    measure(lambda: op_workload(arch, op, backend, dtype))
