"""The dense (fully connected) layer."""

from __future__ import annotations

from typing import Any

from .activations import check_activation


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Dense: {what} must be a positive int, got {value!r}")
    return value


class Dense:
    """A fully connected layer: ``z = W h + b``, ``h' = sigma(z)`` for each sample.

    With a mini-batch stored as rows (``X`` of shape (n, n_in)) this is
    ``H = sigma(X @ W.T + b)``. Weights are created when the layer joins a
    :class:`~fastnn.Sequential` model, which picks the backend, dtype and seed.

    Parameters
    ----------
    n_in, n_out : int
        Inputs and outputs (neurons) of the layer.
    activation : str
        ``"identity"``, ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"softmax"``.

    Attributes
    ----------
    W : array of shape (n_out, n_in)
        Weight matrix, out x in as in the lecture: ``W[j, i]`` connects input ``i`` to neuron ``j``.
    b : array of shape (n_out,)
        Bias vector.
    dW, db : arrays shaped like ``W`` and ``b``
        Gradients of the loss from the last backward pass.
    """

    def __init__(self, n_in: int, n_out: int, activation: str = "identity") -> None:
        self.n_in = _check_size(n_in, "n_in")
        self.n_out = _check_size(n_out, "n_out")
        self.activation = check_activation(activation)
        self.backend: Any = None
        self.W: Any = None
        self.b: Any = None
        self.dW: Any = None
        self.db: Any = None
        self._X: Any = None  # cached input of the last training forward pass
        self._H: Any = None  # cached output (what the activation's backward needs)

    def __repr__(self) -> str:
        return f"Dense({self.n_in} -> {self.n_out}, activation={self.activation!r})"

    def set_weights(self, backend: Any, W: Any, b: Any, dtype: Any) -> None:
        """Place ``W`` (n_out, n_in) and ``b`` (n_out,) on ``backend`` as ``dtype``."""
        self.backend = backend
        self.W = backend.asarray(W, dtype=dtype)
        self.b = backend.asarray(b, dtype=dtype)
        self.dW = self.db = self._X = self._H = None

    def parameters(self) -> list:
        """``[W, b]``."""
        return [self.W, self.b]

    def gradients(self) -> list:
        """``[dW, db]`` from the last backward pass."""
        return [self.dW, self.db]

    def _require_weights(self) -> None:
        if self.W is None:
            raise RuntimeError(f"{self!r} has no weights yet: put it in a fastnn.Sequential model")

    def forward(self, X: Any, train: bool = False) -> Any:
        """``H = act(X @ W.T + b)``: (n, n_in) -> (n, n_out); ``train`` caches for backward."""
        self._require_weights()
        H = self.backend.dense_forward(X, self.W, self.b, self.activation)
        if train:
            self._X, self._H = X, H
        return H

    def forward_logits(self, X: Any, train: bool = False) -> Any:
        """``Z = X @ W.T + b`` without the activation, for a loss fused with it."""
        self._require_weights()
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
        """Drop the cached activations of the last training pass."""
        self._X = self._H = None
