"""Checkpoints: exact resume, Ctrl-C, killed processes, full disks and damaged files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import need_module, tolerance

import fastnn
from fastnn import ModelFileError

need_module("safetensors", "pip install safetensors", module_level=True)
from fastnn.checkpoint import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.files  # every test here reads or writes model files

FIT = dict(epochs=6, batch_size=7, lr=0.05)


def data(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, size=n)


def new_model(backend="numpy", dtype="float64"):
    return fastnn.MLP(
        [5, 8, 3], activation="tanh", loss="cross_entropy", backend=backend, dtype=dtype, seed=3
    )


def interrupt_after(monkeypatch, model, steps):
    """Send ourselves Ctrl-C during ``model``'s next fit: at its ``steps``-th training step,
    or, where a backend runs whole epochs in one call, during its ``steps``-th such call."""
    count = {"n": 0}

    def spy(original):
        def call(self, *args):
            count["n"] += 1
            if count["n"] == steps:
                signal.raise_signal(signal.SIGINT)
            return original(self, *args)

        return call

    monkeypatch.setattr(type(model), "train_batch", spy(type(model).train_batch))
    backend = type(model.backend)
    monkeypatch.setattr(backend, "sgd_epochs", spy(backend.sgd_epochs))


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("steps", [1, 6, 13, 20])  # mid-epoch and on an epoch's last batch
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    backend, dtype, tmp_path, monkeypatch, optimizer, steps
):
    X, y = data()
    straight = new_model(backend, dtype)
    straight_history = straight.fit(X, y, optimizer=optimizer, **FIT)

    path = tmp_path / "run.ckpt"
    model = new_model(backend, dtype)
    if backend == "numba" and optimizer == "sgd":
        steps = 1 + steps % 5  # whole epochs per call on this small network: 6 calls
    interrupt_after(monkeypatch, model, steps)
    with pytest.raises(KeyboardInterrupt, match="training interrupted after"):
        model.fit(X, y, optimizer=optimizer, checkpoint=path, **FIT)
    monkeypatch.undo()
    kept = model.history["loss"]
    assert kept == pytest.approx(straight_history["loss"][: len(kept)])

    resumed = new_model(backend, dtype)  # a fresh process would start like this
    history = resumed.fit(X, y, resume=path, epochs=6, batch_size=7)
    tol = tolerance(backend, dtype)
    if backend == "numpy":
        tol = {"rtol": 0, "atol": 0}  # identical, bit for bit
    np.testing.assert_allclose(history["loss"], straight_history["loss"], **tol)
    for (W, b), (W2, b2) in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(W, W2, **tol)
        np.testing.assert_allclose(b, b2, **tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_resuming_to_more_epochs_equals_one_longer_run(tmp_path, dtype):
    """The README's example: 4 epochs with a checkpoint, then resume to 8, is the same run
    as 8 epochs at once, bit for bit on numpy (batch orders depend on seed and epoch only)."""
    from fastnn.datasets import load_digits

    X, y = load_digits()
    kwargs = dict(activation="relu", loss="cross_entropy", seed=0, dtype=dtype)
    path = tmp_path / "run.ckpt"
    first = fastnn.MLP([64, 32, 10], **kwargs)
    first.fit(
        X,
        y,
        epochs=4,
        batch_size=64,
        optimizer="adam",
        lr=1e-3,
        checkpoint=path,
        checkpoint_every=2,
    )
    again = fastnn.MLP([64, 32, 10], **kwargs)
    history = again.fit(X, y, epochs=8, batch_size=64, resume=path)
    straight = fastnn.MLP([64, 32, 10], **kwargs)
    expected = straight.fit(X, y, epochs=8, batch_size=64, optimizer="adam", lr=1e-3)
    assert history == expected
    for (W, b), (W2, b2) in zip(again.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_cli_resume_to_more_epochs_equals_one_longer_run(tmp_path, capsys):
    from fastnn.cli import main

    common = ["train", "--data", "spirals", "--no-plot", "--no-progress", "--seed", "1"]
    ckpt = tmp_path / "run.ckpt"
    assert (
        main(
            [
                *common,
                "--epochs",
                "3",
                "--checkpoint",
                str(ckpt),
                "--model-out",
                str(tmp_path / "a.safetensors"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                *common,
                "--epochs",
                "6",
                "--resume",
                str(ckpt),
                "--model-out",
                str(tmp_path / "resumed.safetensors"),
            ]
        )
        == 0
    )
    assert (
        main([*common, "--epochs", "6", "--model-out", str(tmp_path / "straight.safetensors")]) == 0
    )
    resumed = fastnn.load(tmp_path / "resumed.safetensors").state_dict()
    straight = fastnn.load(tmp_path / "straight.safetensors").state_dict()
    assert resumed.keys() == straight.keys()
    for name, value in straight.items():
        np.testing.assert_array_equal(resumed[name], value)


def test_checkpoints_every_n_epochs_and_at_the_end(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    model = new_model()
    model.fit(X, y, checkpoint=path, checkpoint_every=4, **FIT)
    saved = load_checkpoint(path)
    assert saved.position.epoch == 6 and saved.position.batch == 0
    assert saved.history["loss"] == model.history["loss"]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(saved.contents.state[name], value)


def test_resume_checks_architecture_and_optimizer_arguments(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    new_model().fit(X, y, checkpoint=path, **FIT)
    other = fastnn.MLP([5, 9, 3], loss="cross_entropy", dtype="float64", seed=3)
    with pytest.raises(ValueError, match="was written for layers"):
        other.fit(X, y, resume=path, epochs=8)
    with pytest.raises(ValueError, match=r"continues with SGD\(lr=0.05.*asks for SGD\(lr=0.1"):
        new_model().fit(X, y, resume=path, epochs=8, lr=0.1)
    new_model().fit(X, y, resume=path, epochs=7, batch_size=7, optimizer="sgd", lr=0.05)
    with pytest.raises(ValueError, match="past epochs=3"):
        new_model().fit(X, y, resume=path, epochs=3)
    more = new_model()
    history = more.fit(X, y, resume=path, epochs=8, batch_size=7)
    assert len(history["loss"]) == 8


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    X, y = data()
    path = tmp_path / "run.ckpt"
    new_model().fit(X, y, checkpoint=path, **FIT)
    before = path.read_bytes()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left on device.*previous file"):
        new_model().fit(X, y, checkpoint=path, **FIT)
    assert path.read_bytes() == before


def test_unwritable_folder_is_refused_before_the_first_batch():
    X, y = data()
    model = new_model()
    model.fit(X, y, **FIT)  # a trained model, with optimizer state and history to keep
    before, history, optimizer = model.get_weights(), dict(model.history), model.optimizer
    with pytest.raises(OSError, match="cannot write /proc/"):
        model.fit(
            X, y, checkpoint="/proc/fastnn-run.ckpt", checkpoint_every=10, **{**FIT, "epochs": 20}
        )
    for (W, b), (W2, b2) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    assert model.history == history and model.optimizer is optimizer


def _same_checkpoint(a, b):
    arrays = lambda c: [*c.contents.state.values(), *c.contents.extra.values()]
    return (
        all(np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b), strict=True))
        and a.position == b.position
        and a.history == b.history
        and a.optimizer.config() == b.optimizer.config()
        and a.optimizer.t == b.optimizer.t
        and a.contents.architecture == b.contents.architecture
    )


def test_every_truncated_checkpoint_is_refused(tmp_path):
    X, y = data()
    path = tmp_path / "run.ckpt"
    new_model().fit(X, y, checkpoint=path, optimizer="adam", **FIT)
    raw = path.read_bytes()
    target = tmp_path / "bad.ckpt"
    for i in range(len(raw)):
        target.write_bytes(raw[:i])
        with pytest.raises(ModelFileError, match="bad.ckpt"):
            load_checkpoint(target)


def test_a_flipped_bit_in_a_checkpoint_is_refused_or_changes_nothing(tmp_path):
    """A single flipped bit anywhere (tensors, metadata, header) is refused by the
    checksum, unless it changes nothing that is read (JSON layout)."""
    X, y = data()
    path = tmp_path / "run.ckpt"
    new_model().fit(X, y, checkpoint=path, optimizer="adam", **FIT)
    raw = path.read_bytes()
    original = load_checkpoint(path)
    rng = np.random.default_rng(0)
    target = tmp_path / "bad.ckpt"
    outcomes = {"refused": 0, "harmless": 0}
    for i in rng.choice(len(raw) * 8, size=600, replace=False):
        damaged = bytearray(raw)
        damaged[i // 8] ^= 1 << int(i % 8)
        target.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(target)
        except ModelFileError:
            outcomes["refused"] += 1
            continue
        assert _same_checkpoint(loaded, original), f"bit {i} changed the checkpoint silently"
        outcomes["harmless"] += 1
    print(f"\n600 single-bit flips of a checkpoint: {outcomes}")


CHILD = """
import sys, numpy as np, fastnn
rng = np.random.default_rng(0)
X, y = rng.normal(size=(400, 20)), rng.integers(0, 4, size=400)
model = fastnn.MLP([20, 32, 4], activation="relu", loss="cross_entropy", dtype="float64", seed=1)
resume = sys.argv[2] if len(sys.argv) > 2 else None
model.fit(X, y, epochs=1500, batch_size=16, optimizer="momentum", lr=0.01, checkpoint=sys.argv[1],
          resume=resume)
model.save(sys.argv[1] + ".final")
"""


@pytest.mark.slow
def test_killed_processes_always_leave_a_loadable_checkpoint(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    reference = tmp_path / "reference.ckpt"
    subprocess.run([sys.executable, "-c", CHILD, str(reference)], check=True, timeout=300)
    expected = fastnn.load(str(reference) + ".final").get_weights()
    rng = np.random.default_rng(0)
    kills = survived = 0
    resume: list[str] = []
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ckpt), *resume])
        time.sleep(float(rng.uniform(0.3, 1.5)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        if ckpt.exists():
            saved = load_checkpoint(ckpt)  # must always load
            assert saved.position.batch == 0 and saved.position.epoch >= 1
            survived += 1
            resume = [str(ckpt)]
        if (tmp_path / "run.ckpt.final").exists():
            break
    else:
        subprocess.run([sys.executable, "-c", CHILD, str(ckpt), str(ckpt)], check=True)
    for (W, b), (W2, b2) in zip(fastnn.load(str(ckpt) + ".final").get_weights(), expected):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    print(f"\n{kills} kills, {survived} checkpoints loaded and resumed")
    assert kills >= 3


@pytest.mark.slow
def test_cli_ctrl_c_writes_the_checkpoint_and_exits_130(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastnn",
            "train",
            "--data",
            "spirals",
            "--epochs",
            "100000",
            "--checkpoint",
            str(ckpt),
            "--checkpoint-every",
            "1000000",
            "--no-plot",
            "--model-out",
            str(tmp_path / "m.safetensors"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Interrupt once training has begun (the "model:" line comes just before), however
    # long the imports took on a loaded machine.
    started = threading.Event()

    def watch_stdout():
        for line in proc.stdout:
            if line.startswith("model:"):
                started.set()

    watcher = threading.Thread(target=watch_stdout, daemon=True)
    watcher.start()
    assert started.wait(timeout=120), "the CLI never started training"
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    with proc.stdout, proc.stderr:
        err = proc.stderr.read()
        proc.wait(timeout=60)
        watcher.join(timeout=60)
    assert proc.returncode == 130, err
    assert "training interrupted after epoch" in err and "--resume" in err
    saved = load_checkpoint(ckpt)
    assert saved.position.epoch + (saved.position.batch > 0) >= 1
    code = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnn",
            "train",
            "--data",
            "spirals",
            "--epochs",
            str(saved.position.epoch + 2),
            "--resume",
            str(ckpt),
            "--no-plot",
            "--model-out",
            str(tmp_path / "m.safetensors"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert code.returncode == 0, code.stderr
    assert "test accuracy" in code.stdout


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"checkpoint": 123}, TypeError, "checkpoint path must be a str"),
        ({"checkpoint": "/no/such/folder/run.ckpt"}, FileNotFoundError, "no folder /no/such"),
        ({"resume": "/no/such/run.ckpt"}, FileNotFoundError, "no checkpoint file"),
    ],
)
def test_bad_checkpoint_arguments_fail_before_training(tmp_path, kwargs, error, message):
    X, y = data()
    model = new_model()
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(X, y, **FIT, **kwargs)
    for (W, b), (W2, b2) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


@pytest.mark.parametrize("change", ["X", "y", "rows"])
def test_resume_with_other_data_is_refused_unless_forced(tmp_path, change):
    X, y = data()
    path = tmp_path / "run.ckpt"
    new_model().fit(X, y, checkpoint=path, **{**FIT, "epochs": 3})
    X2, y2 = X.copy(), y.copy()
    if change == "X":
        X2[17, 2] += 1e-9  # a row the fingerprint samples: every row, for 40 samples
    elif change == "y":
        y2[5] = (y2[5] + 1) % 3
    else:
        X2, y2 = np.concatenate([X, X[:3]]), np.concatenate([y, y[:3]])  # more data
    model = new_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="other training data.*force=True"):
        model.fit(X2, y2, resume=path, epochs=6, batch_size=7)
    for (W, b), (W2, b2) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    assert model.history == {} and model.optimizer is None
    with pytest.warns(UserWarning, match="force=True: resuming .* other training data"):
        history = model.fit(X2, y2, resume=path, epochs=6, batch_size=7, force=True)
    assert len(history["loss"]) == 6


def test_mid_epoch_resume_needs_the_same_batches(tmp_path, monkeypatch):
    X, y = data()
    path = tmp_path / "run.ckpt"
    model = new_model()
    interrupt_after(monkeypatch, model, 3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, optimizer="adam", checkpoint=path, **{**FIT, "lr": 1e-3})
    monkeypatch.undo()
    with pytest.raises(ValueError, match="resume with that batch_size"):
        new_model().fit(X, y, resume=path, epochs=6, batch_size=8)
    with pytest.raises(ValueError, match="same data"):
        new_model().fit(X[:10], y[:10], resume=path, epochs=6, batch_size=7)


def test_dropout_and_batchnorm_runs_resume_exactly(tmp_path, monkeypatch):
    """Masks are drawn from (key, epoch, sample), and running statistics are saved as
    buffers: an interrupted and resumed run is the uninterrupted one, bit for bit."""
    X, y = data(n=45)

    def build():
        return fastnn.MLP(
            [5, 8, 3], loss="cross_entropy", dropout=0.4, batch_norm=True, dtype="float64", seed=3
        )

    fit = dict(epochs=5, batch_size=7, optimizer="adam", lr=0.01)
    straight = build()
    expected = straight.fit(X, y, **fit)
    path = tmp_path / "run.ckpt"
    model = build()
    interrupt_after(monkeypatch, model, 9)  # mid-epoch 2
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, checkpoint=path, **fit)
    monkeypatch.undo()
    resumed = build()
    assert resumed.fit(X, y, resume=path, epochs=5, batch_size=7) == expected
    for name, value in resumed.state_dict().items():
        np.testing.assert_array_equal(value, straight.state_dict()[name])
