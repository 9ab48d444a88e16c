"""Property-based tests: random networks, data and settings, checked against invariants."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_module

import fastnn

hypothesis = need_module("hypothesis", "pip install hypothesis", module_level=True)
from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HEADS = [
    ("mse", "identity"),
    ("mse", "tanh"),
    ("mse", "sigmoid"),
    ("cross_entropy", "softmax"),
    ("binary_cross_entropy", "sigmoid"),
]
PROFILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def problems(draw):
    """A random network (1 to 4 layers, widths 1 to 64) with matching random data."""
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 64), min_size=depth + 1, max_size=depth + 1))
    loss, output = draw(st.sampled_from(HEADS))
    if loss == "cross_entropy":
        widths[-1] = max(widths[-1], 2)
    hidden = draw(st.sampled_from(["identity", "sigmoid", "tanh", "relu", "softmax"]))
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, widths[0])) * draw(st.sampled_from([1e-3, 1.0, 10.0]))
    k = widths[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, k)).astype(float)
    else:
        y = rng.normal(size=(n, k))
    model_kwargs = dict(activation=hidden, output=output, loss=loss, seed=seed)
    return widths, model_kwargs, X, y


@PROFILE
@given(problems())
@pytest.mark.filterwarnings("ignore:y holds a single class")
def test_gradients_match_finite_differences(problem):
    widths, kwargs, X, y = problem
    model = fastnn.MLP(widths, dtype="float64", **kwargs)
    # At relu's kink the derivative does not exist: skip draws with a relu pre-activation
    # so close to 0 that a finite-difference step can cross it.
    assume(_relu_margin(model, X) > 1e-4)
    errors = fastnn.gradcheck(model, X, y, max_entries=12)
    assert len(errors) == len(widths) - 1
    assert max(errors) < 1e-6, errors


def _relu_margin(model, X):
    """Smallest |pre-activation| of any relu unit over ``X`` (inf without relu)."""
    margin = np.inf
    H = X
    for layer, (W, b) in zip(model.layers, model.get_weights()):
        Z = H @ W.T + b
        if layer.activation == "relu":
            margin = min(margin, float(np.abs(Z).min()))
        H = getattr(model.backend, layer.activation)(Z)
    return margin


@PROFILE
@given(problems(), st.sampled_from(["float32", "float64"]))
@pytest.mark.filterwarnings("ignore:y holds a single class")
def test_backends_agree_and_shapes_are_right(problem, dtype):
    widths, kwargs, X, y = problem
    model = fastnn.MLP(widths, dtype=dtype, **kwargs)
    report = fastnn.check_backends(model, X, y, steps=2)
    assert report.ok, str(report)
    n, k = X.shape[0], widths[-1]
    out = model.predict(X)
    if kwargs["loss"] == "cross_entropy":
        assert out.shape == (n,) and set(np.unique(out)) <= set(range(k))
        assert model.predict_proba(X).shape == (n, k)
    elif kwargs["loss"] == "binary_cross_entropy":
        assert out.shape == ((n,) if k == 1 else (n, k))
    else:
        assert out.shape == (n, k)


@PROFILE
@given(
    problems(),
    st.integers(1, 50),
    st.sampled_from(["sgd", "momentum", "adam"]),
    st.floats(1e-4, 1e3, allow_nan=False),
)
@pytest.mark.filterwarnings("ignore:y holds a single class")
def test_training_never_leaves_nan_weights_silently(problem, batch_size, optimizer, lr):
    """Each outcome has its own claims: a run that returns has a finite loss every epoch;
    a run that stops names the epoch after the last one recorded and a batch that exists,
    with the advice. Either way the weights are finite."""
    widths, kwargs, X, y = problem
    model = fastnn.MLP(widths, **kwargs)
    diverged = None
    try:
        history = model.fit(X, y, epochs=3, batch_size=batch_size, optimizer=optimizer, lr=lr)
    except fastnn.TrainingDivergedError as exc:
        diverged = exc
    event("diverged" if diverged else "trained")
    for W, b in model.get_weights():
        assert np.isfinite(W).all() and np.isfinite(b).all()
    if diverged is None:
        assert len(history["loss"]) == 3 and np.isfinite(history["loss"]).all()
    else:
        batches = -(-X.shape[0] // batch_size)
        assert diverged.epoch == len(model.history["loss"]) + 1 <= 3
        assert 1 <= diverged.batch <= batches
        assert "lower learning rate" in str(diverged)
        assert np.isfinite(model.history["loss"]).all()
