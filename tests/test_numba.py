"""What is particular to the Numba backend: workspaces instead of allocations."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import fastnn

pytest.importorskip("numba", reason="[numba] backend library not installed")


def _step_allocations(backend: str, steps: int = 20) -> int:
    """Peak bytes newly allocated while running ``steps`` training steps after warm-up."""
    rng = np.random.default_rng(0)
    model = fastnn.MLP(
        [64, 32, 10], activation="relu", loss="cross_entropy", backend=backend, seed=0
    )
    X = model.backend.asarray(rng.random((32, 64)), dtype="float32")
    T = model.backend.asarray(rng.integers(0, 10, 32))
    opt = fastnn.SGD(lr=0.01)
    for _ in range(3):
        model.train_batch(X, T)
        opt.step(model)
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in range(steps):
        model.train_batch(X, T)
        opt.step(model)
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    return peak


def test_a_training_step_allocates_no_arrays():
    # the NumPy backend allocates every intermediate (about 30 kB per step here); the
    # Numba backend writes into workspaces, leaving only Python's small objects
    assert _step_allocations("numpy") > 20_000
    assert _step_allocations("numba") < 4_000


def test_workspaces_stay_bounded_over_many_batch_sizes():
    rng = np.random.default_rng(0)
    model = fastnn.MLP([16, 8, 3], loss="cross_entropy", backend="numba", seed=0)
    X, y = rng.random((300, 16)), rng.integers(0, 3, 300)
    model.fit(X, y, epochs=1, batch_size=64)
    work = model.backend._work
    after_one = work.nbytes()
    for batch_size in range(5, 200, 7):
        model.fit(X, y, epochs=1, batch_size=batch_size)
    # two shapes per layer and role at most, each no larger than the largest batch
    assert work.nbytes() <= 2 * after_one * 200 / 64 + 2 * 300 * 16 * 4 * 4


def test_workspaces_are_freed_with_their_model():
    import gc

    rng = np.random.default_rng(0)
    work = fastnn.get_backend("numba")._work
    before = work.nbytes()
    model = fastnn.MLP([128, 256, 10], loss="cross_entropy", backend="numba", seed=0)
    model.fit(rng.random((512, 128)), rng.integers(0, 10, 512), epochs=1, batch_size=256)
    assert work.nbytes() > before
    del model
    gc.collect()
    assert work.nbytes() <= before + 512 * 128 * 4  # only the data's row buffer may linger
