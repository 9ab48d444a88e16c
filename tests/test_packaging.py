"""Packaging: kernels/ installs as fastnn.kernels, never as a top-level ``kernels``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fastnn.kernels

ROOT = Path(__file__).resolve().parent.parent


def test_kernels_import_as_fastnn_kernels_only():
    assert Path(fastnn.kernels.__file__).name == "__init__.py"
    assert importlib.util.find_spec("kernels") is None or not Path(
        importlib.util.find_spec("kernels").origin or ""
    ).is_relative_to(ROOT), "a top-level 'kernels' package from this project is importable"


def test_editable_install_maps_the_kernels_folder():
    source = Path(fastnn.__file__).resolve().parent
    if source != ROOT / "fastnn":
        pytest.skip("fastnn is not installed in editable mode from this checkout")
    assert Path(fastnn.kernels.__file__).resolve() == ROOT / "kernels" / "__init__.py"


@pytest.mark.slow
def test_built_wheel_has_no_top_level_kernels(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("fastnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert "kernels" not in top_level, sorted(top_level)
    assert "fastnn/kernels/__init__.py" in names
    assert "fastnn/datasets/data/digits.npz" in names
    assert "fastnn/datasets/data/DIGITS_LICENSE.txt" in names
    assert "fastnn/backends/auto_table.json" in names  # backend="auto" reads it
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
