"""model.trace: one pass in the lecture's notation, checked against the lecture's equations
worked by hand (column notation, written here independently of fastnn) and against
model.gradients."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tolerance

import fastnn
from fastnn.datasets import make_lecture_toy
from fastnn.lecture import lecture_network


def _lecture_net(backend: str, dtype: str) -> fastnn.Sequential:
    return lecture_network(seed=3, backend=backend, dtype=dtype)


def _by_hand(W1, b1, W2, b2, x, y):
    """The lecture's 2-5-1 equations with one column per sample, in float64.

    ``L = (1/n) sum (y_hat - y)^2``, so ``dL/dy_hat = 2 (y_hat - y) / n``;
    ``sigma'(z) = sigma(z) (1 - sigma(z))``; ``dh1 = W2^T dz2`` (not the lecture's dw2).
    """

    def sigma(z):
        return 1 / (1 + np.exp(-z))

    n = x.shape[1]
    z1 = W1 @ x + b1[:, None]
    h1 = sigma(z1)
    z2 = W2 @ h1 + b2[:, None]
    y_hat = sigma(z2)
    L = np.mean((y_hat - y) ** 2)
    dh2 = 2 * (y_hat - y) / n
    dz2 = dh2 * sigma(z2) * (1 - sigma(z2))
    dW2 = dz2 @ h1.T
    db2 = dz2.sum(axis=1)
    dh1 = W2.T @ dz2
    dz1 = dh1 * sigma(z1) * (1 - sigma(z1))
    dW1 = dz1 @ x.T
    db1 = dz1.sum(axis=1)
    return {
        "h^0": x,
        "z^1": z1,
        "h^1": h1,
        "z^2": z2,
        "h^2": y_hat,
        "L": L,
        "dh^2": dh2,
        "dz^2": dz2,
        "dW^2": dW2,
        "db^2": db2,
        "dh^1": dh1,
        "dz^1": dz1,
        "dW^1": dW1,
        "db^1": db1,
    }


def test_trace_is_the_lecture_worked_by_hand(backend, dtype):
    X, y = make_lecture_toy()
    model = _lecture_net(backend, dtype)
    (W1, b1), (W2, b2) = (tuple(np.asarray(a, np.float64) for a in p) for p in model.get_weights())
    want = _by_hand(W1, b1, W2, b2, X.T, y[None, :])
    trace = model.trace(X, y)
    assert trace.names() == list(want)  # the lecture's order
    for name, value in want.items():
        entry = trace[name]
        assert entry.lecture_shape == np.shape(value), name
        np.testing.assert_allclose(
            entry.lecture_value(), value, err_msg=name, **tolerance(backend, dtype)
        )


ARCHITECTURES = {
    "lecture": dict(sizes=[2, 5, 1], activation="sigmoid", output="sigmoid", loss="mse"),
    "softmax": dict(sizes=[6, 7, 4], activation="tanh", loss="cross_entropy"),
    "binary": dict(sizes=[6, 5, 2], activation="relu", loss="binary_cross_entropy"),
    "bn-dropout": dict(
        sizes=[6, 8, 5, 3], activation="relu", loss="cross_entropy", batch_norm=True, dropout=0.3
    ),
}


def _targets(loss: str, n: int, rng) -> np.ndarray:
    if loss == "cross_entropy":
        return rng.integers(0, 3, n) % 3
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, 2))
    return rng.random(n)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_trace_gradients_are_model_gradients_and_nothing_changes(backend, dtype, arch):
    config = dict(ARCHITECTURES[arch])
    sizes = config.pop("sizes")
    model = fastnn.MLP(sizes, backend=backend, dtype=dtype, seed=1, **config)
    rng = np.random.default_rng(0)
    X = rng.random((9, sizes[0]))
    y = _targets(config["loss"], 9, rng)
    if config["loss"] == "cross_entropy":
        y = y % sizes[-1]
    before = [np.array(model.backend.to_numpy(a), copy=True) for a in model.state_arrays()]
    trace = model.trace(X, y)
    after = [model.backend.to_numpy(a) for a in model.state_arrays()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)  # parameters and running statistics unchanged
    grads = model.gradients(X, y)
    for i, (layer, layer_grads) in enumerate(zip(model.layers, grads)):
        for name, g in zip(layer.parameter_names, layer_grads):
            np.testing.assert_array_equal(trace[f"d{name}^{i + 1}"].value, g)
    assert trace.names()[0] == "h^0" and "L" in trace.names()
    assert trace[f"h^{len(model.layers)}"].shape == (9, sizes[-1])


def test_printed_trace_reads_like_the_lecture():
    X, y = make_lecture_toy()
    model = _lecture_net("numpy", "float64")
    text = str(model.trace(X, y))
    prose = " ".join(text.split())  # the prose wraps at 92 columns
    assert "one column per sample" in prose and "fastnn stores the transpose" in prose
    assert "z^1 = W^1 h^0 + b^1   (5 x 2)" in text
    assert "dW^2 = dz^2 (h^1)^T   (1 x 5)" in text
    assert "dh^1 = (W^2)^T dz^2   (5 x 2)" in text
    assert "np.dot(dw2.T, dz2)" in text and "silently wrong" in prose
    assert max(len(line) for line in text.splitlines()) <= 100


def test_the_lecture_bug_note_shows_what_dw_transposed_gives():
    X, y = make_lecture_toy()
    trace = _lecture_net("numpy", "float64").trace(X, y)
    wrong = trace["dW^2"].value.T @ trace["dz^2"].lecture_value()  # the lecture's dh1
    right = trace["dh^1"].lecture_value()
    assert wrong.shape == right.shape and not np.allclose(wrong, right)
    assert np.array2string(wrong, precision=5, max_line_width=100) in trace["dh^1"].note


def test_large_layers_print_as_summaries():
    model = fastnn.MLP([30, 40, 3], loss="cross_entropy", seed=0)
    rng = np.random.default_rng(0)
    text = str(model.trace(rng.random((8, 30)), rng.integers(0, 3, 8)))
    assert "norm " in text and "(320 values)" in text  # h^1: 40 units x 8 samples


def test_unknown_entry_names_the_ones_there():
    X, y = make_lecture_toy()
    with pytest.raises(KeyError, match="dW\\^1"):
        _lecture_net("numpy", "float64").trace(X, y)["dW^7"]


def test_each_layer_states_its_own_equation():
    rng = np.random.default_rng(0)
    X = rng.random((6, 4))
    model = fastnn.MLP(
        [4, 5, 3],
        loss="cross_entropy",
        batch_norm=True,
        dropout=0.5,
        preprocess=fastnn.Standardize.fit(X),
        seed=0,
    )
    trace = model.trace(X, np.arange(6) % 3)
    kinds = [layer.kind for layer in model.layers]
    assert kinds[:5] == ["Standardize", "Dense", "BatchNorm", "Activation", "Dropout"]
    assert trace["h^1"].equation == "h^1 = (h^0 - shift) / scale"
    assert trace["z^2"].equation == "z^2 = W^2 h^1 + b^2"
    assert trace["h^3"].equation.startswith("h^3 = gamma^3 (h^2 - mu)")
    assert trace["h^4"].equation == "h^4 = relu(h^3)"
    assert trace["h^5"].equation.startswith("h^5 = h^4  (the identity")
    np.testing.assert_array_equal(trace["h^5"].value, trace["h^4"].value)
