"""Batch normalization, with the semantics of PyTorch's ``BatchNorm1d``."""

from __future__ import annotations

import math
from typing import Any

from .base import Batch, Layer
from .dense import positive_size


class BatchNorm(Layer):
    """Normalize each feature over the batch, then scale and shift it.

    In training, with the batch mean ``mu`` and biased variance ``var`` of each feature::

        x_hat = (x - mu) / sqrt(var + eps)
        h = gamma * x_hat + beta

    and the running statistics move towards the batch's:
    ``running_mean = (1 - momentum) running_mean + momentum mu`` and likewise
    ``running_var`` with the unbiased variance ``var * n / (n - 1)``. In evaluation
    (``predict``, ``evaluate``, validation) the running statistics take the batch's place.
    A training batch needs at least 2 rows.

    Parameters
    ----------
    n_features : int
        Width of the input (and output).
    momentum : float
        Weight of the newest batch in the running statistics, in [0, 1].
    eps : float
        Added to the variance, > 0.

    Attributes
    ----------
    gamma, beta : arrays of shape (n_features,)
        Learned scale (starts at 1) and shift (starts at 0); ``dgamma``, ``dbeta`` their
        gradients.
    running_mean, running_var : arrays of shape (n_features,)
        Buffers: saved with the model, not trained.
    """

    kind = "BatchNorm"
    parameter_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")
    min_batch_rows = 2

    def __init__(self, n_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        self.n_features = positive_size(n_features, "BatchNorm: n_features")
        self.momentum = _number(momentum, "momentum", lambda v: 0 <= v <= 1, "in [0, 1]")
        self.eps = _number(eps, "eps", lambda v: v > 0, "> 0")
        self.gamma: Any = None
        self.beta: Any = None
        self.running_mean: Any = None
        self.running_var: Any = None
        self.dgamma: Any = None
        self.dbeta: Any = None
        self._cache: Any = None

    def __repr__(self) -> str:
        return f"BatchNorm({self.n_features}, momentum={self.momentum}, eps={self.eps})"

    def config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "momentum": self.momentum, "eps": self.eps}

    def declared_input(self) -> int:
        return self.n_features

    def shapes(self, n_in: int) -> dict[str, tuple[int, ...]]:
        return {name: (self.n_features,) for name in (*self.parameter_names, *self.buffer_names)}

    def initial_state(self, rng: Any, n_in: int) -> dict[str, Any]:
        ones, zeros = [1.0] * self.n_features, [0.0] * self.n_features
        return {"gamma": ones, "beta": zeros, "running_mean": zeros, "running_var": ones}

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        self._require_built()
        backend = self.backend
        if not train:
            return backend.batchnorm_eval(
                X, self.gamma, self.beta, self.running_mean, self.running_var, self.eps
            )
        n = X.shape[0]
        if n < 2:
            raise ValueError(
                f"{self!r}: a training batch needs at least 2 rows (the variance of one row "
                f"is undefined), got {n}"
            )
        H, mean, var, self._cache = backend.batchnorm_train(X, self.gamma, self.beta, self.eps)
        if batch is None or batch.update_statistics:
            backend.batchnorm_update_running(
                self.running_mean, self.running_var, mean, var, n, self.momentum
            )
        return H

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        dX, self.dgamma, self.dbeta = self.backend.batchnorm_backward(
            dH, self._cache, self.gamma, need_dX
        )
        return dX

    def release(self) -> None:
        self._cache = None


def _number(value: object, name: str, ok: Any, rule: str) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or not ok(number):
        raise ValueError(f"BatchNorm: {name} must be a number {rule}, got {value!r}")
    return float(number)
