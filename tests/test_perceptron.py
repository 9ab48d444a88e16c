"""Rosenblatt's perceptron."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.datasets import make_xor


def separable(rng, n=200, margin=0.2):
    w = np.array([1.5, -2.0, 0.5])
    X = rng.uniform(-1, 1, size=(4 * n, 3))
    score = X @ w + 0.3
    keep = np.abs(score) > margin
    return X[keep][:n], np.where(score[keep][:n] > 0, 1, -1)


def test_converges_on_separable_data(backend, rng):
    X, y = separable(rng)
    p = fastnn.Perceptron(3, backend=backend, seed=0).fit(X, y)
    assert p.converged_ and p.mistakes_[-1] == 0 and len(p.mistakes_) < 100
    assert (p.predict(X) == y).all()


def test_labels_are_any_two_values(rng):
    X, y = separable(rng)
    p = fastnn.Perceptron(3, seed=0).fit(X, np.where(y > 0, 7, 3))
    assert p.classes_ == (3, 7)
    assert set(p.predict(X).tolist()) == {3, 7}


def test_does_not_converge_on_xor():
    X, y = make_xor()
    p = fastnn.Perceptron(2, max_epochs=50, seed=0).fit(X, y)
    assert not p.converged_ and len(p.mistakes_) == 50 and min(p.mistakes_) > 0


def test_one_epoch_follows_the_rule_by_hand():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, -1])
    p = fastnn.Perceptron(2, lr=0.5, max_epochs=1, shuffle=False).fit(X, y)
    # sample 1: W.x + b = 0, sign(0) = -1 != 1 -> W = [0.5, 0], b = 0.5
    # sample 2: W.x + b = 0.5 > 0 -> +1 != -1 -> W = [0.5, -0.5], b = 0
    np.testing.assert_array_equal(fastnn.to_numpy(p.W), [0.5, -0.5])
    assert p.b == 0.0 and p.mistakes_ == [2]


def test_bad_input():
    p = fastnn.Perceptron(2)
    with pytest.raises(ValueError, match="exactly two classes"):
        p.fit(np.ones((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        p.fit(np.ones((3, 2)), np.array([0, 1]))
    with pytest.raises(RuntimeError, match="before fit"):
        p.predict(np.ones((1, 2)))
    with pytest.raises(ValueError, match="expected X with 2 features"):
        p.fit(np.ones((3, 3)), np.array([0, 1, 1]))
