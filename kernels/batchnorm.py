"""Batch normalization in fused passes over a row-major batch (Numba, CPU).

Pure: no fastnn imports. ``X`` is (n, m): n rows (samples), m features. The sums run over
rows, row by row, into per-feature accumulators in float64, so every pass reads memory in
order. Training: one pass for the means, one for the variances, one writing ``X_hat`` and
``H``. Backward: one pass for ``dbeta`` and ``dgamma``, one for ``dX``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)


@jit
def train_forward(X, gamma, beta, eps, H, X_hat, mean, var, inv_std):
    """``mean``, biased ``var`` and ``inv_std = 1 / sqrt(var + eps)`` per feature; then
    ``X_hat = (X - mean) inv_std`` and ``H = gamma X_hat + beta``."""
    n, m = X.shape
    acc = np.zeros(m)
    for i in range(n):
        for j in range(m):
            acc[j] += X[i, j]
    for j in range(m):
        mean[j] = acc[j] / n
        acc[j] = 0.0
    for i in range(n):
        for j in range(m):
            d = X[i, j] - mean[j]
            acc[j] += d * d
    for j in range(m):
        var[j] = acc[j] / n
        inv_std[j] = 1.0 / math.sqrt(acc[j] / n + eps)
    for i in range(n):
        for j in range(m):
            x_hat = (X[i, j] - mean[j]) * inv_std[j]
            X_hat[i, j] = x_hat
            H[i, j] = gamma[j] * x_hat + beta[j]


@jit
def eval_forward(X, gamma, beta, running_mean, running_var, eps, H):
    """``H = gamma (X - running_mean) / sqrt(running_var + eps) + beta``."""
    n, m = X.shape
    for i in range(n):
        for j in range(m):
            H[i, j] = (X[i, j] - running_mean[j]) * (
                gamma[j] / math.sqrt(running_var[j] + eps)
            ) + beta[j]


@jit
def backward(dH, X_hat, inv_std, gamma, need_dX, dX, dgamma, dbeta):
    """``dbeta = sum dH``, ``dgamma = sum dH X_hat`` over rows; with ``need_dX``,
    ``dX = gamma inv_std / n (n dH - dbeta - X_hat dgamma)``."""
    n, m = dH.shape
    sum_d = np.zeros(m)
    sum_dx = np.zeros(m)
    for i in range(n):
        for j in range(m):
            sum_d[j] += dH[i, j]
            sum_dx[j] += dH[i, j] * X_hat[i, j]
    for j in range(m):
        dbeta[j] = sum_d[j]
        dgamma[j] = sum_dx[j]
    if need_dX:
        for i in range(n):
            for j in range(m):
                dX[i, j] = (gamma[j] * inv_std[j] / n) * (
                    n * dH[i, j] - sum_d[j] - X_hat[i, j] * sum_dx[j]
                )
