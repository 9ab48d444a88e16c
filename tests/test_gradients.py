"""Backprop is checked three ways: finite differences, the lecture's equations, PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_module, tolerance

import fastnn
from fastnn.backends import Backend
from fastnn.datasets import make_lecture_toy
from fastnn.lecture import lecture_network

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "softmax"]
HEADS = [  # (loss, output activation)
    ("mse", "identity"),
    ("mse", "sigmoid"),
    ("mse", "tanh"),
    ("mse", "relu"),
    ("mse", "softmax"),
    ("cross_entropy", "softmax"),
    ("binary_cross_entropy", "sigmoid"),
]


def problem(loss, n_out, rng, n=9, n_in=4):
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, n_out)).astype(float)
    else:
        y = rng.normal(size=(n, n_out))
    return X, y


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("loss", "output"), HEADS)
def test_gradcheck_every_activation_and_loss(backend, hidden, loss, output, rng):
    model = fastnn.MLP(
        [4, 6, 5, 3],
        activation=hidden,
        output=output,
        loss=loss,
        backend=backend,
        dtype="float64",
        seed=3,
    )
    X, y = problem(loss, 3, rng)
    errors = fastnn.gradcheck(model, X, y, max_entries=None)
    assert len(errors) == 3
    assert max(errors) < 1e-6, errors


def test_gradcheck_catches_a_wrong_derivative(monkeypatch, rng):
    # The lecture's derivative evaluated at the wrong place: sigma'(h) instead of sigma'(z).
    def wrong(self, dH, H):
        s = 1 / (1 + np.exp(-H))
        return dH * s * (1 - s)

    monkeypatch.setattr(Backend, "backprop_sigmoid", wrong)
    model = fastnn.MLP([4, 5, 2], activation="sigmoid", loss="mse", dtype="float64", seed=0)
    X, y = problem("mse", 2, rng)
    assert fastnn.gradcheck(model, X, y)[0] > 1e-2


def test_gradcheck_leaves_the_model_unchanged(rng):
    model = fastnn.MLP([4, 5, 2], activation="tanh", loss="mse", seed=0)
    before = model.get_weights()
    fastnn.gradcheck(model, *problem("mse", 2, rng))
    for (W0, b0), (W1, b1) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)


def lecture_step(x, y, W1, b1, W2, b2, alpha):
    """One gradient-descent step in the lecture's notation: samples are columns.

    The loss is the mean squared error over the n samples (as fastnn's mse), so
    dL/dy_hat = 2 (y_hat - y) / n. Step 3 uses W2, where the lecture's code used dw2.
    """
    sigma = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    n = x.shape[1]
    z1 = W1 @ x + b1[:, None]
    h1 = sigma(z1)
    z2 = W2 @ h1 + b2[:, None]
    y_hat = sigma(z2)
    dz2 = 2 * (y_hat - y) / n * y_hat * (1 - y_hat)  # 1
    dW2 = dz2 @ h1.T  # 2
    dh1 = W2.T @ dz2  # 3
    dz1 = dh1 * h1 * (1 - h1)  # 4
    dW1 = dz1 @ x.T  # 5
    cost = np.mean((y_hat - y) ** 2)
    return (
        W1 - alpha * dW1,
        b1 - alpha * dz1.sum(axis=1),
        W2 - alpha * dW2,
        b2 - alpha * dz2.sum(axis=1),
        cost,
    )


def test_one_sgd_step_on_the_lecture_network(backend, dtype):
    X, y = make_lecture_toy()
    model = lecture_network(seed=7, backend=backend, dtype=dtype)
    (W1, b1), (W2, b2) = model.get_weights()
    W1, b1, W2, b2 = (a.astype(np.float64) for a in (W1, b1, W2, b2))
    expected = lecture_step(X.T, y[None, :], W1, b1, W2, b2, alpha=0.5)
    history = model.fit(X, y, epochs=1, batch_size=2, optimizer="sgd", lr=0.5, shuffle=False)
    tol = tolerance(backend, dtype)
    (W1n, b1n), (W2n, b2n) = model.get_weights()
    for got, want in zip((W1n, b1n, W2n, b2n), expected[:4]):
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(history["loss"][0], expected[4], **tol)


def test_gradients_api_shapes_and_agreement_with_float64(candidate, rng):
    backend, dtype = candidate
    X, y = problem("cross_entropy", 3, rng, n=20)
    model = fastnn.MLP(
        [4, 8, 3], activation="relu", loss="cross_entropy", backend=backend, dtype=dtype, seed=1
    )
    reference = model.clone(backend="numpy", dtype="float64").gradients(X, y)
    grads = model.gradients(X, y)
    assert [(dW.shape, db.shape) for dW, db in grads] == [((8, 4), (8,)), ((3, 8), (3,))]
    for (dW, db), (rW, rb) in zip(grads, reference):
        np.testing.assert_allclose(dW, rW, **tolerance(backend, dtype))
        np.testing.assert_allclose(db, rb, **tolerance(backend, dtype))


@pytest.mark.parametrize(
    ("loss", "output"),
    [("mse", "tanh"), ("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid")],
)
def test_gradients_match_pytorch(backend, loss, output, rng):
    torch = need_module("torch", "pip install torch")
    X, y = problem(loss, 3, rng, n=11)
    model = fastnn.MLP(
        [4, 6, 3],
        activation="tanh",
        output=output,
        loss=loss,
        backend=backend,
        dtype="float64",
        seed=5,
    )
    layers = []
    for W, b in model.get_weights():
        linear = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
    h = torch.tanh(layers[0](torch.from_numpy(X)))
    z = layers[1](h)
    if loss == "cross_entropy":
        value = torch.nn.functional.cross_entropy(z, torch.from_numpy(y))
    elif loss == "binary_cross_entropy":
        value = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.from_numpy(y))
    else:
        value = torch.nn.functional.mse_loss(torch.tanh(z), torch.from_numpy(y))
    value.backward()
    for (dW, db), linear in zip(model.gradients(X, y), layers):
        np.testing.assert_allclose(dW, linear.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(db, linear.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.evaluate(X, y)["loss"], value.item(), rtol=1e-12)
