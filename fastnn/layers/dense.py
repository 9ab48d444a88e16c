"""The dense (fully connected) layer, the lecture's ``z = W h + b`` with an activation."""

from __future__ import annotations

from typing import Any

from fastnn.activations import check_activation
from fastnn.init import initial_weights

from .base import Batch, Layer


def positive_size(value: object, what: str) -> int:
    """``value`` if it is an int >= 1, else ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


class Dense(Layer):
    """A fully connected layer: ``z = W h + b``, ``h' = sigma(z)`` for each sample.

    With a mini-batch stored as rows (``X`` of shape (n, n_in)) this is
    ``H = sigma(X @ W.T + b)``. Weights are created when the layer joins a
    :class:`~fastnn.Sequential` model, which picks the backend, dtype and seed. The
    activation is a shorthand for a following :class:`~fastnn.Activation` layer, fused
    with the bias add on the numba and cupy backends.

    Parameters
    ----------
    n_in, n_out : int
        Inputs and outputs (neurons) of the layer.
    activation : str
        ``"identity"`` (the default), ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"softmax"``.

    Attributes
    ----------
    W : array of shape (n_out, n_in)
        Weight matrix, out x in as in the lecture: ``W[j, i]`` connects input ``i`` to neuron ``j``.
    b : array of shape (n_out,)
        Bias vector.
    dW, db : arrays shaped like ``W`` and ``b``
        Gradients of the loss from the last backward pass.
    """

    kind = "Dense"
    parameter_names = ("W", "b")
    n_in: int
    n_out: int

    def __init__(self, n_in: int, n_out: int, activation: str = "identity") -> None:
        self.n_in = positive_size(n_in, "Dense: n_in")
        self.n_out = positive_size(n_out, "Dense: n_out")
        self.activation = check_activation(activation)
        self.W: Any = None
        self.b: Any = None
        self.dW: Any = None
        self.db: Any = None
        self._X: Any = None  # cached input of the last training forward pass
        self._H: Any = None  # cached output (what the activation's backward needs)

    @property
    def output_activation(self) -> str:  # type: ignore[override]
        return self.activation

    def __repr__(self) -> str:
        return f"Dense({self.n_in} -> {self.n_out}, activation={self.activation!r})"

    def config(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "n_out": self.n_out, "activation": self.activation}

    def declared_input(self) -> int:
        return self.n_in

    def output_width(self, n_in: int) -> int:
        return self.n_out

    def shapes(self, n_in: int) -> dict[str, tuple[int, ...]]:
        return {"W": (self.n_out, self.n_in), "b": (self.n_out,)}

    def initial_state(self, rng: Any, n_in: int) -> dict[str, Any]:
        W, b = initial_weights(rng, self.n_in, self.n_out, self.activation)
        return {"W": W, "b": b}

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        """``H = act(X @ W.T + b)``: (n, n_in) -> (n, n_out); ``train`` caches for backward."""
        self._require_built()
        H = self.backend.dense_forward(X, self.W, self.b, self.activation)
        if train:
            self._X, self._H = X, H
        return H

    def forward_logits(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        """``Z = X @ W.T + b`` without the activation, for a loss fused with it."""
        self._require_built()
        Z = self.backend.affine(X, self.W, self.b)
        if train:
            self._X, self._H = X, None
        return Z

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        """From ``dH = dL/dH`` set ``dW, db``; return ``dX = dL/dX`` (None unless ``need_dX``)."""
        dX, self.dW, self.db = self.backend.dense_backward(
            dH, self._X, self.W, self._H, self.activation, need_dX
        )
        return dX

    def backward_logits(self, dZ: Any, need_dX: bool = True) -> Any:
        """From ``dZ = dL/dZ`` (a fused loss's gradient) set ``dW, db`` and return ``dX``."""
        dX, self.dW, self.db = self.backend.affine_backward(dZ, self._X, self.W, need_dX)
        return dX

    def release(self) -> None:
        self._X = self._H = None

    def small_network_activation(self) -> str:
        return self.activation
