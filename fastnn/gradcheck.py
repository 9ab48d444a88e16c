"""Finite-difference gradient checks: does backprop agree with the definition of a derivative?"""

from __future__ import annotations

import math
from typing import Any


def gradcheck(
    model: Any, X: Any, y: Any, eps: float = 1e-6, max_entries: int | None = 200, seed: int = 0
) -> list[float]:
    """Worst relative error per layer between backprop and central finite differences.

    A float64 copy of ``model`` (same backend) computes the analytic gradients
    ``model.gradients(X, y)``; each checked weight ``w`` is then nudged to ``w +- eps``
    and ``(L(w + eps) - L(w - eps)) / (2 eps)`` is compared with it. For each tensor,
    the error is ``max(0, ||g_backprop - g_numeric|| - r) / (||g_backprop|| + ||g_numeric||)``
    over the checked entries; a layer's error is the worst of its parameters' (0 for a layer
    without parameters), in training mode (batch statistics, no dropout). ``r`` is the
    rounding noise of the differences themselves, ``4 u |L| / eps`` per entry (``u`` the
    float64 unit roundoff): without it, gradients far smaller than the loss (tiny inputs)
    would look wrong where only the differences cannot resolve them. Correct gradients
    give about 1e-7 or less; a bug gives 1e-2 or more.

    Parameters
    ----------
    model : Sequential
        Left unchanged.
    X, y : arrays
        The data the loss is averaged over (keep it small: two loss evaluations per entry).
    eps : float
        Finite-difference step.
    max_entries : int or None
        Check at most this many entries per tensor, drawn at random; None checks all.
    seed : int
        Seeds the choice of entries.

    Returns
    -------
    list of float
        One relative error per layer.
    """
    from .init import make_rng

    clone = model.clone(dtype="float64")
    analytic = clone.gradients(X, y)
    backend = clone.backend
    rng = make_rng(seed)

    def loss() -> float:
        return clone._train_mode_loss(X, y)

    rounding = 4 * 2.0**-53 * max(abs(loss()), 1e-300) / eps  # per-entry noise of a difference

    errors = []
    for layer, grads in zip(clone.layers, analytic, strict=True):
        worst = 0.0
        for param, grad in zip(layer.parameters().values(), grads, strict=True):
            host = backend.to_numpy(param).copy()
            flat = host.reshape(-1)
            n = flat.size
            entries = (
                range(n)
                if max_entries is None or n <= max_entries
                else rng.choice(n, size=max_entries, replace=False)
            )
            diff2 = norm_a = norm_n = 0.0
            for k in entries:
                k = int(k)
                original = flat[k]
                flat[k] = original + eps
                param[...] = backend.asarray(host)
                up = loss()
                flat[k] = original - eps
                param[...] = backend.asarray(host)
                down = loss()
                flat[k] = original
                numeric = (up - down) / (2 * eps)
                exact = float(grad.reshape(-1)[k])
                diff2 += (exact - numeric) ** 2
                norm_a += exact**2
                norm_n += numeric**2
            param[...] = backend.asarray(host)
            excess = max(0.0, math.sqrt(diff2) - rounding * math.sqrt(len(entries)))
            denom = math.sqrt(norm_a) + math.sqrt(norm_n)
            worst = max(worst, excess / denom if denom > 0 else 0.0)
        errors.append(worst)
    return errors
