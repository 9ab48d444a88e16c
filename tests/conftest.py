"""Shared fixtures: every backend-dependent test runs once per backend and dtype.

Backends whose library or device is missing show up as skipped, with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.backends import known_backends, unavailable_reason
from fastnn.conformance import TOLERANCES


def tolerance(backend: str, dtype: str) -> dict[str, float]:
    rtol, atol = TOLERANCES[(backend, dtype)]
    return {"rtol": rtol, "atol": atol}


@pytest.fixture(params=known_backends())
def backend(request):
    """The name of each known backend; skipped visibly when it cannot run here."""
    name = request.param
    reason = unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"[{name}] {reason}")
    return name


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
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
