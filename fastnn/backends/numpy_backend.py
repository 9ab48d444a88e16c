"""The NumPy backend: the reference every other backend is tested against."""

from __future__ import annotations

from typing import Any

import numpy

from .base import Backend


class NumpyBackend(Backend):
    """Reference backend: the base class's math on ``numpy`` and the machine's BLAS."""

    name = "numpy"
    xp = numpy

    def to_numpy(self, a: Any) -> Any:
        return numpy.asarray(a)

    def float_errors_ignored(self) -> Any:
        return numpy.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")
