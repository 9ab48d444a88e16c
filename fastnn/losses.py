"""Loss functions, by name.

Each loss is computed by one fused backend call that returns the mean loss and its
gradient together. Two of them pair with an output activation and take the output
layer's pre-activation ``Z`` (the logits) rather than its output ``H``:

* ``cross_entropy`` with ``softmax``: ``L = logsumexp(Z) - Z[y]`` per sample, and the
  softmax Jacobian cancels against the log so ``dZ = (softmax(Z) - T) / n``. Working
  from ``Z`` keeps the loss finite where ``log(softmax(Z))`` would underflow to ``-inf``.
* ``binary_cross_entropy`` with ``sigmoid``: likewise ``dZ = (sigma(Z) - T) / size``.

``mse`` takes ``H``, so it works after any output activation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loss:
    """A loss: its name, the backend method computing it, and how it meets the output layer.

    Attributes
    ----------
    name : str
        ``"mse"``, ``"cross_entropy"`` or ``"binary_cross_entropy"``.
    backend_method : str
        The backend's fused ``(loss, gradient)`` function.
    output_activation : str or None
        The output activation the loss is fused with (it then takes logits ``Z`` and
        returns ``dZ``); ``None`` when it takes ``H`` and returns ``dH``.
    classifier : bool
        Whether targets are classes (predictions are class ids, accuracy is reported).
    """

    name: str
    backend_method: str
    output_activation: str | None
    classifier: bool

    def __call__(self, backend, out, T):
        """``(mean loss, gradient)`` for the output layer's ``Z`` (fused) or ``H``."""
        return getattr(backend, self.backend_method)(out, T)


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", "mse", None, classifier=False),
    "cross_entropy": Loss("cross_entropy", "softmax_cross_entropy", "softmax", classifier=True),
    "binary_cross_entropy": Loss(
        "binary_cross_entropy", "sigmoid_binary_cross_entropy", "sigmoid", classifier=True
    ),
}

#: the output activation a model gets when only the loss is given
DEFAULT_OUTPUT = {"mse": "identity", "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def get_loss(name: object) -> Loss:
    """The loss called ``name``; ``ValueError`` listing the known ones otherwise."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]
