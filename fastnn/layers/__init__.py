"""Layers: the :class:`Layer` protocol and the layers fastnn ships.

``LAYERS`` maps each layer's ``kind`` (as files store it) to its class; a layer class
defined anywhere registers itself by setting ``kind``.
"""

from __future__ import annotations

from .activation import Activation
from .base import LAYERS, Layer, layer_from_config
from .dense import Dense

__all__ = ["LAYERS", "Activation", "Dense", "Layer", "layer_from_config"]
