"""The README's code runs, and its commands are the ones CI runs."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from conftest import need_module, skip_unless_required

from fastnn.backends import unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


GPU = "# needs a GPU"
EVERY_BACKEND = "# on every backend"
ONNX = "# needs onnx"
SKLEARN = "# needs scikit-learn"


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(
            i,
            id=f"block{i}-cupy" if block.startswith(GPU) else f"block{i}",
            marks=[pytest.mark.files] if "save(" in block or "checkpoint=" in block else [],
        )
        for i, block in enumerate(PYTHON_BLOCKS)
        if not block.startswith(EVERY_BACKEND)
    ],
)
def test_readme_python_blocks_run(index, tmp_path, monkeypatch):
    if PYTHON_BLOCKS[index].startswith(ONNX):
        need_module("onnxruntime", "pip install 'fastnn[onnx]'")
    if PYTHON_BLOCKS[index].startswith(SKLEARN):
        need_module("sklearn", "pip install 'fastnn[sklearn]'")
    if PYTHON_BLOCKS[index].startswith(GPU):
        reason = unavailable_reason("cupy")
        if reason is not None:
            skip_unless_required("cupy", f"[cupy] {reason}")
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), {})


def test_readme_commands_are_what_ci_runs():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    train_command, test_command = bash_blocks[0].strip(), bash_blocks[1].strip()
    assert train_command == 'pip install ".[plot]" && fastnn train'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines(), "CI must run the README's test command verbatim"


@pytest.mark.parametrize(
    "index", [i for i, block in enumerate(PYTHON_BLOCKS) if block.startswith(EVERY_BACKEND)]
)
def test_readme_blocks_for_every_backend_run_on_each(index, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_BACKEND", backend)
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), {})


COMMAND_LINE = "# the command line"


@pytest.mark.parametrize(
    "block",
    [b for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S) if b.startswith(COMMAND_LINE)],
)
def test_readme_command_line_blocks_run(block, tmp_path):
    import shutil
    import subprocess

    need_module("onnx", "pip install 'fastnn[onnx]'")
    if shutil.which("fastnn") is None:
        pytest.skip("the fastnn command is not installed")
    done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "predictions.csv").exists() and (tmp_path / "model.onnx").exists()


def test_readme_lecture_output_is_what_fastnn_lecture_prints(tmp_path, capsys, monkeypatch):
    """Each part of the README's excerpt (split at its "...") is a run of consecutive
    lines of the command's output."""
    from fastnn.cli import main

    block = re.search(r"<!-- lecture:start -->\n```text\n(.*?)```", README, flags=re.S)
    assert block is not None
    monkeypatch.chdir(tmp_path)
    assert main(["lecture"]) == 0
    printed = capsys.readouterr().out
    for part in block.group(1).split("...\n"):
        assert part.strip() and part in printed, part


def test_readme_pictures_are_in_the_repository():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert pictures
    for path in pictures:
        assert (ROOT / path).read_bytes().startswith(b"\x89PNG"), path


BENCH_SCRIPTS = sorted(set(re.findall(r"python (bench/\w+\.py)", README)))
# what each script needs beyond fastnn's core, as need_module takes it
SCRIPT_NEEDS = {
    "bench/fold_update.py": [
        ("numba", "pip install 'fastnn[numba]'"),
        ("scipy", "pip install scipy"),
    ],
    "bench/profile_step.py": [("numba", "pip install 'fastnn[numba]'")],
    "bench/small_gemms.py": [("threadpoolctl", "pip install 'fastnn[bench]'")],
    "bench/small_networks.py": [("numba", "pip install 'fastnn[numba]'")],
    "bench/thread_layers.py": [("numba", "pip install 'fastnn[numba]'")],
}


def test_readme_names_its_bench_scripts():
    assert {"bench/profile_step.py", "bench/small_gemms.py"} <= set(BENCH_SCRIPTS)


@pytest.mark.parametrize("script", BENCH_SCRIPTS)
def test_bench_scripts_the_readme_names_exist_and_import(script):
    """Each script the README tells readers to run is there, and everything it imports
    (fastnn's modules and names included) still exists; its ``main`` is not run."""
    for module, install in SCRIPT_NEEDS.get(script, []):
        need_module(module, install)
    path = ROOT / script
    assert path.is_file(), f"the README names {script}, which does not exist"
    namespace = runpy.run_path(str(path), run_name="readme_check")
    assert callable(namespace.get("main")), f"{script} has no main()"


def test_readme_states_the_whole_run_kernels_threshold():
    """The Numba section's "weights x batch size up to N" and its per-call budget are the
    backend's constants."""
    need_module("numba", "pip install 'fastnn[numba]'")
    from fastnn.backends.numba_backend import SMALL_NETWORK_CALL_WORK, SMALL_NETWORK_WORK

    stated = re.search(r"weights x batch size up to\s+([\d,]+)", README)
    assert stated is not None
    assert int(stated.group(1).replace(",", "")) == SMALL_NETWORK_WORK
    per_call = re.search(r"one call takes at most 2\^(\d+) weight-samples", README)
    assert per_call is not None
    assert 2 ** int(per_call.group(1)) == SMALL_NETWORK_CALL_WORK
