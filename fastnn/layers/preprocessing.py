"""Preprocessing as layers: fixed per-feature scalings fitted from training data, saved
with the model, so a loaded model predicts on raw data as the trained one did."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Batch, Layer
from .dense import positive_size


class FeatureScaling(Layer):
    """``H = (X - shift) / scale`` per feature, with ``shift`` and ``scale`` buffers: saved
    and moved with the model, never trained. Build one with a subclass's ``fit``."""

    buffer_names = ("shift", "scale")

    def __init__(self, n_features: int, shift: Any = None, scale: Any = None) -> None:
        self.n_features = positive_size(n_features, f"{type(self).__name__}: n_features")
        self._values = None
        if shift is not None or scale is not None:
            shift, scale = np.asarray(shift, dtype=np.float64), np.asarray(scale, dtype=np.float64)
            if shift.shape != (self.n_features,) or scale.shape != (self.n_features,):
                raise ValueError(
                    f"{type(self).__name__}: shift and scale must have shape "
                    f"({self.n_features},), got {shift.shape} and {scale.shape}"
                )
            if not (np.isfinite(shift).all() and np.isfinite(scale).all() and (scale > 0).all()):
                raise ValueError(f"{type(self).__name__}: shift must be finite, scale > 0")
            self._values = {"shift": shift, "scale": scale}
        self.shift: Any = None
        self.scale: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_features})"

    def config(self) -> dict[str, Any]:
        return {"n_features": self.n_features}  # the values are buffers, in the file's tensors

    def trace_equation(self, ell: int) -> str:
        return f"h^{ell} = (h^{ell - 1} - shift) / scale"

    def declared_input(self) -> int:
        return self.n_features

    def shapes(self, n_in: int) -> dict[str, tuple[int, ...]]:
        return {"shift": (self.n_features,), "scale": (self.n_features,)}

    def initial_state(self, rng: Any, n_in: int) -> dict[str, Any]:
        if self._values is not None:
            return dict(self._values)
        return {"shift": np.zeros(self.n_features), "scale": np.ones(self.n_features)}

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        self._require_built()
        return (X - self.shift) / self.scale

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        return dH / self.scale if need_dX else None

    @staticmethod
    def _spread(spread: np.ndarray) -> np.ndarray:
        return np.where(spread > 0, spread, 1.0)  # a constant feature is left as it is


class Standardize(FeatureScaling):
    """Zero mean and unit variance per feature, with the training data's statistics."""

    kind = "Standardize"

    @classmethod
    def fit(cls, X: Any) -> Standardize:
        """The layer for data like ``X`` (n, n_features): its mean and standard deviation."""
        X = np.asarray(X, dtype=np.float64)
        return cls(X.shape[1], X.mean(axis=0), cls._spread(X.std(axis=0)))


class Rescale(FeatureScaling):
    """Each feature to [0, 1], with the training data's minimum and range."""

    kind = "Rescale"

    @classmethod
    def fit(cls, X: Any) -> Rescale:
        """The layer for data like ``X`` (n, n_features): its minimum and range."""
        X = np.asarray(X, dtype=np.float64)
        low = X.min(axis=0)
        return cls(X.shape[1], low, cls._spread(X.max(axis=0) - low))
