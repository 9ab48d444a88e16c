"""The training loop, the optimizers and the models learning real problems."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import skip_unless_required

import fastnn
import fastnn.hooks
from fastnn import training
from fastnn.datasets import make_lecture_toy, make_spirals, make_xor
from fastnn.lecture import lecture_network


def test_lecture_toy_cost_curve_falls(backend, dtype):
    X, y = make_lecture_toy()
    model = lecture_network(seed=0, backend=backend, dtype=dtype)
    history = model.fit(X, y, epochs=2000, batch_size=2, optimizer="sgd", lr=1.0)
    cost = history["loss"]
    assert len(cost) == 2000
    assert cost[-1] < 0.01 * cost[0]
    assert all(b <= a + 1e-7 for a, b in zip(cost, cost[1:])), "full-batch GD cost must not rise"


def test_xor_is_solved(backend):
    X, y = make_xor()
    model = fastnn.MLP([2, 8, 2], activation="tanh", loss="cross_entropy", backend=backend, seed=0)
    model.fit(X, y, epochs=300, batch_size=4, optimizer="momentum", lr=0.1)
    assert model.predict(X).tolist() == [0, 1, 1, 0]


def test_spirals_are_learned(backend):
    X, y = make_spirals(seed=0)
    model = fastnn.MLP(
        [2, 64, 64, 2], activation="relu", loss="cross_entropy", backend=backend, seed=0
    )
    model.fit(X, y, epochs=300, batch_size=32, optimizer="momentum", lr=0.05)
    assert model.evaluate(X, y)["accuracy"] > 0.95


def test_digits_test_accuracy(backend, digits):
    X_train, X_test, y_train, y_test = digits
    model = fastnn.MLP(
        [64, 64, 10], activation="relu", loss="cross_entropy", backend=backend, seed=0
    )
    history = model.fit(
        X_train,
        y_train,
        epochs=40,
        batch_size=32,
        optimizer="momentum",
        lr=0.05,
        validation_data=(X_test, y_test),
    )
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 40 for v in history.values())
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    assert accuracy >= 0.95
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)
    assert (model.predict(X_test) == y_test).mean() == pytest.approx(accuracy)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_integer_targets_train_as_their_float_values(backend, rng, loss):
    X = rng.normal(size=(30, 4))
    k = 3 if loss == "cross_entropy" else 2
    T = np.eye(k, dtype=np.int64)[rng.integers(0, k, size=30)]
    kwargs = dict(activation="tanh", loss=loss, dtype="float64", seed=0)
    results = []
    for targets in (T, T.astype(np.float64)):
        model = fastnn.MLP([4, 5, k], backend=backend, **kwargs)
        history = model.fit(X, targets, epochs=3, batch_size=8, lr=0.1)
        results.append((history["loss"], model.get_weights()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for (W, b), (W2, b2) in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_binary_classifier_and_regressor_outputs(backend, rng):
    X = rng.normal(size=(200, 3))
    y_bin = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = fastnn.MLP(
        [3, 8, 1], activation="tanh", loss="binary_cross_entropy", backend=backend, seed=0
    )
    clf.fit(X, y_bin, epochs=50, batch_size=16, lr=0.5)
    assert clf.predict(X).shape == (200,) and clf.evaluate(X, y_bin)["accuracy"] > 0.95
    assert clf.predict_proba(X).shape == (200, 1)
    y_reg = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    reg = fastnn.MLP([3, 1], loss="mse", backend=backend, dtype="float64", seed=0)
    reg.fit(X, y_reg, epochs=100, batch_size=20, lr=0.05)
    assert reg.predict(X).shape == (200, 1)
    assert reg.evaluate(X, y_reg)["loss"] < 1e-6
    assert "accuracy" not in reg.evaluate(X, y_reg)
    with pytest.raises(TypeError, match="predict_proba needs a classifier"):
        reg.predict_proba(X)


def test_epoch_loss_is_weighted_by_batch_size(backend, rng):
    # 10 samples in batches of 4: 4 + 4 + 2. With lr tiny the weights barely move, so the
    # epoch loss must equal the full-data loss, which an unweighted mean would miss.
    X = rng.normal(size=(10, 3))
    y = rng.normal(size=10)
    model = fastnn.MLP([3, 1], loss="mse", backend=backend, dtype="float64", seed=0)
    full = model.evaluate(X, y)["loss"]
    history = model.fit(X, y, epochs=1, batch_size=4, lr=1e-12, shuffle=False)
    assert history["loss"][0] == pytest.approx(full, rel=1e-9)


def test_same_seed_same_run_and_shuffle_matters(backend, rng):
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 3, size=50)

    def run(seed, shuffle=True):
        m = fastnn.MLP([4, 6, 3], loss="cross_entropy", backend=backend, dtype="float64", seed=seed)
        return m.fit(X, y, epochs=3, batch_size=7, lr=0.1, shuffle=shuffle)["loss"]

    assert run(0) == run(0)
    assert run(0) != run(0, shuffle=False)


def reference_update(name, w, g, state, lr, wd, t):
    g = g + wd * w
    if name == "sgd":
        return w - lr * g
    if name in ("momentum", "nesterov"):
        state["v"] = 0.9 * state.get("v", 0) + g
        step = g + 0.9 * state["v"] if name == "nesterov" else state["v"]
        return w - lr * step
    b1, b2, eps = 0.9, 0.999, 1e-8
    state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
    state["s"] = b2 * state.get("s", 0) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1**t)
    s_hat = state["s"] / (1 - b2**t)
    return w - lr * m_hat / (np.sqrt(s_hat) + eps)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_optimizer_steps_match_their_formulas(backend, name, weight_decay, rng):
    X = rng.normal(size=(6, 3))
    y = rng.normal(size=(6, 2))
    model = fastnn.MLP(
        [3, 2], activation="identity", loss="mse", backend=backend, dtype="float64", seed=0
    )
    W, b = (a.copy() for a in model.get_weights()[0])
    states = ({}, {})
    for t in range(1, 4):
        ((dW, db),) = model.gradients(X, y)
        W = reference_update(name, W, dW, states[0], 0.1, weight_decay, t)
        b = reference_update(name, b, db, states[1], 0.1, 0.0, t)  # biases do not decay
        model.fit(
            X,
            y,
            epochs=1,
            batch_size=6,
            optimizer=model.optimizer if t > 1 else name,
            lr=None if t > 1 else 0.1,
            weight_decay=None if t > 1 else weight_decay,
            shuffle=False,
        )
        np.testing.assert_allclose(model.get_weights()[0][0], W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(model.get_weights()[0][1], b, rtol=1e-12, atol=1e-14)


def test_optimizer_instances_and_names():
    opt = fastnn.SGD(lr=0.1, momentum=0.5)
    model = fastnn.MLP([2, 2], loss="mse", seed=0)
    model.fit(np.ones((3, 2)), np.ones((3, 2)), epochs=1, optimizer=opt)
    assert model.optimizer is opt and opt.t == 1
    with pytest.raises(ValueError, match="optimizer instance"):
        model.fit(np.ones((3, 2)), np.ones((3, 2)), optimizer=opt, lr=0.1)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of: sgd"):
        model.fit(np.ones((3, 2)), np.ones((3, 2)), optimizer="rmsprop")
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        fastnn.SGD(nesterov=True)


def test_early_stopping_restores_the_best_weights(backend, rng):
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 2, size=40)  # noise: validation loss soon stops improving
    Xv, yv = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
    model = fastnn.MLP([3, 32, 2], loss="cross_entropy", backend=backend, dtype="float64", seed=0)
    history = model.fit(
        X,
        y,
        epochs=500,
        batch_size=8,
        optimizer="adam",
        lr=0.01,
        validation_data=(Xv, yv),
        patience=5,
    )
    epochs_run = len(history["loss"])
    assert epochs_run < 500
    best = int(np.argmin(history["val_loss"]))
    assert epochs_run == best + 1 + 5
    assert model.evaluate(Xv, yv)["loss"] == pytest.approx(history["val_loss"][best], rel=1e-9)


def test_divergence_names_epoch_and_batch_and_keeps_finite_weights(backend, rng):
    X = rng.normal(size=(64, 4)) * 100
    y = rng.normal(size=64) * 1e3
    model = fastnn.MLP([4, 16, 1], activation="relu", loss="mse", backend=backend, seed=0)
    with pytest.raises(
        fastnn.TrainingDivergedError, match=r"epoch \d+, batch \d+.*lower learning rate"
    ) as info:
        model.fit(X, y, epochs=50, batch_size=8, optimizer="sgd", lr=10.0)
    assert info.value.epoch >= 1 and info.value.batch >= 1
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()
    assert len(model.history["loss"]) == info.value.epoch - 1


@pytest.mark.parametrize("epochs", [1, 3])
def test_an_update_that_overflows_the_dtype_is_refused_before_it_lands(backend, dtype, epochs):
    """An update finite in float64 but not in the model's dtype is divergence, caught on
    the first batch on every path (the fused small-network path included), and the model
    keeps the weights it had."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)) * 10, rng.normal(size=8) * 1000
    model = fastnn.MLP(
        [3, 4, 1], activation="tanh", loss="mse", backend=backend, dtype=dtype, seed=0
    )
    start = model.get_weights()
    lr = float(np.finfo(dtype).max) / 10
    with pytest.raises(fastnn.TrainingDivergedError, match="epoch 1, batch 1"):
        model.fit(X, y, epochs=epochs, batch_size=8, lr=lr)
    for (W, b), (W0, b0) in zip(model.get_weights(), start):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
    assert np.isfinite(model.predict(X)).all()


def test_progress_bar_writes_to_stderr(capsys, rng):
    model = fastnn.MLP([2, 1], loss="mse", seed=0)
    model.fit(rng.normal(size=(8, 2)), rng.normal(size=8), epochs=2, progress=True)
    assert "2/2" in capsys.readouterr().err
    model.fit(rng.normal(size=(8, 2)), rng.normal(size=8), epochs=2, progress=False)
    assert capsys.readouterr().err == ""


def test_odd_sizes(backend, dtype, rng):
    # one sample, batch larger than the data, one output, batch not dividing the data
    model = fastnn.MLP([3, 1], loss="mse", backend=backend, dtype=dtype, seed=0)
    model.fit(rng.normal(size=(1, 3)), rng.normal(size=1), epochs=2, batch_size=5)
    model.fit(rng.normal(size=(10, 3)), rng.normal(size=10), epochs=2, batch_size=3)
    assert model.predict(rng.normal(size=(1, 3))).shape == (1, 1)
    clf = fastnn.MLP([3, 2], loss="cross_entropy", backend=backend, dtype=dtype, seed=0)
    clf.fit(rng.normal(size=(7, 3)), np.array([0, 1, 0, 1, 1, 0, 1]), epochs=1, batch_size=3)
    assert clf.predict(rng.normal(size=(1, 3))).shape == (1,)


def test_divergence_in_many_epochs_of_a_small_network(backend):
    # small enough for a backend's fused many-epoch path, where there is one
    X, y = make_lecture_toy()
    model = fastnn.MLP(
        [2, 5, 1], activation="relu", output="identity", loss="mse", backend=backend, seed=0
    )
    with pytest.raises(fastnn.TrainingDivergedError, match=r"epoch \d+, batch 1") as info:
        model.fit(X * 1e6, y, epochs=500, batch_size=2, optimizer="sgd", lr=1e3)
    assert len(model.history["loss"]) == info.value.epoch - 1
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()


def test_device_training_loop_reads_once_per_epoch_with_the_same_results(device_like, rng):
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 3, size=50)
    kwargs = dict(activation="tanh", loss="cross_entropy", dtype="float64", seed=1)
    fit = dict(epochs=4, batch_size=8, optimizer="momentum", lr=0.05, validation_data=(X, y))
    reference = fastnn.MLP([4, 6, 3], **kwargs)
    device = fastnn.MLP([4, 6, 3], backend=device_like, **kwargs)
    ref_history = reference.fit(X, y, **fit)
    history = device.fit(X, y, **fit)
    for key in ref_history:
        np.testing.assert_allclose(history[key], ref_history[key], rtol=1e-12)
    for (W, b), (rW, rb) in zip(device.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(W, rW)
        np.testing.assert_array_equal(b, rb)


def test_device_training_loop_restores_the_epoch_start_on_divergence(device_like, rng):
    X = rng.normal(size=(64, 4)) * 100
    y = rng.normal(size=64) * 1e3
    model = fastnn.MLP([4, 16, 1], activation="relu", loss="mse", backend=device_like, seed=0)
    model.fit(X, y, epochs=1, batch_size=8, optimizer="sgd", lr=1e-9)
    with pytest.raises(fastnn.TrainingDivergedError, match=r"restored to those at the start"):
        model.fit(X, y, epochs=50, batch_size=8, optimizer="sgd", lr=10.0)
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()


def test_device_training_loop_interrupted_mid_epoch_stops_cleanly(device_like, rng, monkeypatch):
    """Ctrl-C after a batch: the batches not run are not mistaken for diverged ones."""
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
    model = fastnn.MLP([4, 6, 3], loss="cross_entropy", backend=device_like, seed=0)
    original = fastnn.Sequential.train_batch

    def interrupt_at_second_batch(self, *args):
        if interrupt_at_second_batch.calls == 1:
            signal.raise_signal(signal.SIGINT)
        interrupt_at_second_batch.calls += 1
        return original(self, *args)

    interrupt_at_second_batch.calls = 0
    monkeypatch.setattr(fastnn.Sequential, "train_batch", interrupt_at_second_batch)
    with pytest.raises(KeyboardInterrupt, match="training interrupted after"):
        model.fit(X, y, epochs=3, batch_size=8)
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_moving_between_backends_keeps_weights_and_optimizer_state(backend, rng, optimizer):
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, size=40)
    kwargs = dict(activation="relu", loss="cross_entropy", dtype="float64", seed=0)
    fit = dict(batch_size=8, optimizer=optimizer, lr=0.01)
    straight = fastnn.MLP([5, 7, 3], **kwargs)
    straight.fit(X, y, epochs=4, **fit)
    moved = fastnn.MLP([5, 7, 3], **kwargs)
    moved.fit(X, y, epochs=2, **fit)
    assert moved.to(backend) is moved and moved.backend.name == backend
    moved.fit(X, y, epochs=2, optimizer=moved.optimizer, batch_size=8)  # same state
    moved.to("numpy")
    for (W, b), (W2, b2) in zip(moved.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(W, W2, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, b2, rtol=1e-10, atol=1e-12)


@pytest.fixture
def cupy_module():
    """CuPy, where the cupy backend can run (a GPU, or the CUDA emulator in CI)."""
    from fastnn.backends import unavailable_reason

    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    import cupy

    return cupy


@pytest.mark.parametrize("stream_bytes", [None, 0])  # 0: host data streamed, GPU data not
def test_cupy_model_trains_on_gpu_arrays_as_on_host_arrays(
    cupy_module, rng, monkeypatch, stream_bytes
):
    monkeypatch.setattr(training, "STREAM_BYTES", stream_bytes)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, size=60)
    kwargs = dict(loss="cross_entropy", backend="cupy", dtype="float64", seed=0)
    fit = dict(epochs=3, batch_size=8, optimizer="adam", validation_data=(X, y))
    host, device = fastnn.MLP([4, 5, 3], **kwargs), fastnn.MLP([4, 5, 3], **kwargs)
    host_history = host.fit(X, y, **fit)
    X_gpu, y_gpu = cupy_module.asarray(X), cupy_module.asarray(y)
    fit["validation_data"] = (X_gpu, y_gpu)
    device_history = device.fit(X_gpu, y_gpu, **fit)
    assert device_history == host_history
    np.testing.assert_array_equal(device.predict_proba(X_gpu), host.predict_proba(X))
    assert device.evaluate(X_gpu, y_gpu) == host.evaluate(X, y)


@pytest.mark.parametrize("cpu_backend", ["numpy", "numba"])
def test_cupy_arrays_given_to_a_cpu_model_are_refused_with_the_fix(cupy_module, cpu_backend):
    from fastnn.backends import unavailable_reason

    if unavailable_reason(cpu_backend) is not None:
        pytest.skip(f"[{cpu_backend}] {unavailable_reason(cpu_backend)}")
    model = fastnn.MLP([4, 5, 3], loss="cross_entropy", backend=cpu_backend, seed=0)
    X, y = np.zeros((6, 4)), np.arange(6) % 3
    before = [(W.copy(), b.copy()) for W, b in model.get_weights()]
    message = r"X is a CuPy \(GPU\) array .* call model.to\('cupy'\), or pass X.get\(\)"
    with pytest.raises(TypeError, match=message):
        model.fit(cupy_module.asarray(X), y, epochs=1)
    with pytest.raises(TypeError, match=message):
        model.predict(cupy_module.asarray(X))
    with pytest.raises(TypeError, match=r"y is a CuPy \(GPU\) array"):
        model.fit(X, cupy_module.asarray(y), epochs=1)
    for (W, b), (W0, b0) in zip(model.get_weights(), before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


TRAIN_WITHOUT_FILE_LIBRARIES = """
import sys
sys.modules["safetensors"] = None  # as if not installed
sys.modules["tqdm"] = None
import numpy as np, fastnn
rng = np.random.default_rng(0)
X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
model = fastnn.MLP([3, 4, 2], loss="cross_entropy", seed=0)
model.fit(X, y, epochs=2, batch_size=8, validation_data=(X, y), patience=3, progress=False)
print(model.predict(X[:3]), model.evaluate(X, y)["accuracy"])
"""


def test_training_needs_neither_safetensors_nor_tqdm():
    """A bare GPU image may lack both: fit, predict and evaluate import neither."""
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_WITHOUT_FILE_LIBRARIES], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


class _ZeroGradients(fastnn.hooks.Hook):
    """Between backward and update: every gradient set to 0 (so nothing moves)."""

    def __init__(self):
        self.batches = 0
        self.epochs = []

    def after_backward(self, run):
        self.batches += 1
        for g in run.model.parameter_gradients():
            g[...] = 0

    def on_epochs_end(self, run, count):
        self.epochs.append((count, run.position.epoch))


def test_hooks_act_between_backward_and_update_on_every_path(backend):
    """A per-batch hook sees every batch, small networks included (whose fused
    many-epoch path it turns off), and per-epoch calls follow the run."""
    X, y = make_lecture_toy()
    model = fastnn.MLP([2, 5, 1], activation="sigmoid", loss="mse", backend=backend, seed=0)
    before = model.get_weights()
    hook = _ZeroGradients()
    history = model.fit(X, y, epochs=6, batch_size=1, optimizer="sgd", lr=0.5, hooks=[hook])
    assert hook.batches == 12 and hook.epochs == [(1, e) for e in range(1, 7)]
    assert len(history["loss"]) == 6
    for (W, b), (W0, b0) in zip(model.get_weights(), before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_hooks_must_be_hooks():
    model = fastnn.MLP([2, 1], loss="mse", seed=0)
    with pytest.raises(TypeError, match="hooks must be fastnn.hooks.Hook objects"):
        model.fit(np.zeros((4, 2)), np.zeros(4), hooks=[print])
    assert model.history == {} and model.optimizer is None
