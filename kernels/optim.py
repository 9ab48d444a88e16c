"""Numba CPU kernels for in-place optimizer updates, one pass over each parameter.

Pure: no fastnn imports. Arguments are flat (1-D, contiguous) views of a parameter ``P``,
its gradient ``G`` and the optimizer's state; ``wd`` is the L2 weight decay added to the
gradient (``g = G + wd P``). Callers pass the scalars in the parameters' dtype, so float32
updates stay in float32 (as NumPy computes them) and vectorize.
"""

from __future__ import annotations

import math

import numba

# error_model="numpy": a float division by zero gives Inf or NaN (which training detects),
# not a raised ZeroDivisionError, whose per-element check kept Adam's loop from vectorizing.
jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@jit
def sgd(P, G, lr, wd):
    """``P -= lr (G + wd P)``."""
    if wd == 0:
        for k in range(P.size):
            P[k] -= lr * G[k]
    else:
        for k in range(P.size):
            P[k] -= lr * (G[k] + wd * P[k])


@jit
def momentum(P, G, V, lr, mu, nesterov, wd):
    """``v = mu v + g``; ``P -= lr (g + mu v)`` if ``nesterov`` else ``P -= lr v``."""
    for k in range(P.size):
        g = G[k] + wd * P[k]
        v = mu * V[k] + g
        V[k] = v
        P[k] -= lr * (g + mu * v if nesterov else v)


@jit
def adam(P, G, M, V, step, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, c2, wd):
    """Moments ``m, v`` of ``g``; ``P -= step m / (sqrt(v / c2) + eps)`` with
    ``step = lr / c1`` and ``c = 1 - beta^t``. Every scalar comes in the parameters' dtype
    (no float64 literal here), so float32 stays float32, as NumPy computes it."""
    for k in range(P.size):
        g = G[k] + wd * P[k]
        m = beta1 * M[k] + one_minus_beta1 * g
        v = beta2 * V[k] + one_minus_beta2 * (g * g)
        M[k] = m
        V[k] = v
        P[k] -= step * m / (math.sqrt(v / c2) + eps)


# Reassociation lets the reduction below vectorize (8x faster here); the flags that would
# assume away NaN and Inf (nnan, ninf) stay off, so both still propagate to the result.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz", "contract"})
def all_finite(A):
    """True when no element of the flat array ``A`` is NaN or infinite.

    ``x * 0`` is 0 for finite ``x`` and NaN for NaN or +-Inf, so the sum is 0 exactly when
    every element is finite (and cannot overflow).
    """
    total = A.dtype.type(0.0)
    zero = A.dtype.type(0.0)
    for k in range(A.size):
        total += A[k] * zero
    return total == 0
