"""Small GEMMs: one BLAS thread against all, and the backward's independent products run
concurrently, at the shapes of the S, M and L training steps.

A dense layer's backward has two products that do not depend on each other, the weight
gradient ``dW = dZ^T H`` and the input gradient ``dH = dZ W``. Three ways to run them:

- ``sequential``: one after the other, each over all of the BLAS's threads (what fastnn does);
- ``1 thread``: one after the other, the BLAS limited to one thread;
- ``concurrent``: ``dW`` in a second Python thread while this one computes ``dH``, the BLAS
  limited to one thread so that each product has a core of its own.

Each is checked to give the same bits as the sequential run. The forward products and the
first layer's ``dW`` (no ``dH`` beside it) have nothing to pair with. Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/small_gemms.py

Measured for issue 15 on the 2-core development machine, three runs (float32, OpenBLAS
SkylakeX kernels, times of the sequential run in parentheses):

- two BLAS threads beat one at every shape: 1.1 to 1.2x at the tiny ones (S's 128->10,
  10 us; M's 256->10, 30 us), 1.8 to 1.9x at M's 512->256 (0.77 ms) and L's 2048->2048
  (90 ms);
- running the pair concurrently was 4.6 to 7x slower at the tiny shapes (handing a product
  to a thread costs more than computing it), 1.13 to 1.23x slower at M's 512->256, and
  within noise at L's (0.96 to 1.04x at 2048->2048, 0.79 to 1.16x at 2048->10, a 2 ms
  part of a 170 ms step).

So fastnn runs every product on the BLAS's own threads, one after the other, and has
nothing to decide by shape on this machine; the script shows whether another machine does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from fastnn.benchmarking.timer import measure_side_by_side
from fastnn.benchmarking.workloads import ARCHITECTURES


def backward_pairs() -> list[tuple[str, int, int, int]]:
    """``(arch, batch, n_in, n_out)`` of every layer with both ``dW`` and ``dH``."""
    pairs = []
    for name in ("S", "M", "L"):
        arch = ARCHITECTURES[name]
        sizes = arch.sizes
        for n_in, n_out in zip(sizes[1:-1], sizes[2:], strict=True):
            pairs.append((name, arch.batch, n_in, n_out))
    return pairs


class Pair:
    """The two backward products of one layer shape, run the three ways."""

    def __init__(self, batch: int, n_in: int, n_out: int, rng: np.random.Generator) -> None:
        self.dZ = rng.standard_normal((batch, n_out), dtype=np.float32)
        self.H = rng.standard_normal((batch, n_in), dtype=np.float32)
        self.W = rng.standard_normal((n_out, n_in), dtype=np.float32)
        self.dW, self.dH = np.empty_like(self.W), np.empty_like(self.H)
        self.pool = ThreadPoolExecutor(1)
        # the BLAS libraries' own controls (about 1 us a call; threadpool_limits takes
        # hundreds, more than the small products themselves)
        self.blas = ThreadpoolController().select(user_api="blas")
        self.threads = self.blas.info()[0]["num_threads"]

    def set_threads(self, n: int) -> None:
        for lib in self.blas.lib_controllers:
            lib.set_num_threads(n)

    def sequential(self) -> None:
        np.matmul(self.dZ.T, self.H, out=self.dW)
        np.matmul(self.dZ, self.W, out=self.dH)

    def one_thread(self) -> None:
        self.set_threads(1)
        self.sequential()
        self.set_threads(self.threads)

    def concurrent(self) -> None:
        self.set_threads(1)
        weights = self.pool.submit(np.matmul, self.dZ.T, self.H, out=self.dW)
        np.matmul(self.dZ, self.W, out=self.dH)
        weights.result()
        self.set_threads(self.threads)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'shape':28s} {'sequential':>11s} {'1 thread':>11s} {'concurrent':>11s}  fastest")
    for name, batch, n_in, n_out in backward_pairs():
        pair = Pair(batch, n_in, n_out, rng)
        ways = {"sequential": pair.sequential, "1 thread": pair.one_thread}
        ways["concurrent"] = pair.concurrent
        pair.sequential()
        expected = pair.dW.copy(), pair.dH.copy()
        for way, run in ways.items():
            run()
            if not (np.array_equal(pair.dW, expected[0]) and np.array_equal(pair.dH, expected[1])):
                raise AssertionError(f"{way} changed the products' bits")
        seconds = measure_side_by_side(list(ways.values()), min_time=1.0, rounds=5)
        fastest = min(zip(seconds, ways, strict=True))[1]
        cells = " ".join(f"{1e6 * s:9.1f}us" for s in seconds)
        print(f"{name} b{batch} {n_in}->{n_out}".ljust(28) + f" {cells}  {fastest}")


if __name__ == "__main__":
    main()
