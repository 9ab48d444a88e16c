"""Numba CPU kernels for dense layers: fused epilogues and prologues around the BLAS GEMM.

Pure: no fastnn imports. Every kernel is compiled on its first call (per dtype) and cached
on disk (``cache=True``). They run serially (no ``parallel=True``): the matrix products
stay in the machine's threaded BLAS, and Numba threads competing with BLAS threads for the
same cores were measured to be much slower (see the README's Backends section).

Notation: ``Z = X @ W.T + b`` is a layer's pre-activation, ``H = act(Z)`` its output;
``dH``, ``dZ`` the loss's gradients with respect to them. Activations are chosen by the
integer codes below (one compiled loop per dtype instead of one per activation).
No kernel here uses ``fastmath``: NaN and Inf must propagate so training can detect them
(only ``optim.all_finite`` does, without the flags that assume finite values).

Elementwise work stays in the arrays' dtype: a float literal such as ``1.0`` is float64 in
Numba, and ``1.0 - h`` would compute a float32 ``h`` in float64 (converted there and back,
and rounded differently from NumPy's float32). Constants are made with ``A.dtype.type``.
Only the loss sums accumulate in float64, on purpose: they add up a whole batch.
"""

from __future__ import annotations

import math

import numba
import numpy as np

IDENTITY, SIGMOID, TANH, RELU, SOFTMAX = 0, 1, 2, 3, 4
CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "softmax": SOFTMAX}

# error_model="numpy": a float division by zero gives Inf or NaN (training detects those)
# instead of a per-element ZeroDivisionError check that keeps loops from vectorizing.
jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@jit
def _sigmoid(z, one):
    # exp of a non-positive number only: never overflows; ``one`` is 1 in z's dtype
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


@jit
def bias_activation(Z, b, code):
    """In place: ``Z[i, j] = act(Z[i, j] + b[j])`` (softmax: over each row)."""
    n, m = Z.shape
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    for i in range(n):
        row = Z[i]
        if code == RELU:
            for j in range(m):
                v = row[j] + b[j]
                row[j] = zero if v <= 0 else v  # NaN stays NaN, as numpy.maximum
        elif code == SIGMOID:
            for j in range(m):
                row[j] = _sigmoid(row[j] + b[j], one)
        elif code == TANH:
            for j in range(m):
                row[j] = math.tanh(row[j] + b[j])
        elif code == IDENTITY:
            for j in range(m):
                row[j] = row[j] + b[j]
        else:
            top = Z.dtype.type(-np.inf)
            for j in range(m):
                row[j] = row[j] + b[j]
                if row[j] > top:
                    top = row[j]
            total = zero
            for j in range(m):
                e = math.exp(row[j] - top)
                row[j] = e
                total += e
            for j in range(m):
                row[j] = row[j] / total


@jit
def activation_backward_bias(dH, H, code, dZ, db):
    """``dZ = dH * act'(Z)`` written from the output ``H``, and ``db = sum_rows(dZ)``, in one pass.

    relu: ``H > 0``; sigmoid: ``H (1 - H)``; tanh: ``1 - H^2``; softmax (per row):
    ``H * (dH - sum_j dH H)``.
    """
    n, m = dH.shape
    zero, one = dZ.dtype.type(0), dZ.dtype.type(1)
    for j in range(m):
        db[j] = zero
    for i in range(n):
        g = dH[i]
        h = H[i]
        out = dZ[i]
        if code == RELU:
            for j in range(m):
                out[j] = g[j] * (one if h[j] > 0 else zero)  # NaN * 0 stays NaN
        elif code == SIGMOID:
            for j in range(m):
                out[j] = g[j] * h[j] * (one - h[j])
        elif code == TANH:
            for j in range(m):
                out[j] = g[j] * (one - h[j] * h[j])
        elif code == IDENTITY:
            for j in range(m):
                out[j] = g[j]
        else:
            dot = zero
            for j in range(m):
                dot += g[j] * h[j]
            for j in range(m):
                out[j] = h[j] * (g[j] - dot)
        for j in range(m):
            db[j] += out[j]


@jit
def column_sums(A, out):
    """``out[j] = sum_i A[i, j]``."""
    n, m = A.shape
    for j in range(m):
        out[j] = out.dtype.type(0)
    for i in range(n):
        for j in range(m):
            out[j] += A[i, j]


@jit
def _softmax_row(row, out):
    """``out = softmax(row)`` with one ``exp`` per element; returns ``log(sum(exp(row - max)))
    + max``, the row's log-sum-exp."""
    top = row.dtype.type(-np.inf)
    for j in range(row.size):
        if row[j] > top:
            top = row[j]
    total = out.dtype.type(0)
    for j in range(row.size):
        e = math.exp(row[j] - top)
        out[j] = e
        total += e
    for j in range(row.size):
        out[j] = out[j] / total
    return top + math.log(total)


@jit
def softmax_cross_entropy_labels(Z, labels, dZ):
    """Mean of ``logsumexp(Z[i]) - Z[i, labels[i]]``; ``dZ = (softmax(Z) - onehot) / n``."""
    n, m = Z.shape
    loss = 0.0
    one, rows = dZ.dtype.type(1), dZ.dtype.type(n)
    for i in range(n):
        loss += _softmax_row(Z[i], dZ[i]) - Z[i, labels[i]]
        dZ[i, labels[i]] -= one
        for j in range(m):
            dZ[i, j] /= rows
    return loss / n


@jit
def softmax_cross_entropy_dense(Z, T, dZ):
    """As :func:`softmax_cross_entropy_labels` with targets ``T`` (one-hot or probabilities)."""
    n, m = Z.shape
    loss = 0.0
    rows = dZ.dtype.type(n)
    for i in range(n):
        log_sum = _softmax_row(Z[i], dZ[i])
        for j in range(m):
            loss -= T[i, j] * (Z[i, j] - log_sum)
            dZ[i, j] = (dZ[i, j] - T[i, j]) / rows
    return loss / n


@jit
def sigmoid_binary_cross_entropy(Z, T, dZ):
    """Mean of ``max(Z,0) - Z T + log1p(exp(-|Z|))``; ``dZ = (sigmoid(Z) - T) / size``."""
    n, m = Z.shape
    size = n * m
    one, elements = dZ.dtype.type(1), dZ.dtype.type(size)
    loss = 0.0
    for i in range(n):
        for j in range(m):
            z = Z[i, j]
            t = T[i, j]
            loss += max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
            dZ[i, j] = (_sigmoid(z, one) - t) / elements
    return loss / size


@jit
def mean_squared_error(H, T, dH):
    """Mean of ``(H - T)^2`` over all elements; ``dH = 2 (H - T) / size``."""
    n, m = H.shape
    size = n * m
    scale = dH.dtype.type(2 / size)
    loss = 0.0
    for i in range(n):
        for j in range(m):
            d = H[i, j] - T[i, j]
            loss += d * d
            dH[i, j] = d * scale
    return loss / size
