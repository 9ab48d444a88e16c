"""Timing callables: warm up, calibrate, then the median of several interleaved rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def measure(fn: Callable[[], object], min_time: float = 0.5, rounds: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` rounds of about ``min_time / rounds``,
    after an untimed first call (JIT compilation, caches, allocator growth)."""
    return measure_side_by_side([fn], min_time, rounds)[0]


# Pause before timing each function in a round: thread pools (OpenBLAS, OpenMP in
# PyTorch) keep spinning for a while after their last job, and would steal the cores
# from whichever library is timed next.
SETTLE_SECONDS = 0.2


def measure_side_by_side(
    fns: list[Callable[[], object]], min_time: float = 0.5, rounds: int = 5
) -> list[float]:
    """Median seconds per call of each of ``fns``, timed in interleaved rounds.

    Each round times every function once (after one untimed warm-up call each), so a
    slow spell of a shared machine lands on all of them rather than on one.
    """
    settle = SETTLE_SECONDS if len(fns) > 1 else 0.0
    calls = []
    for fn in fns:
        fn()
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-9)
        calls.append(max(1, int(min_time / rounds / once)))
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, n, out in zip(fns, calls, samples, strict=True):
            time.sleep(settle)
            fn()  # one untimed call after the pause: caches and page tables are warm again
            start = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - start) / n)
    return [statistics.median(s) for s in samples]
