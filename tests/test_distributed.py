"""Data-parallel training: 2 ranks under mpiexec against one process, in subprocesses
with a timeout, so a hang fails instead of blocking the run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import need_module, skip_unless_required

import fastnn

need_module("mpi4py", "pip install 'fastnn[mpi]'", module_level=True)
MPIEXEC = shutil.which("mpiexec")
if MPIEXEC is None:  # pragma: no cover - mpi4py without an mpiexec
    pytest.skip("no mpiexec: pip install 'fastnn[mpi]'", allow_module_level=True)


def _env():
    """This environment with PYTHONPATH made absolute (the CUDA emulator's, in CI), for
    subprocesses that run in another folder."""
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


RANK_SCRIPT = r"""
import json, sys
import numpy as np
import fastnn
from mpi4py import MPI

spec = json.loads(sys.argv[1])
rank = MPI.COMM_WORLD.Get_rank()
if spec.get("slow"):
    open(f"{spec['out']}.started.{rank}", "w").close()
rng = np.random.default_rng(0)
X, y = rng.normal(size=(spec["n"], 6)), rng.integers(0, 3, size=spec["n"])
if spec.get("bad_rank") == rank:
    X[3, 2] = np.nan
if spec.get("other_rank") == rank:
    X = X + 1.0
if "bn" in spec:
    model = fastnn.Sequential(
        [fastnn.Dense(6, 9), fastnn.BatchNorm(9, sync=spec["bn"] == "sync"),
         fastnn.Activation("tanh"), fastnn.Dense(9, 3, "softmax")],
        loss="cross_entropy", dtype="float64", seed=4)
else:
    model = fastnn.MLP([6, 9, 3], loss="cross_entropy", dtype="float64", seed=4,
                       dropout=spec.get("dropout", 0.0), backend=spec.get("backend", "numpy"))
if spec.get("nan_rank") == rank:  # this rank's loss stops being finite in epoch 2
    train_batch = model.train_batch
    def poisoned(X, T, batch=None):
        loss, out = train_batch(X, T, batch)
        return (loss * np.nan if batch.epoch == 1 else loss), out
    model.train_batch = poisoned
if spec.get("slow"):  # slow enough that Ctrl-C lands mid-run
    import time
    train_batch = model.train_batch
    def slowly(X, T, batch=None):
        time.sleep(0.01)
        return train_batch(X, T, batch)
    model.train_batch = slowly
rows = []
if spec.get("count_rows"):
    layer = model.layers[0]
    forward = layer.forward
    layer.forward = lambda X, train=False, batch=None: (
        rows.append(X.shape[0]) if train else None, forward(X, train, batch))[1]
try:
    for fit in spec["fits"]:
        model.fit(X, y, distributed=True, progress=False, **fit)
except KeyboardInterrupt as exc:
    print(f"rank {rank}: interrupted: {exc}; epochs {len(model.history['loss'])}", flush=True)
    sys.exit(130)
except Exception as exc:
    print(f"rank {rank}: {type(exc).__name__}: {exc}", flush=True)
    sys.exit(3)
if spec.get("count_rows"):
    print(f"rank {rank} trained on {sum(rows)} rows", flush=True)
if rank == 0:
    np.savez(spec["out"], *[a for pair in model.get_weights() for a in pair],
             *model.state_dict().values(), history=json.dumps(model.history))
"""


def run_ranks(tmp_path, ranks=2, timeout=120, **spec):
    spec.setdefault("out", str(tmp_path / "weights.npz"))
    done = subprocess.run(
        [MPIEXEC, "-n", str(ranks), sys.executable, "-c", RANK_SCRIPT, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done


def single(n, fits, dropout=0.0, backend="numpy"):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 6)), rng.integers(0, 3, size=n)
    model = fastnn.MLP(
        [6, 9, 3], loss="cross_entropy", dtype="float64", seed=4, dropout=dropout, backend=backend
    )
    for fit in fits:
        model.fit(X, y, progress=False, **fit)
    return model


def assert_same(tmp_path, model):
    saved = np.load(tmp_path / "weights.npz")
    weights = [a for pair in model.get_weights() for a in pair]
    for k, expected in enumerate(weights):
        np.testing.assert_allclose(saved[f"arr_{k}"], expected, rtol=1e-10, atol=1e-12)
    history = json.loads(str(saved["history"]))
    for key, values in model.history.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-10)


@pytest.mark.parametrize(
    "fit",
    [
        {"optimizer": "sgd", "lr": 0.1},
        {"optimizer": "momentum", "lr": 0.05},
        {"optimizer": "adam", "lr": 0.01},
        {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.1},
    ],
    ids=["sgd", "momentum", "adam", "adam-weight-decay"],
)
def test_two_ranks_train_as_one_process(tmp_path, fit):
    fits = [{"epochs": 3, "batch_size": 8, **fit}]
    done = run_ranks(tmp_path, n=48, fits=fits)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same(tmp_path, single(48, fits))


@pytest.mark.parametrize("n", [45, 41], ids=["uneven-shards", "a-rank-with-no-rows"])
def test_uneven_shards_and_dropout_train_as_one_process(tmp_path, n):
    """45 = 5 x 8 + 5 (shards of 3 and 2); 41 = 5 x 8 + 1 (one rank gets no row). Dropout
    masks follow the sample, not the rank."""
    fits = [{"epochs": 3, "batch_size": 8, "optimizer": "momentum", "lr": 0.05}]
    done = run_ranks(tmp_path, n=n, fits=fits, dropout=0.3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same(tmp_path, single(n, fits, dropout=0.3))


def test_a_checkpointed_distributed_run_resumes_as_one_process(tmp_path):
    ckpt = str(tmp_path / "run.ckpt")
    first = [{"epochs": 2, "batch_size": 8, "optimizer": "adam", "lr": 0.01, "checkpoint": ckpt}]
    done = run_ranks(tmp_path, n=48, fits=first)
    assert done.returncode == 0, done.stdout + done.stderr
    resumed = [{"epochs": 4, "batch_size": 8, "resume": ckpt}]
    done = run_ranks(tmp_path, n=48, fits=resumed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same(
        tmp_path, single(48, [{"epochs": 4, "batch_size": 8, "optimizer": "adam", "lr": 0.01}])
    )


@pytest.mark.parametrize(
    ("spec", "messages"),
    [
        (
            {"bad_rank": 1},
            ["rank 1: ValueError: X contains nan", "rank 0: RuntimeError: rank 1 of 2"],
        ),
        ({"other_rank": 1}, ["ranks [1] were given other X or y"] * 2),
    ],
    ids=["bad-input-on-one-rank", "other-data-on-one-rank"],
)
def test_an_error_on_one_rank_stops_every_rank(tmp_path, spec, messages):
    fits = [{"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.1}]
    done = run_ranks(tmp_path, n=48, fits=fits, timeout=60, **spec)
    assert done.returncode != 0
    for message in messages:
        assert message in done.stdout, done.stdout + done.stderr


def test_each_rank_computes_only_its_rows(tmp_path):
    fits = [{"epochs": 2, "batch_size": 10, "optimizer": "sgd", "lr": 0.1}]
    done = run_ranks(tmp_path, n=45, fits=fits, count_rows=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # per epoch, batches of 10, 10, 10, 10, 5: shares 5+5+5+5+2 and 5+5+5+5+3
    assert "rank 0 trained on 44 rows" in done.stdout
    assert "rank 1 trained on 46 rows" in done.stdout


def test_distributed_without_mpiexec_is_an_ordinary_run():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 6)), rng.integers(0, 3, size=30)
    fit = dict(epochs=2, batch_size=8, optimizer="sgd", lr=0.1, progress=False)
    a = fastnn.MLP([6, 9, 3], loss="cross_entropy", dtype="float64", seed=4)
    b = fastnn.MLP([6, 9, 3], loss="cross_entropy", dtype="float64", seed=4)
    assert a.fit(X, y, distributed=True, **fit) == b.fit(X, y, **fit)


def test_missing_mpi4py_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    model = fastnn.MLP([2, 1], loss="mse", seed=0)
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[mpi\]'"):
        model.fit(np.zeros((4, 2)), np.zeros(4), distributed=True)


def test_two_ranks_train_as_one_process_on_every_backend(tmp_path, backend):
    """The gradients go through host buffers over MPI on every backend (cupy included,
    without NCCL: on the CPU CUDA emulator in CI)."""
    fits = [{"epochs": 2, "batch_size": 8, "optimizer": "adam", "lr": 0.01}]
    done = run_ranks(tmp_path, n=45, fits=fits, dropout=0.2, backend=backend)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same(tmp_path, single(45, fits, dropout=0.2, backend=backend))


def test_divergence_on_one_rank_stops_every_rank_at_the_same_batch(tmp_path):
    fits = [{"epochs": 3, "batch_size": 8, "optimizer": "sgd", "lr": 0.1}]
    done = run_ranks(tmp_path, n=48, fits=fits, nan_rank=1)
    assert done.returncode != 0
    for rank in (0, 1):
        assert (
            f"rank {rank}: TrainingDivergedError: training diverged at epoch 2, batch 1"
            in done.stdout
        ), done.stdout


def test_ctrl_c_stops_every_rank_after_the_same_batch(tmp_path):
    import os
    import signal
    import time

    spec = {
        "n": 48,
        "fits": [{"epochs": 500, "batch_size": 8, "optimizer": "sgd", "lr": 0.01}],
        "slow": True,
        "out": str(tmp_path / "w.npz"),
    }
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", sys.executable, "-c", RANK_SCRIPT, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        marks = [tmp_path / f"w.npz.started.{rank}" for rank in (0, 1)]
        while not all(m.exists() for m in marks) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # both ranks are in the training loop by now
        os.killpg(proc.pid, signal.SIGINT)  # the whole group: mpiexec and both ranks
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # (the ranks' lines may arrive interleaved)
    stops = dict(re.findall(r"rank (\d): interrupted: training interrupted after ([^;]+);", out))
    assert set(stops) == {"0", "1"} and stops["0"] == stops["1"], out + err


def run_cli(tmp_path, args, model_out, ranks=2):
    """``fastnn ARGS --model-out MODEL_OUT``, under ``mpiexec -n ranks`` when ranks > 1."""
    launch = [MPIEXEC, "-n", str(ranks)] if ranks > 1 else []
    distributed = ["--distributed"] if ranks > 1 else []
    return subprocess.run(
        [
            *launch,
            sys.executable,
            "-m",
            "fastnn",
            *args,
            *distributed,
            "--model-out",
            str(model_out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_env(),
    )


def test_the_cli_trains_distributed_as_one_process(tmp_path):
    args = ["train", "--data", "spirals", "--epochs", "5", "--dtype", "float64", "--no-plot"]
    done = run_cli(tmp_path, args, tmp_path / "two.safetensors")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("test accuracy") == 1  # rank 0 reports, once
    one = run_cli(tmp_path, args, tmp_path / "one.safetensors", ranks=1)
    assert one.returncode == 0, one.stderr
    two = fastnn.load(tmp_path / "two.safetensors").state_dict()
    for name, value in fastnn.load(tmp_path / "one.safetensors").state_dict().items():
        np.testing.assert_allclose(two[name], value, rtol=1e-10, atol=1e-12)


def test_a_checkpoint_of_two_ranks_resumes_in_one_process(tmp_path):
    """The checkpoint holds the global run (weights, optimizer, position, history), so any
    number of ranks may continue it."""
    ckpt = str(tmp_path / "run.ckpt")
    fit = {"batch_size": 8, "optimizer": "momentum", "lr": 0.05}
    done = run_ranks(tmp_path, n=45, fits=[{"epochs": 2, "checkpoint": ckpt, **fit}])
    assert done.returncode == 0, done.stdout + done.stderr
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(45, 6)), rng.integers(0, 3, size=45)
    resumed = fastnn.MLP([6, 9, 3], loss="cross_entropy", dtype="float64", seed=4)
    resumed.fit(X, y, epochs=4, batch_size=8, resume=ckpt, progress=False)
    expected = single(45, [{"epochs": 4, **fit}])
    for (W, b), (W2, b2) in zip(resumed.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(W, W2, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, b2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(resumed.history["loss"], expected.history["loss"], rtol=1e-10)


def test_the_cli_picks_a_gpu_per_rank_on_cupy(tmp_path):
    """On the CPU CUDA emulator in CI (one device): both ranks select device 0 and train."""
    from fastnn.backends import unavailable_reason

    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    args = ["train", "--data", "xor", "--epochs", "3", "--backend", "cupy", "--no-plot"]
    done = run_cli(tmp_path, args, tmp_path / "m.safetensors")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("mode", ["sync", "local"])
def test_synchronized_batchnorm_trains_as_one_process(tmp_path, mode):
    """BatchNorm(sync=True) uses the global batch's statistics (running ones included):
    two ranks equal one process. Without sync each rank uses its own rows' (as DDP)."""
    fits = [{"epochs": 3, "batch_size": 10, "optimizer": "momentum", "lr": 0.05}]
    done = run_ranks(tmp_path, n=45, fits=fits, bn=mode)
    assert done.returncode == 0, done.stdout + done.stderr
    layers = [
        fastnn.Dense(6, 9),
        fastnn.BatchNorm(9, sync=mode == "sync"),
        fastnn.Activation("tanh"),
        fastnn.Dense(9, 3, "softmax"),
    ]
    model = fastnn.Sequential(layers, loss="cross_entropy", dtype="float64", seed=4)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(45, 6)), rng.integers(0, 3, size=45)
    model.fit(X, y, progress=False, **fits[0])
    saved = np.load(tmp_path / "weights.npz")
    expected = [*(a for pair in model.get_weights() for a in pair), *model.state_dict().values()]
    same = all(
        np.allclose(saved[f"arr_{k}"], e, rtol=1e-10, atol=1e-12) for k, e in enumerate(expected)
    )
    assert same == (mode == "sync")


def test_cupy_gradients_allreduce_through_nccl_in_one_rank(rng):
    """The NCCL path, as far as one GPU can take it: a one-rank communicator leaves the
    gradients as they were. Runs where CuPy has NCCL and a GPU (bench/gpu_check.sh);
    skipped on the CPU CUDA emulator, which has no NCCL."""
    from types import SimpleNamespace

    from fastnn.backends import unavailable_reason
    from fastnn.distributed import AllreduceGradients, Communicator

    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    nccl = need_module("cupy.cuda.nccl", "pip install nvidia-nccl-cu13 (NCCL for CuPy)")
    if not getattr(nccl, "available", True):
        pytest.skip("CuPy finds no NCCL library here")
    model = fastnn.MLP([5, 7, 3], loss="cross_entropy", backend="cupy", dtype="float64", seed=0)
    X, y = rng.normal(size=(16, 5)), rng.integers(0, 3, size=16)
    model.train_batch(model.backend.asarray(X), model.backend.asarray(y))
    before = [model.backend.to_numpy(g).copy() for g in model.parameter_gradients()]
    hook = AllreduceGradients(Communicator())
    run = SimpleNamespace(model=model, batch_rows=(16, 16), interrupted=False)
    for layer in reversed(range(len(model.layers))):
        hook.after_layer_backward(run, layer)
    hook.after_backward(run)
    assert hook.nccl is not None
    for g, b in zip(model.parameter_gradients(), before):
        np.testing.assert_allclose(model.backend.to_numpy(g), b, rtol=1e-12)
