"""Shared fixtures: every backend-dependent test runs once per backend and dtype.

Backends whose library or device is missing, and oracles (PyTorch, scikit-learn, NVRTC)
that are not installed, show up as skipped with the reason, except where the
``FASTNN_REQUIRE`` environment variable names them (comma-separated): there a missing
one fails the run. CI requires its oracles that way, so that no claim rests on a test
that was skipped; the GPU check requires ``cupy``.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from fastnn.backends import _REGISTRY, _Entry, known_backends, unavailable_reason
from fastnn.backends.numpy_backend import NumpyBackend
from fastnn.conformance import TOLERANCES


def _required() -> set[str]:
    return {name.strip() for name in os.environ.get("FASTNN_REQUIRE", "").split(",")}


def skip_unless_required(what: str, reason: str, module_level: bool = False) -> None:
    """Skip with ``reason``, or fail where ``$FASTNN_REQUIRE`` lists ``what``."""
    if what in _required():
        pytest.fail(f"{what} is required here ($FASTNN_REQUIRE) but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def need_module(module: str, install: str, module_level: bool = False):
    """Import a library a test needs beyond fastnn's core (an oracle such as PyTorch, or a
    file format), or skip (fail where required) with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_unless_required(module, f"{module} is not installed ({exc}): {install}", module_level)


def pytest_runtest_setup(item):
    """Tests marked ``files`` read or write model files: they need safetensors, which a
    bare GPU image may lack (training itself does not)."""
    if item.get_closest_marker("files") is not None:
        need_module("safetensors", "pip install safetensors")


def tolerance(backend: str, dtype: str) -> dict[str, float]:
    rtol, atol = TOLERANCES[(backend, dtype)]
    return {"rtol": rtol, "atol": atol}


@pytest.fixture(params=known_backends())
def backend(request):
    """The name of each known backend; skipped visibly when it cannot run here."""
    name = request.param
    reason = unavailable_reason(name)
    if reason is not None:
        skip_unless_required(name, f"[{name}] {reason}")
    return name


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


#: what every other backend and dtype is compared with
REFERENCE = ("numpy", "float64")


@pytest.fixture(
    params=[
        (name, dtype)
        for name in known_backends()
        for dtype in ("float32", "float64")
        if (name, dtype) != REFERENCE
    ],
    ids=lambda param: f"{param[0]}-{param[1]}",
)
def candidate(request):
    """``(backend, dtype)`` for each pair but the NumPy float64 reference, so a test that
    compares with the reference never compares it with itself."""
    name = request.param[0]
    reason = unavailable_reason(name)
    if reason is not None:
        skip_unless_required(name, f"[{name}] {reason}")
    return request.param


@pytest.fixture(params=[name for name in known_backends() if name != REFERENCE[0]])
def other_backend(request):
    """Each backend but NumPy's, skipped visibly when it cannot run here."""
    reason = unavailable_reason(request.param)
    if reason is not None:
        skip_unless_required(request.param, f"[{request.param}] {reason}")
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def digits():
    from fastnn.datasets import load_digits, train_test_split

    X, y = load_digits()
    return train_test_split(X, y, test_size=0.2, seed=0)


@pytest.fixture(autouse=True)
def _default_backend_unset(monkeypatch):
    monkeypatch.delenv("FASTNN_BACKEND", raising=False)


class DeviceLikeBackend(NumpyBackend):
    """The NumPy backend under another name: a second backend that is always there, for
    tests that need two, and one with no fused paths of its own (as a GPU backend's
    device loop used to be tested on it)."""

    name = "device-like"


@pytest.fixture
def device_like(monkeypatch):
    """Registers :class:`DeviceLikeBackend` as ``"device-like"`` for one test."""
    monkeypatch.setitem(
        _REGISTRY, "device-like", _Entry(__name__, "DeviceLikeBackend", "numpy", "nothing")
    )
    return "device-like"
