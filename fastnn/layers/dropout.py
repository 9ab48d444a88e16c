"""Inverted dropout, with masks that are the same on every backend and dtype."""

from __future__ import annotations

import math
from typing import Any

from .base import Batch, Layer


class Dropout(Layer):
    """In training, zero each unit with probability ``p`` and scale the survivors by
    ``1 / (1 - p)`` (inverted dropout, as PyTorch's ``Dropout``); in ``predict``,
    ``evaluate`` and validation, the identity.

    The mask of sample ``i`` (its row index in the training data) in the model's epoch
    ``e`` comes from a counter-based generator (Philox4x32-10, written once against the
    backend's array module) at a counter made of the unit, ``i``, ``e`` and the layer's
    position, under the model's key. So it is the same on every backend and dtype, the
    same whatever batch the sample lands in, and a resumed run draws the masks an
    uninterrupted one would, with no generator state to save.

    Parameters
    ----------
    p : float
        Probability of zeroing a unit, in [0, 1).
    """

    kind = "Dropout"
    uses_sample_index = True

    def __init__(self, p: float = 0.5) -> None:
        number = p if isinstance(p, int | float) and not isinstance(p, bool) else math.nan
        if not 0 <= number < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self.p = float(number)
        self._keep: Any = None  # the mask of the last training pass

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def trace_equation(self, ell: int) -> str:
        return f"h^{ell} = h^{ell - 1}  (the identity in a trace, as in model.gradients)"

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        """``H = X * keep / (1 - p)`` in training (``keep`` the mask), ``H = X`` otherwise."""
        self._require_built()
        batch = batch or Batch()
        if not train or self.p == 0 or not batch.draw_masks:
            self._keep = None
            return X
        rows = batch.rows if batch.rows is not None else self.backend.arange(0, X.shape[0])
        self._keep = self.backend.dropout_mask(
            rows, X.shape[1], self.p, batch.key, batch.epoch, batch.layer
        )
        return self.backend.dropout(X, self._keep, self.p)

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        """``dX = dH * keep / (1 - p)`` (``dH`` where no mask was drawn)."""
        if not need_dX:
            return None
        return dH if self._keep is None else self.backend.dropout(dH, self._keep, self.p)

    def release(self) -> None:
        self._keep = None
