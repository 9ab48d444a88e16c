"""Where the Numba backend's whole-run kernel for small networks stops paying.

For plain SGD on a small dense network, ``fit`` on the numba backend hands whole chunks of
epochs to one compiled call (``kernels/small.py``: loops, no BLAS) while the network's
``weights x batch size`` is at most ``SMALL_NETWORK_WORK`` (and one epoch's ``weights x
samples`` at most ``SMALL_NETWORK_CALL_WORK``, here never reached); above it, each step runs
layer by layer from Python with BLAS products. This times both paths side by side (two epochs
of 1024 samples, float32) for networks around the threshold, and prints how much slower
the layer-by-layer path is (above 1: the fused kernel wins). Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/small_networks.py

Measured for issue 15 on the 2-core development machine, two runs (relu; sigmoid was on the
same side of 1 but at 50,816, where it gave 1.1 to 1.5). The layer-by-layer path was this
many times slower:

==============  ===============  =========
network, batch  weights x batch  slower
==============  ===============  =========
16-8-2, 32      4,608            5.7-5.8
16-16-2, 64     18,432           2.7-2.8
16-32-2, 64     36,864           2.0-2.1
784-8-10, 8     50,816           0.9-1.0
16-32-32-2, 32  51,200           1.5-2.0
16-64-2, 64     73,728           1.2
16-32-32-2, 64  102,400          0.87-0.93
784-8-10, 16    101,632          0.59-0.63
2-64-64-1, 32   137,216          0.52-0.59
==============  ===============  =========

The fused kernel won everywhere below 50,000, tied around it and lost from about 100,000,
so the threshold is 32,768 (it was 4,096, which sent networks the kernel runs 2 to 6 times
faster through Python).
"""

from __future__ import annotations

import numpy as np

import fastnn
from fastnn.backends import numba_backend
from fastnn.benchmarking.timer import measure_side_by_side

NETWORKS = [
    ((16, 8, 2), 32),
    ((16, 16, 2), 64),
    ((16, 32, 2), 64),
    ((784, 8, 10), 8),
    ((16, 32, 32, 2), 32),
    ((16, 64, 2), 64),
    ((16, 32, 32, 2), 64),
    ((784, 8, 10), 16),
    ((2, 64, 64, 1), 32),
]


def fit_both_ways(sizes: tuple[int, ...], batch: int, activation: str) -> float:
    """Seconds of the layer-by-layer fit over those of the fused one."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, sizes[0])).astype(np.float32)
    if sizes[-1] == 1:
        y: np.ndarray = (X[:, :1] > 0).astype(np.float32)
        head = {"output": "sigmoid", "loss": "mse"}
    else:
        y = (X[:, 0] > 0).astype(np.int64)
        head = {"output": "softmax", "loss": "cross_entropy"}
    model = fastnn.MLP(
        list(sizes), activation=activation, backend="numba", dtype="float32", seed=0, **head
    )
    threshold = numba_backend.SMALL_NETWORK_WORK

    def fit(work: int) -> None:
        numba_backend.SMALL_NETWORK_WORK = work
        try:
            model.fit(X, y, epochs=2, batch_size=batch, lr=0.01, progress=False)
        finally:
            numba_backend.SMALL_NETWORK_WORK = threshold

    fused, layered = measure_side_by_side(
        [lambda: fit(2**62), lambda: fit(0)], min_time=1.0, rounds=5
    )
    return layered / fused


def main() -> None:
    print(f"threshold now: weights x batch <= {numba_backend.SMALL_NETWORK_WORK:,}")
    for sizes, batch in NETWORKS:
        weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        name = "-".join(map(str, sizes))
        for activation in ("relu", "sigmoid"):
            slower = fit_both_ways(sizes, batch, activation)
            print(
                f"{name:12s} batch {batch:3d} {activation:7s} weights x batch "
                f"{weights * batch:8,d}: layer by layer {slower:.2f}x the fused time"
            )


if __name__ == "__main__":
    main()
