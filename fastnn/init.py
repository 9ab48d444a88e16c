"""Initial weights, drawn on the host from one seeded NumPy generator per model.

Drawing initial weights on the host, then copying them to the backend, gives every
backend and dtype the same starting weights for the same seed, so their training runs
can be compared (batch orders come from :mod:`fastnn.random`, also on the host).
"""

from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS


def make_rng(seed: int | None) -> np.random.Generator:
    """The generator a model draws its weights and batch order from."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return np.random.default_rng(seed)


def initial_weights(
    rng: np.random.Generator, n_in: int, n_out: int, activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` as float64 host arrays, ``W`` of shape (n_out, n_in), ``b`` zeros (n_out,).

    Glorot (Xavier) uniform, ``U(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))``, for
    sigmoid, tanh, identity and softmax; He normal, ``N(0, 2 / n_in)``, for relu.
    """
    if ACTIVATIONS[activation] == "he":
        W = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
    else:
        a = np.sqrt(6.0 / (n_in + n_out))
        W = rng.uniform(-a, a, size=(n_out, n_in))
    return W, np.zeros(n_out)
