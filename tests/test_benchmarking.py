"""The benchmark instrument itself: flop counts, correctness checks, the CLI and its report.

These run tiny workloads; timings are never asserted.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_module, skip_unless_required

from fastnn.backends import unavailable_reason
from fastnn.benchmarking import peers, report, suite
from fastnn.benchmarking.ops import OPS, op_workload
from fastnn.benchmarking.workloads import (
    ARCHITECTURES,
    CHECK_TOLERANCE,
    UPDATE_OPTIMIZERS,
    fastnn_epoch,
    fastnn_inference,
    fastnn_train_step,
    fastnn_update,
)
from fastnn.cli import main

S, LECTURE = ARCHITECTURES["S"], ARCHITECTURES["lecture"]


def test_flop_counts():
    assert S.weights == 784 * 128 + 128 * 10
    # forward + weight gradients for both layers, input gradient for the second only
    assert S.train_flops(1) == 2 * S.weights + 2 * S.weights + 2 * 128 * 10
    assert S.infer_flops(3) == 6 * S.weights
    assert ARCHITECTURES["L"].describe() == "784-2048-2048-10"


SMALL_BN_DROPOUT = dataclasses.replace(
    ARCHITECTURES["M-bn-dropout"], sizes=(20, 16, 8, 4), batch=16, epoch_samples=64
)


@pytest.mark.parametrize("arch", [S, LECTURE, SMALL_BN_DROPOUT], ids=["S", "lecture", "bn-dropout"])
def test_fastnn_workloads_pass_their_checks(candidate, arch):
    backend, dtype = candidate
    for workload in (
        fastnn_train_step(arch, backend, dtype),
        fastnn_epoch(arch, backend, dtype),
        fastnn_inference(arch, backend, dtype, 3),
        *(fastnn_update(arch, backend, dtype, name) for name in UPDATE_OPTIMIZERS),
    ):
        assert workload.check() <= CHECK_TOLERANCE[dtype]
        workload.run()


def test_tutorial_numpy_matches_the_reference():
    for arch in (S, LECTURE):
        assert peers.tutorial_train_step(arch, "float64").check() <= CHECK_TOLERANCE["float64"]


def test_pytorch_and_sklearn_peers_match_the_reference():
    need_module("torch", "pip install torch")
    need_module("sklearn", "pip install scikit-learn")
    assert peers.torch_train_step(LECTURE, "float64").check() <= 1e-10
    assert peers.torch_train_step(S, "float32").check() <= CHECK_TOLERANCE["float32"]
    assert peers.sklearn_epoch(S, "float64").check() <= 1e-10


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("host", [False, True], ids=["device-batch", "host-batch"])
def test_jax_peer_matches_the_reference(dtype, host):
    need_module("jax", "pip install jax")
    for arch in (LECTURE, S):
        assert peers.jax_train_step(arch, dtype, host=host).check() <= CHECK_TOLERANCE[dtype]
    epoch = peers.jax_epoch(LECTURE, dtype)
    epoch.run()
    assert epoch.check() <= CHECK_TOLERANCE[dtype]


def test_percent_peak_divides_by_the_fastest_gemm_of_the_run(monkeypatch):
    """A library faster than NumPy's BLAS sets the peak (PyTorch's MKL, JAX's XLA)."""
    from fastnn.benchmarking import ceilings

    def fast(A, B):
        return lambda: None  # "infinitely" fast: its rate dominates

    monkeypatch.setattr(ceilings, "OTHER_GEMMS", {"fake": fast})
    rates = ceilings.best_gemm_gflops("float32", size=64)
    assert set(rates) == {"numpy", "fake"} and rates["fake"] > rates["numpy"]
    report_data = report.run(["lecture"], ["train_step"], ["float32"], ["numpy"], (), 0.01)
    by_library = report_data["ceilings"]["gemm_gflops_by_library"]["float32"]
    assert report_data["ceilings"]["peak_gemm_gflops"]["float32"] == by_library["fake"]


def test_a_forced_openblas_core_type_is_recorded_and_warned(monkeypatch):
    from fastnn.benchmarking import machine

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    described = machine.describe()
    assert described["environment"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert described["environment"]["OPENBLAS_L2_SIZE"] == "1048576"
    assert "env -u OPENBLAS_CORETYPE" in described["warning"]
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert machine.describe()["warning"] is None


def test_update_rows_are_fastnns_own():
    """Peers have no optimizer-alone workload: an update row is never a peer's step."""
    built = suite.builders(S, "update_adam", "float32", ["numpy"], suite.PEERS)
    assert [name for name, _ in built] == ["fastnn[numpy]"]


def test_a_wrong_peer_fails_its_check(monkeypatch):
    monkeypatch.setattr(peers, "LR", peers.LR * 2)  # a different step than the reference's
    assert peers.tutorial_train_step(LECTURE, "float64").check() > 1e-3


def test_missing_peer_is_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" fail
    monkeypatch.setitem(sys.modules, "sklearn.neural_network", None)
    with pytest.raises(peers.PeerUnavailable, match="pip install torch"):
        peers.torch_train_step(S, "float32")
    with pytest.raises(peers.PeerUnavailable, match="pip install scikit-learn"):
        peers.sklearn_epoch(S, "float32")


@pytest.mark.parametrize("op", OPS)
def test_every_op_workload_runs_and_checks(backend, op):
    workload = op_workload(LECTURE, op, backend, "float32")
    error = workload.check()
    assert error is None or error <= CHECK_TOLERANCE["float32"]
    workload.run()


def test_fastnn_bench_cli_report_compare_and_readme(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = [
        "bench",
        "--arch",
        "lecture",
        "--kind",
        "train_step",
        "infer_batch1",
        "--backend",
        "numpy",
        "--peers",
        "numpy-tutorial",
        "--min-time",
        "0.01",
        "--no-plot",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "% peak divides by the best" in printed and "x fastnn[numpy]" in printed
    assert "numpy-tutorial" in printed
    data = json.loads(out.read_text())
    assert {r["implementation"] for r in data["results"]} == {"fastnn[numpy]", "numpy-tutorial"}
    assert all(np.isfinite(r["samples_per_s"]) for r in data["results"])
    assert main([*args, "--compare", str(out), "--json", str(tmp_path / "r2.json")]) == 0
    assert "new/old" in capsys.readouterr().out
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\nrest\n")
    report.update_readme(readme, data, "fastnn bench --arch lecture")
    text = readme.read_text()
    assert "old" not in text and "| lecture (2-5-1) | fastnn[numpy] |" in text
    assert text.startswith("intro\n") and text.endswith("rest\n")


def test_gpu_check_script_runs_at_toy_sizes_on_cupy(tmp_path):
    """bench/gpu_check.py end to end with --smoke, so a GPU session is not spent on a bug in
    the script (on the CUDA emulator in CI; on a real GPU it takes seconds)."""
    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "FASTNN_GPU_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--smoke"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "gpu-check.txt").read_text()
    run, failed = re.search(r"cupy tests: (\d+) run, (\d+) failed", table).groups()
    assert int(run) > 0 and int(failed) == 0, table
    for arch in ("S", "L", "XL"):
        assert f"{arch} " in table and "fastnn[cupy]" in table
    assert json.loads((tmp_path / "gpu-check.json").read_text())["results"]


def _gpu_check_module():
    spec = importlib.util.spec_from_file_location(
        "gpu_check", Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_keeps_every_result_when_a_workload_raises(tmp_path, monkeypatch):
    """A failure in one workload (injected into L) is recorded, the others still run, and
    the results file holds all of it; the check then fails."""
    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    from fastnn.benchmarking import suite

    gpu_check = _gpu_check_module()
    passing = {"tests": 3, "failures": 0, "errors": 0, "skipped": 0, "exit_code": 0}
    monkeypatch.setattr(gpu_check, "run_tests", lambda out, keyword: dict(passing, seconds=0))
    checked = suite.checked

    def failing_in_l(workload):
        if workload.arch.name == "L":
            raise RuntimeError("injected failure")
        return checked(workload)

    monkeypatch.setattr(suite, "checked", failing_in_l)
    monkeypatch.setenv("FASTNN_GPU_RESULTS", str(tmp_path))
    assert gpu_check.main(["--smoke"]) == 1
    data = json.loads((tmp_path / "gpu-check.json").read_text())
    assert {r["arch"] for r in data["results"]} == {"S", "XL"}
    assert [e["arch"] for e in data["errors"]] == ["L"]
    assert "injected failure" in data["errors"][0]["error"]
    assert "error: L: RuntimeError: injected failure" in (tmp_path / "gpu-check.txt").read_text()
    assert data["preflight"]["cupy"] and data["tests"] == dict(passing, seconds=0)


def test_peers_refuse_networks_they_cannot_twin():
    with pytest.raises(peers.PeerUnavailable, match="no peer here builds the same"):
        peers.tutorial_train_step(SMALL_BN_DROPOUT, "float32")
