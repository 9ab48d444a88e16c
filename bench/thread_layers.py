"""Why fastnn's Numba kernels run serially: whole training steps with parallel kernels.

    python bench/thread_layers.py                       # serial kernels (the default)
    python bench/thread_layers.py parallel              # relu kernels with parallel=True
    NUMBA_THREADING_LAYER=workqueue python bench/thread_layers.py parallel

Replaces the fused relu forward and backward kernels with ``prange`` versions and times
S, M and L training steps beside the threaded BLAS. Measured on the 2-core development
machine (README, Backends): with Numba's default (OpenMP) layer the parallel kernels made
S 15x and M 7x slower; with ``workqueue`` they were within a few percent of serial.
"""

from __future__ import annotations

import sys

import numba
from numba import prange

from fastnn.benchmarking.timer import measure
from fastnn.benchmarking.workloads import ARCHITECTURES, fastnn_train_step
from fastnn.kernels import dense


@numba.njit(parallel=True)
def bias_relu_parallel(Z, b, code):
    n, m = Z.shape
    for i in prange(n):
        for j in range(m):
            v = Z[i, j] + b[j]
            Z[i, j] = 0.0 if v <= 0 else v


@numba.njit(parallel=True)
def relu_backward_bias_parallel(dH, H, code, dZ, db):
    n, m = dH.shape
    for i in prange(n):
        for j in range(m):
            dZ[i, j] = dH[i, j] * (1.0 if H[i, j] > 0 else 0.0)
    for j in prange(m):
        s = 0.0
        for i in range(n):
            s += dZ[i, j]
        db[j] = s


def main(mode: str) -> None:
    if mode == "parallel":
        serial = dense.bias_activation
        dense.bias_activation = lambda Z, b, code: (
            bias_relu_parallel(Z, b, code) if code == dense.RELU else serial(Z, b, code)
        )
        dense.activation_backward_bias = relu_backward_bias_parallel
    for name in ("S", "M", "L"):
        step = fastnn_train_step(ARCHITECTURES[name], "numba", "float32")
        seconds = measure(step.run, min_time=1.5 if name != "L" else 3.0)
        print(
            f"{mode:8s} layer={numba.config.THREADING_LAYER:9s} threads={numba.get_num_threads()}"
            f" {name}: {seconds * 1e3:8.3f} ms/step"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serial")
