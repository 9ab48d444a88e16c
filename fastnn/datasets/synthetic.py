"""Small generated datasets for seeing backprop work."""

from __future__ import annotations

import numpy as np


def make_lecture_toy() -> tuple[np.ndarray, np.ndarray]:
    """The lecture's toy problem: 2 samples of 2 features, one target each in (0, 1).

    It is sized for the lecture's 2-5-1 sigmoid network trained on the full batch with
    the mean squared error; the cost curve falls towards 0.

    Returns
    -------
    X : ndarray of shape (2, 2)
    y : ndarray of shape (2,)
    """
    X = np.array([[0.05, 0.10], [0.90, 0.70]])
    y = np.array([0.90, 0.10])
    return X, y


def make_xor() -> tuple[np.ndarray, np.ndarray]:
    """XOR: the four corners of the unit square, labelled 1 where exactly one input is 1.

    Not linearly separable, so a perceptron fails and one hidden layer succeeds.

    Returns
    -------
    X : ndarray of shape (4, 2)
    y : ndarray of shape (4,), int64
    """
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([0, 1, 1, 0], dtype=np.int64)


def make_spirals(
    n_samples: int = 400, noise: float = 0.05, turns: float = 1.0, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane, one per class.

    Parameters
    ----------
    n_samples : int
        Total points, split evenly between the classes (the first class gets the odd one).
    noise : float
        Standard deviation of Gaussian noise added to each coordinate.
    turns : float
        How many times each arm winds around the origin.
    seed : int, optional

    Returns
    -------
    X : ndarray of shape (n_samples, 2), roughly in [-1, 1]
    y : ndarray of shape (n_samples,), int64 in {0, 1}
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    rng = np.random.default_rng(seed)
    sizes = (n_samples - n_samples // 2, n_samples // 2)
    X, y = [], []
    for label, size in enumerate(sizes):
        r = np.linspace(0.05, 1.0, size)
        theta = 2 * np.pi * turns * r + np.pi * label
        points = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
        X.append(points + rng.normal(0.0, noise, points.shape))
        y.append(np.full(size, label, dtype=np.int64))
    return np.concatenate(X), np.concatenate(y)
