"""Numba CPU kernels for in-place optimizer updates, one pass over each parameter.

Pure: no fastnn imports. Arguments are C-contiguous arrays of any shape, a parameter ``P``,
its gradient ``G`` and the optimizer's state, each walked as its flat view (taken inside the
kernel: a ``reshape`` in Python cost more than the update of a small parameter, and it would
quietly update a copy of a non-contiguous array, which the kernel refuses instead); ``wd``
is the L2 weight decay added to the gradient (``g = G + wd P``). Callers pass the scalars
in the parameters' dtype, so float32 updates stay in float32 (as NumPy computes them) and
vectorize.
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
    p, g = P.reshape(P.size), G.reshape(G.size)
    if wd == 0:
        for k in range(p.size):
            p[k] -= lr * g[k]
    else:
        for k in range(p.size):
            p[k] -= lr * (g[k] + wd * p[k])


@jit
def momentum(P, G, V, lr, mu, nesterov, wd):
    """``v = mu v + g``; ``P -= lr (g + mu v)`` if ``nesterov`` else ``P -= lr v``."""
    p, grad, vel = P.reshape(P.size), G.reshape(G.size), V.reshape(V.size)
    for k in range(p.size):
        g = grad[k] + wd * p[k]
        v = mu * vel[k] + g
        vel[k] = v
        p[k] -= lr * (g + mu * v if nesterov else v)


@jit
def adam(P, G, M, V, step, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, c2, wd):
    """Moments ``m, v`` of ``g``; ``P -= step m / (sqrt(v / c2) + eps)`` with
    ``step = lr / c1`` and ``c = 1 - beta^t``. Every scalar comes in the parameters' dtype
    (no float64 literal here), so float32 stays float32, as NumPy computes it."""
    p, grad = P.reshape(P.size), G.reshape(G.size)
    first, second = M.reshape(M.size), V.reshape(V.size)
    for k in range(p.size):
        g = grad[k] + wd * p[k]
        m = beta1 * first[k] + one_minus_beta1 * g
        v = beta2 * second[k] + one_minus_beta2 * (g * g)
        first[k] = m
        second[k] = v
        p[k] -= step * m / (math.sqrt(v / c2) + eps)


# Reassociation lets the reduction below vectorize (8x faster here); the flags that would
# assume away NaN and Inf (nnan, ninf) stay off, so both still propagate to the result.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz", "contract"})
def all_finite(A):
    """True when no element of ``A`` is NaN or infinite.

    ``x * 0`` is 0 for finite ``x`` and NaN for NaN or +-Inf, so the sum is 0 exactly when
    every element is finite (and cannot overflow).
    """
    a = A.reshape(A.size)
    total = A.dtype.type(0.0)
    zero = A.dtype.type(0.0)
    for k in range(a.size):
        total += a[k] * zero
    return total == 0
