"""What folding the SGD update into the weight-gradient GEMM would save per training step.

``W <- W - lr dZ^T X`` as one SciPy ``sgemm`` (``alpha = -lr``, ``beta = 1``, writing ``W``
in place) against what fastnn does: ``matmul`` into ``dW``, then the Numba update. Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/fold_update.py

(needs SciPy). Measured for issue 15 over three runs: S saves 3 to 49 us of a ~410 us
step, M -0.2 to 0.17 ms of ~3.7 ms, L 1 to 2 ms of ~190 ms, all within this machine's run-to-run
noise. fastnn keeps the unfolded update, which hooks, the distributed allreduce and the
per-batch gradient check need (none of them can see a ``dW`` that never exists).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas

from fastnn.benchmarking.timer import measure
from fastnn.kernels import optim

NETWORKS = {"S": ((784, 128, 10), 128), "M": ((784, 512, 256, 10), 256)}
NETWORKS["L"] = ((784, 2048, 2048, 10), 1024)
LR, DECAY = np.float32(0.01), np.float32(0)


def unfolded(layers) -> None:
    for X, dZ, W, dW in layers:
        np.matmul(dZ.T, X, out=dW)
        optim.sgd(W.reshape(-1), dW.reshape(-1), LR, DECAY)


def folded(layers) -> None:
    # W (out x in, row-major) is W.T (in x out) in column-major order: W.T += -lr X^T dZ
    for X, dZ, W, _ in layers:
        blas.sgemm(-LR, X.T, dZ.T, beta=1.0, c=W.T, trans_b=True, overwrite_c=True)


def main() -> None:
    rng = np.random.default_rng(0)
    for name, (sizes, batch) in NETWORKS.items():
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            X = rng.random((batch, n_in), dtype=np.float32)
            dZ = rng.random((batch, n_out), dtype=np.float32)
            W = rng.random((n_out, n_in), dtype=np.float32)
            layers.append((X, dZ, W, np.empty_like(W)))
        start = [layer[2].copy() for layer in layers]
        unfolded(layers)
        want = [layer[2].copy() for layer in layers]
        for layer, W in zip(layers, start, strict=True):
            layer[2][...] = W
        folded(layers)
        same = all(
            np.allclose(layer[2], w, rtol=1e-5, atol=1e-6)
            for layer, w in zip(layers, want, strict=True)
        )
        min_time = 3.0 if name == "L" else 0.5
        a = measure(lambda layers=layers: unfolded(layers), min_time=min_time, rounds=7)
        b = measure(lambda layers=layers: folded(layers), min_time=min_time, rounds=7)
        print(
            f"{name}: dW GEMM + update {a * 1e6:9.1f} us, folded {b * 1e6:9.1f} us, "
            f"saves {(a - b) * 1e6:8.1f} us ({100 * (a - b) / a:5.1f}%), same result: {same}"
        )


if __name__ == "__main__":
    main()
