"""fastnn: multilayer perceptrons from first principles on NumPy, Numba and CuPy.

Importing fastnn imports NumPy only: other array libraries load when their backend is
first asked for.
"""

from __future__ import annotations

from typing import Any

from .backends import available_backends, get_backend, known_backends, use_backend
from .conformance import check_backends
from .errors import ModelFileError, TrainingDivergedError
from .gradcheck import gradcheck
from .layers import Activation, BatchNorm, Dense, Dropout, Layer, Rescale, Standardize
from .model import MLP, Sequential
from .optimizers import SGD, Adam
from .perceptron import Perceptron

__version__ = "0.1.0"


def load(path: Any, backend: Any = None) -> Sequential:
    """Read a model file written by ``model.save``; see :func:`fastnn.io.load_model`."""
    from .io import load_model  # safetensors loads only when a model file is read

    return load_model(path, backend=backend)


def to_numpy(array: Any) -> Any:
    """A host NumPy array from a NumPy array or any backend's array."""
    module = type(array).__module__.split(".")[0]
    if module == "cupy":
        return get_backend("cupy").to_numpy(array)
    return get_backend("numpy").to_numpy(array)


__all__ = [
    "MLP",
    "Activation",
    "BatchNorm",
    "Dropout",
    "Layer",
    "SGD",
    "Adam",
    "Dense",
    "ModelFileError",
    "Perceptron",
    "Rescale",
    "Standardize",
    "Sequential",
    "TrainingDivergedError",
    "available_backends",
    "check_backends",
    "get_backend",
    "gradcheck",
    "known_backends",
    "load",
    "to_numpy",
    "use_backend",
]
