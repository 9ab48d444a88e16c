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

    In distributed training each rank normalizes with its own rows' statistics (as
    PyTorch's DDP does); with ``sync=True`` the ranks sum their statistics and gradient
    sums, so every rank uses the global batch's, and the run matches one process.

    Parameters
    ----------
    n_features : int
        Width of the input (and output).
    momentum : float
        Weight of the newest batch in the running statistics, in [0, 1].
    eps : float
        Added to the variance, > 0.
    sync : bool
        Distributed: statistics over the global batch (one more allreduce in forward and
        in backward).

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

    def __init__(
        self, n_features: int, momentum: float = 0.1, eps: float = 1e-5, sync: bool = False
    ) -> None:
        self.n_features = positive_size(n_features, "BatchNorm: n_features")
        if not isinstance(sync, bool):
            raise ValueError(f"BatchNorm: sync must be True or False, got {sync!r}")
        self.sync = sync
        self._synced: Any = None  # (comm, local rows, global rows) of a synced pass
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
        sync = ", sync=True" if self.sync else ""
        return f"BatchNorm({self.n_features}, momentum={self.momentum}, eps={self.eps}{sync})"

    def trace_equation(self, ell: int) -> str:
        return f"h^{ell} = gamma^{ell} (h^{ell - 1} - mu) / sqrt(var + eps) + beta^{ell}"

    def config(self) -> dict[str, Any]:
        config = {"n_features": self.n_features, "momentum": self.momentum, "eps": self.eps}
        return {**config, "sync": True} if self.sync else config

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
        self._synced = None
        if self.sync and batch is not None and batch.comm is not None:
            H, mean, var, self._cache = self._synced_train(X, batch)
            n = batch.global_rows
        else:
            H, mean, var, self._cache = backend.batchnorm_train(X, self.gamma, self.beta, self.eps)
        if batch is None or batch.update_statistics:
            backend.batchnorm_update_running(
                self.running_mean, self.running_var, mean, var, n, self.momentum
            )
        return H

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        if self._synced is not None:
            return self._synced_backward(dH, need_dX)
        dX, self.dgamma, self.dbeta = self.backend.batchnorm_backward(
            dH, self._cache, self.gamma, need_dX
        )
        return dX

    def _synced_train(self, X: Any, batch: Batch) -> tuple:
        """The training forward with the global batch's mean and biased variance (two
        allreduces of per-feature sums: the mean's, then the squared deviations')."""
        comm, N = batch.comm, batch.global_rows
        (total,) = comm.sum_over_ranks(self.backend, X.sum(axis=0))
        mean = total / N
        centered = X - mean
        (squares,) = comm.sum_over_ranks(self.backend, (centered * centered).sum(axis=0))
        var = squares / N
        H, cache = self.backend.batchnorm_normalize(X, mean, var, self.gamma, self.beta, self.eps)
        self._synced = (comm, X.shape[0], N)
        return H, mean, var, cache

    def _synced_backward(self, dH: Any, need_dX: bool) -> Any:
        """The closed form with sums over the global batch. A rank's ``dH`` is the gradient
        of its own rows' mean loss, ``N / n`` times that of the global mean loss: the sums
        are taken in the global scale and ``dX`` is returned in the rank's."""
        (comm, n, N), (X_hat, inv_std) = self._synced, self._cache
        self.dbeta = dH.sum(axis=0)  # the rank's part; the gradient allreduce sums them
        self.dgamma = (dH * X_hat).sum(axis=0)
        if not need_dX:
            return None
        share = n / N
        sum_d, sum_dx = comm.sum_over_ranks(self.backend, self.dbeta * share, self.dgamma * share)
        return (self.gamma * inv_std / N) * (N * dH * share - sum_d - X_hat * sum_dx) / share

    def release(self) -> None:
        self._cache = None


def _number(value: object, name: str, ok: Any, rule: str) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or not ok(number):
        raise ValueError(f"BatchNorm: {name} must be a number {rule}, got {value!r}")
    return float(number)
