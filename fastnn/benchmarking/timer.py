"""Timing a callable: warm up, calibrate, then the median of several rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def measure(fn: Callable[[], object], min_time: float = 0.5, rounds: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` rounds of about ``min_time / rounds``.

    The first call (JIT compilation, caches, allocator growth) is not timed.
    """
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-9)
    calls = max(1, int(min_time / rounds / once))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)
