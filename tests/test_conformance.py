"""Every backend returns the NumPy float64 reference's results, op by op and over training."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tolerance

import fastnn
from fastnn import conformance
from fastnn.backends import _REGISTRY, _Entry
from fastnn.backends.numpy_backend import NumpyBackend

HEADS = [
    ("mse", "identity"),
    ("mse", "sigmoid"),
    ("cross_entropy", "softmax"),
    ("binary_cross_entropy", "sigmoid"),
]


def targets(loss, n, n_out, rng):
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=n)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, n_out)).astype(float)
    return rng.normal(size=(n, n_out))


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "identity", "softmax"])
@pytest.mark.parametrize(("loss", "output"), HEADS)
def test_check_backends_every_activation_and_loss(hidden, loss, output, dtype, rng):
    n_out = 1 if loss != "cross_entropy" and hidden == "relu" else 3  # one output too
    model = fastnn.MLP(
        [5, 7, 4, n_out], activation=hidden, output=output, loss=loss, dtype=dtype, seed=2
    )
    X = rng.normal(size=(13, 5))
    report = fastnn.check_backends(model, X, targets(loss, 13, n_out, rng), steps=3)
    assert report.ok, str(report)
    compared = set(fastnn.available_backends()) - ({"numpy"} if dtype == "float64" else set())
    assert {row.backend for row in report.rows} == compared  # never the reference itself


@pytest.mark.filterwarnings("ignore:y holds a single class")
@pytest.mark.parametrize("n", [1, 2, 17])
def test_check_backends_odd_sizes_and_non_contiguous_input(n, dtype, rng):
    model = fastnn.MLP([6, 3, 2], activation="tanh", loss="cross_entropy", dtype=dtype, seed=0)
    X = np.asfortranarray(rng.normal(size=(n, 12)))[:, ::2]
    assert not X.flags.c_contiguous
    assert fastnn.check_backends(model, X, rng.integers(0, 2, size=n)).ok


class _BrokenTanh(NumpyBackend):
    name = "broken"

    def backprop_tanh(self, dH, H):
        return dH * (1 - H)  # wrong derivative


def test_check_backends_names_the_first_op_over_tolerance(monkeypatch, rng):
    monkeypatch.setitem(
        _REGISTRY, "broken", _Entry(__name__, "_BrokenTanh", "numpy", "nothing to install")
    )
    monkeypatch.setitem(conformance.TOLERANCES, ("broken", "float64"), (1e-10, 1e-12))
    model = fastnn.MLP([4, 5, 3, 2], activation="tanh", loss="mse", dtype="float64", seed=0)
    report = fastnn.check_backends(
        model, rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), backends=["broken"]
    )
    assert not report.ok
    first = report.first_failure
    # forward and loss agree; the output layer's gradients need no tanh derivative, so the
    # first wrong result is layer 1's weight gradient
    assert (first.op, first.layer, first.tensor) == ("backward", 1, "dW")
    assert "first op over tolerance: broken step 1 backward dW of layer 1" in str(report)


@pytest.mark.parametrize(("n", "batch"), [(45, 8), (7, 7), (10, 32)])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_training_trajectory_follows_float64(candidate, rng, n, batch, optimizer):
    backend, dtype = candidate
    X = rng.normal(size=(n, 6))
    y = rng.integers(0, 4, size=n)
    kwargs = dict(activation="tanh", loss="cross_entropy", seed=11)
    reference = fastnn.MLP([6, 10, 4], backend="numpy", dtype="float64", **kwargs)
    model = fastnn.MLP([6, 10, 4], backend=backend, dtype=dtype, **kwargs)
    fit = dict(epochs=3, batch_size=batch, optimizer=optimizer, lr=0.01, weight_decay=0.01)
    ref_history = reference.fit(X, y, **fit)
    history = model.fit(X, y, **fit)
    tol = tolerance(backend, dtype)
    np.testing.assert_allclose(history["loss"], ref_history["loss"], **tol)
    np.testing.assert_allclose(history["accuracy"], ref_history["accuracy"])
    for (W, b), (rW, rb) in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(W, rW, **tol)
        np.testing.assert_allclose(b, rb, **tol)


def test_forward_outputs_and_predictions_agree(candidate, rng):
    backend, dtype = candidate
    X = rng.normal(size=(50, 8))
    model = fastnn.MLP(
        [8, 16, 16, 5],
        activation="relu",
        loss="cross_entropy",
        backend=backend,
        dtype=dtype,
        seed=4,
    )
    reference = model.clone(backend="numpy", dtype="float64")
    np.testing.assert_allclose(
        model.predict_proba(X, batch_size=7),
        reference.predict_proba(X),
        **tolerance(backend, dtype),
    )
    ref_scores = reference.evaluate(X, np.arange(50) % 5)
    scores = model.evaluate(X, np.arange(50) % 5, batch_size=9)
    np.testing.assert_allclose(scores["loss"], ref_scores["loss"], **tolerance(backend, dtype))


@pytest.mark.parametrize(("loss", "output"), HEADS + [("cross_entropy_one_hot", "softmax")])
@pytest.mark.parametrize("hidden", ["sigmoid", "relu", "softmax"])
def test_small_networks_take_the_fused_path_with_the_same_results(
    other_backend, loss, output, hidden, rng, monkeypatch
):
    backend = other_backend
    one_hot = loss == "cross_entropy_one_hot"
    loss = "cross_entropy" if one_hot else loss
    X = rng.normal(size=(11, 3))
    y = targets(loss, 11, 2, rng)
    if one_hot:
        y = np.eye(2)[y]
    kwargs = dict(activation=hidden, output=output, loss=loss, seed=3)
    model = fastnn.MLP([3, 4, 2], backend=backend, dtype="float64", **kwargs)
    reference = fastnn.MLP([3, 4, 2], backend="numpy", dtype="float64", **kwargs)
    calls = []
    original = type(model.backend).sgd_epochs

    def spy(self, *args):
        result = original(self, *args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(type(model.backend), "sgd_epochs", spy)
    fit = dict(epochs=7, batch_size=4, optimizer="sgd", lr=0.1)
    history = model.fit(X, y, **fit)
    assert calls and all(calls) == (backend == "numba")
    ref_history = reference.fit(X, y, **fit)
    np.testing.assert_allclose(history["loss"], ref_history["loss"], rtol=1e-10)
    if "accuracy" in history:
        assert history["accuracy"] == ref_history["accuracy"]
    for (W, b), (rW, rb) in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(W, rW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-12)
