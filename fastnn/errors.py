"""Exceptions fastnn raises beyond the built-in ``ValueError`` and ``TypeError``."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A model file is missing, damaged, not a fastnn model, or from an incompatible version."""


class TrainingDivergedError(FloatingPointError):
    """The loss or a gradient became NaN or infinite during ``fit``.

    Attributes
    ----------
    epoch, batch : int
        Where it happened (both counted from 1).
    """

    def __init__(self, message: str, epoch: int, batch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
