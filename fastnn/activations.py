"""Activation names and the initialization each one wants.

The math of each activation ``name`` lives in the backend as ``backend.<name>(Z)`` with
its derivative ``backend.backprop_<name>(dH, H)`` written in terms of the output ``H``.
"""

from __future__ import annotations

#: activation name -> weight initialization suited to it (see :mod:`fastnn.init`)
ACTIVATIONS: dict[str, str] = {
    "identity": "glorot",
    "sigmoid": "glorot",
    "tanh": "glorot",
    "relu": "he",
    "softmax": "glorot",
}


def check_activation(name: object, where: str = "activation") -> str:
    """Return ``name`` if it is a known activation, else raise ``ValueError`` listing them."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown {where} {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return name
