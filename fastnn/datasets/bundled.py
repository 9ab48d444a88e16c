"""Datasets that ship inside the package, so nothing is downloaded."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_digits(scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The UCI handwritten digits: 1,797 images of 8x8 pixels, 10 classes.

    E. Alpaydin and C. Kaynak (1998), UCI Machine Learning Repository,
    https://doi.org/10.24432/C50P49, CC BY 4.0.

    Parameters
    ----------
    scale : bool
        Divide the pixel counts (0..16) by 16, giving features in [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64)
        One flattened image per row; float64 if ``scale``, else uint8.
    y : ndarray of shape (1797,)
        The digit, 0..9 (int64).
    """
    with resources.files("fastnn.datasets").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            X, y = data["X"], data["y"].astype(np.int64)
    return (X / 16.0 if scale else X), y
