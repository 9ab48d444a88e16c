"""Layers: the :class:`Layer` protocol and the layers fastnn ships.

``LAYERS`` maps each layer's ``kind`` (as files store it) to its class; a layer class
defined anywhere registers itself by setting ``kind``.
"""

from __future__ import annotations

from .activation import Activation
from .base import LAYERS, Batch, Layer, layer_from_config
from .batchnorm import BatchNorm
from .dense import Dense
from .dropout import Dropout
from .preprocessing import FeatureScaling, Rescale, Standardize

__all__ = [
    "LAYERS",
    "Activation",
    "Batch",
    "BatchNorm",
    "Dense",
    "Dropout",
    "FeatureScaling",
    "Layer",
    "Rescale",
    "Standardize",
    "layer_from_config",
]
