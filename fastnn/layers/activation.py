"""An activation on its own: ``h' = sigma(h)``, element by element (softmax: per row)."""

from __future__ import annotations

from typing import Any

from fastnn.activations import check_activation

from .base import Batch, Layer


class Activation(Layer):
    """``H = sigma(X)`` with ``sigma`` one of the backend's activations, and its backward
    ``dX = backprop_sigma(dH, H)`` written from the output ``H``.

    ``Dense(n_in, n_out, activation=name)`` is the same as ``Dense(n_in, n_out)`` followed
    by ``Activation(name)``, fused into one kernel on the numba and cupy backends.

    Parameters
    ----------
    name : str
        ``"identity"``, ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"softmax"``.
    """

    kind = "Activation"

    def __init__(self, name: str) -> None:
        self.name = check_activation(name)
        self._H: Any = None

    @property
    def output_activation(self) -> str:  # type: ignore[override]
        return self.name

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def trace_equation(self, ell: int) -> str:
        return f"h^{ell} = {self.name}(h^{ell - 1})"

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        self._require_built()
        H = getattr(self.backend, self.name)(X)
        if train:
            self._H = H
        return H

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        dX = getattr(self.backend, "backprop_" + self.name)(dH, self._H)
        return dX if need_dX else None

    def forward_logits(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        self._require_built()
        return X

    def backward_logits(self, dZ: Any, need_dX: bool = True) -> Any:
        return dZ if need_dX else None

    def release(self) -> None:
        self._H = None
