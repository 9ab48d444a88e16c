"""Extreme values, data larger than memory, long runs and concurrent use."""

from __future__ import annotations

import contextlib
import sys
import threading
import tracemalloc

import numpy as np
import pytest
from conftest import skip_unless_required

import fastnn
from fastnn import training
from fastnn.backends import unavailable_reason


@pytest.mark.parametrize("scale", [1e30, -1e30, 1e-310, 0.0])
def test_extreme_inputs_give_finite_probabilities(backend, dtype, scale):
    if dtype == "float32" and scale == 1e-310:
        scale = 1e-40  # float32's subnormals
    X = np.full((6, 4), scale)
    X[::2] *= -1
    for loss, n_out in (("cross_entropy", 3), ("binary_cross_entropy", 2)):
        model = fastnn.MLP(
            [4, 5, n_out], activation="relu", loss=loss, backend=backend, dtype=dtype, seed=0
        )
        P = model.predict_proba(X)
        assert np.isfinite(P).all() and ((P >= 0) & (P <= 1)).all()
        y = np.arange(6) % n_out if loss == "cross_entropy" else np.ones((6, n_out))
        assert np.isfinite(model.evaluate(X, y)["loss"])


# 1e30 inputs: the first SGD step moves the weights by about lr * 1e30, so the next
# pre-activations reach about 1e59, past float32's 3.4e38: batch 2 of epoch 1 is not
# finite. float64 holds 1e59; there the loss first fails in epoch 2.
@pytest.mark.parametrize(("dtype", "epoch", "batch"), [("float32", 1, 2), ("float64", 2, 2)])
def test_huge_inputs_stop_with_advice_at_the_first_bad_batch(backend, dtype, epoch, batch):
    X = np.random.default_rng(0).normal(size=(32, 4)) * 1e30
    y = np.arange(32) % 2
    model = fastnn.MLP(
        [4, 8, 2], activation="relu", loss="cross_entropy", backend=backend, dtype=dtype, seed=0
    )
    with pytest.raises(
        fastnn.TrainingDivergedError, match="lower learning rate.*scale the inputs"
    ) as info:
        model.fit(X, y, epochs=3, batch_size=8, lr=0.1)
    assert (info.value.epoch, info.value.batch) == (epoch, batch)
    assert len(model.history["loss"]) == epoch - 1
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()


def test_constant_features_train(backend):
    X = np.ones((20, 3))
    model = fastnn.MLP([3, 4, 2], loss="cross_entropy", backend=backend, seed=0)
    history = model.fit(X, np.arange(20) % 2, epochs=5, batch_size=4, lr=0.1)
    assert np.isfinite(history["loss"]).all()


def test_memory_mapped_data_is_streamed(tmp_path, monkeypatch):
    n, d = 40_000, 200  # 64 MB of float64
    path = tmp_path / "X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    rng = np.random.default_rng(0)
    for start in range(0, n, 5000):
        X[start : start + 5000] = rng.random((5000, d))
    X.flush()
    del X
    y = np.arange(n) % 10
    monkeypatch.setattr(training, "STREAM_BYTES", 1 << 20)  # stream anything over 1 MB
    X = np.load(path, mmap_mode="r")
    model = fastnn.MLP([d, 16, 10], activation="relu", loss="cross_entropy", seed=0)
    tracemalloc.start()
    model.fit(X, y, epochs=1, batch_size=256, lr=0.01)
    probabilities = model.predict_proba(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    size = path.stat().st_size
    print(
        f"\nfile {size / 2**20:.0f} MiB; peak allocations in fit + predict {peak / 2**20:.1f} MiB"
    )
    assert probabilities.shape == (n, 10)
    assert peak < size / 8


@pytest.mark.parametrize("host_dtype", ["float64", "float32"])
def test_streamed_and_in_memory_training_agree(backend, dtype, host_dtype, monkeypatch, rng):
    X = rng.normal(size=(300, 6)).astype(host_dtype)
    y = rng.integers(0, 3, size=300)
    kwargs = dict(activation="tanh", loss="cross_entropy", dtype=dtype, seed=2, backend=backend)
    fit = dict(epochs=3, batch_size=32, optimizer="momentum", lr=0.05)
    in_memory = fastnn.MLP([6, 8, 3], **kwargs)
    in_memory.fit(X, y, **fit)
    monkeypatch.setattr(training, "STREAM_BYTES", 0)
    streamed = fastnn.MLP([6, 8, 3], **kwargs)
    streamed.fit(X, y, **fit)
    for (W, b), (W2, b2) in zip(streamed.get_weights(), in_memory.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_streaming_to_cupy_reuses_two_pinned_buffers(monkeypatch, rng):
    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    import cupy

    sizes = []
    allocate = cupy.cuda.alloc_pinned_memory
    monkeypatch.setattr(cupy.cuda, "alloc_pinned_memory", lambda n: sizes.append(n) or allocate(n))
    monkeypatch.setattr(training, "STREAM_BYTES", 0)
    X, y = rng.normal(size=(300, 6)), rng.integers(0, 3, size=300)
    model = fastnn.MLP([6, 8, 3], loss="cross_entropy", backend="cupy", seed=0)
    model.fit(X, y, epochs=3, batch_size=64, optimizer="momentum")  # 15 batches
    assert len(sizes) <= 2, f"pinned buffers allocated per batch: {sizes}"


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
def test_resident_memory_stays_flat_over_long_runs(backend, capsys):
    rng = np.random.default_rng(0)
    X, y = rng.random((2000, 64)), rng.integers(0, 10, 2000)
    model = fastnn.MLP(
        [64, 128, 10], activation="relu", loss="cross_entropy", backend=backend, seed=0
    )
    model.fit(X, y, epochs=5, batch_size=64, optimizer="adam", lr=1e-3)
    before, held_before = _rss_mib(), model.backend.memory_in_use()
    for batch_size in (64, 17, 200, 64, 33, 128) * 5:  # 30 fits, 150 epochs, 6 batch sizes
        model.fit(
            X,
            y,
            epochs=5,
            batch_size=batch_size,
            optimizer="adam",
            lr=1e-3,
            validation_data=(X[:500], y[:500]),
        )
    growth = _rss_mib() - before
    held_growth = (model.backend.memory_in_use() - held_before) / 2**20
    with capsys.disabled():
        print(
            f"\n[{backend}] resident memory after warm-up {before:.1f} MiB, growth over "
            f"150 more epochs with changing batch sizes {growth:+.1f} MiB; held by the "
            f"backend (workspaces, GPU memory pool) {held_growth:+.2f} MiB"
        )
    assert growth < 8
    assert held_growth < 1


@pytest.mark.parametrize("stream_bytes", [None, 0])  # 0: every batch streamed from the host
def test_models_on_one_backend_train_in_parallel_threads_as_alone(
    backend, rng, monkeypatch, stream_bytes
):
    """Four models share one backend instance (its workspaces, kernels, caches and staging
    buffers) and the same data, trained at once in four threads: each ends as it would
    alone."""
    monkeypatch.setattr(training, "STREAM_BYTES", stream_bytes)
    X, y = rng.normal(size=(120, 6)), rng.integers(0, 3, size=120)

    def train(seed):
        model = fastnn.MLP(
            [6, 10, 3], loss="cross_entropy", backend=backend, dtype="float64", seed=seed
        )
        optimizer = ("sgd", "momentum", "adam", "nesterov")[seed]
        model.fit(X, y, epochs=4, batch_size=16, optimizer=optimizer, lr=0.05)
        return model.get_weights()

    alone = [train(seed) for seed in range(4)]
    together: dict[int, list] = {}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that races have a chance to show
    threads = [
        threading.Thread(target=lambda s=s: together.__setitem__(s, train(s))) for s in range(4)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    for seed in range(4):
        for (W, b), (W2, b2) in zip(together[seed], alone[seed]):
            np.testing.assert_array_equal(W, W2)
            np.testing.assert_array_equal(b, b2)


def _two_or_more_backends(device_like):
    """The available backends and a registered second one, so there are always two."""
    return [*fastnn.available_backends(), device_like]


def test_two_backends_train_side_by_side_in_threads(rng, device_like):
    X, y = rng.normal(size=(200, 8)), rng.integers(0, 3, size=200)
    names = _two_or_more_backends(device_like)

    def train(name):
        model = fastnn.MLP([8, 16, 3], loss="cross_entropy", backend=name, dtype="float64", seed=5)
        model.fit(X, y, epochs=5, batch_size=16, optimizer="adam", lr=0.01)
        return model.backend.name, model.get_weights()

    alone = {name: train(name) for name in names}
    together: dict[str, list] = {}
    threads = [
        threading.Thread(target=lambda n=n, k=k: together.__setitem__((n, k), train(n)))
        for n in names
        for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (name, _), (used, weights) in together.items():
        assert used == name
        for (W, b), (W2, b2) in zip(weights, alone[name][1]):
            np.testing.assert_array_equal(W, W2)
            np.testing.assert_array_equal(b, b2)


def test_use_backend_in_threads_does_not_leak(device_like):
    """Threads inside ``use_backend`` blocks of other backends, and one outside any, all
    at once: each sees its own default, none the others'."""
    names = [n for n in _two_or_more_backends(device_like) if n != "numpy"]
    seen: dict[str | None, list[str]] = {}
    barrier = threading.Barrier(len(names) + 1)

    def work(name):
        with fastnn.use_backend(name) if name else contextlib.nullcontext():
            barrier.wait()  # every thread inside its own use_backend (or none) at once
            seen[name] = [fastnn.MLP([2, 2], loss="mse").backend.name for _ in range(20)]

    threads = [threading.Thread(target=work, args=(n,)) for n in [*names, None]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen.pop(None) == ["numpy"] * 20
    assert all(set(v) == {name} for name, v in seen.items())
    assert fastnn.backends.default_backend_name() == "numpy"
