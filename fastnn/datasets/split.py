"""Splitting data into training and test sets."""

from __future__ import annotations

import numpy as np


def train_test_split(
    X: np.ndarray,
    y: np.ndarray,
    test_size: float = 0.2,
    stratify: bool = True,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, X_test, y_train, y_test``, shuffled with ``seed``.

    With ``stratify`` (for 1-D integer labels) each class keeps its share in both parts.
    """
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y have different lengths: {n} and {len(y)}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size!r}")
    rng = np.random.default_rng(seed)
    if stratify and y.ndim == 1 and y.dtype.kind in "iub":
        test = np.concatenate(
            [
                idx[: int(round(test_size * len(idx)))]
                for idx in (rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y))
            ]
        )
    else:
        test = rng.permutation(n)[: int(round(test_size * n))]
    if test.size == 0 or test.size == n:
        raise ValueError(f"test_size={test_size} leaves an empty part of {n} samples")
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    train_idx = rng.permutation(np.flatnonzero(~mask))
    test_idx = rng.permutation(test)
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]
