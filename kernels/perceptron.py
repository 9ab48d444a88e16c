"""Numba CPU kernel for Rosenblatt's perceptron. Pure: no fastnn imports."""

from __future__ import annotations

import numba

jit = numba.njit(cache=True, nogil=True)


@jit
def perceptron_epoch(X, y, w, b, lr):
    """Rosenblatt's rule over the rows in order; updates ``w`` in place, returns (mistakes, b)."""
    mistakes = 0
    for i in range(X.shape[0]):
        s = b
        for j in range(X.shape[1]):
            s += w[j] * X[i, j]
        y_hat = 1.0 if s > 0 else -1.0
        if y_hat != y[i]:
            for j in range(X.shape[1]):
                w[j] += lr * y[i] * X[i, j]
            b += lr * y[i]
            mistakes += 1
    return mistakes, b
