"""Checks on user input, run before any state changes, with errors that say what to fix.

Host data is checked through NumPy views; a CuPy array is checked where it lives, on the
GPU, with CuPy. Large arrays (memory maps included) are scanned in blocks of rows so a
check never copies the whole input.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

_BLOCK_BYTES = 1 << 22


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int >= 1, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def positive_float(value: object, name: str) -> float:
    """``value`` if it is a finite number > 0, else ``ValueError`` naming ``name``."""
    number = math.nan
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _namespace(arr: Any) -> Any:
    """The array module of ``arr``: CuPy for CuPy arrays, else NumPy."""
    if type(arr).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def on_host(a: Any) -> bool:
    """Whether ``a`` is in host memory (a NumPy array or memory map), not on a GPU."""
    return _namespace(a) is np


def _as_host_array(a: Any, name: str, backend: str = "numpy") -> Any:
    if a is None:
        raise TypeError(f"{name} is None; expected an array")
    if _namespace(a) is not np:
        if backend != "cupy":
            raise TypeError(
                f"{name} is a CuPy (GPU) array but the model is on the {backend!r} backend: "
                f"call model.to('cupy'), or pass {name}.get() to copy it to the host"
            )
        return a  # checked with CuPy, on the device
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be read as a NumPy array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {arr.dtype}; fastnn needs numbers (bool, int or float), "
            "e.g. convert with np.asarray(x, dtype=float)"
        )
    return arr


def _first_bad(arr: np.ndarray, dtype: Any = None) -> tuple[tuple, str] | None:
    """``(index, problem)`` of the first value in ``arr`` that is NaN or infinite
    (``"non-finite"``), or finite but too large for ``dtype``, the model's (``"narrowing"``:
    1e39 is finite in float64 and infinite in float32); None when all is well.

    Scanned in blocks of about 4 MiB of rows, so a memory map is never read whole.
    """
    if arr.dtype.kind != "f":
        return None
    limit = math.inf
    if dtype is not None and np.dtype(dtype).itemsize < arr.dtype.itemsize:
        # From the largest finite value plus half its spacing up, rounding to nearest
        # (ties to even) gives infinity.
        info = np.finfo(dtype)
        limit = float(info.max) + 2.0 ** (info.maxexp - info.nmant - 2)
    row_bytes = max(1, arr.itemsize * math.prod(arr.shape[1:]))
    block_rows = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, arr.shape[0], block_rows):
        block = arr[start : start + block_rows]
        if block.size == 0 or -limit < block.min() and block.max() < limit:
            continue  # two reductions that read the block once each (NaN propagates)
        bad = ~((block < limit) & (block > -limit))  # NaN fails both comparisons
        if bad.any():
            idx = np.unravel_index(int(bad.argmax()), block.shape)
            value = float(block[idx])
            index = (int(idx[0]) + start, *(int(i) for i in idx[1:]))
            return index, "narrowing" if math.isfinite(value) else "non-finite"
    return None


def _beyond(dtype: Any) -> str:
    return (
        f"beyond the model's dtype {np.dtype(dtype).name} (largest "
        f"{float(np.finfo(dtype).max):.4g}); scale the data or use dtype='float64'"
    )


def check_features(
    X: Any,
    n_features: int,
    where: str,
    name: str = "X",
    backend: str = "numpy",
    dtype: Any = None,
) -> Any:
    """``X`` as a host array of shape (n, n_features) with numbers finite in ``dtype``.

    ``where`` names the layer that reads it, for the error message; ``dtype`` is the
    model's (values it cannot hold are refused, not turned into infinities).
    """
    arr = _as_host_array(X, name, backend)
    if arr.ndim != 2:
        hint = (
            "; use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
            if arr.ndim == 1
            else ""
        )
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {arr.ndim}-D shape {arr.shape}{hint}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): need at least one sample")
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{where}: expected {name} with {n_features} features, got shape {arr.shape}"
        )
    found = _first_bad(arr, dtype)
    if found is not None:
        bad, problem = found
        fix = "remove or impute non-finite values" if problem == "non-finite" else _beyond(dtype)
        raise ValueError(f"{name} contains {arr[bad]} at row {bad[0]}, column {bad[1]}, {fix}")
    return arr


def check_targets(
    y: Any,
    loss: Any,
    n_outputs: int,
    n_samples: int,
    name: str = "y",
    backend: str = "numpy",
    dtype: Any = None,
) -> Any:
    """Targets ``y`` checked against the loss and the output layer, in the form the loss takes.

    Returns integer class ids of shape (n,) for ``cross_entropy`` with labels, else an
    array of shape (n, n_outputs) in ``y``'s dtype (the model casts it to its own,
    ``dtype``, which must hold every value).
    """
    arr = _as_host_array(y, name, backend)
    if arr.ndim == 0 or arr.shape[0] != n_samples:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} in {name} (shape {arr.shape})"
        raise ValueError(f"X and {name} have different lengths: {n_samples} samples in X, {got}")
    found = _first_bad(arr, dtype)
    if found is not None:
        bad, problem = found
        fix = "targets must be finite" if problem == "non-finite" else _beyond(dtype)
        where = bad if arr.ndim > 1 else bad[0]
        raise ValueError(f"{name} contains {arr[bad]} at index {where}, {fix}")
    if loss.name == "cross_entropy" and arr.ndim == 1:
        return _class_ids(arr, n_outputs, name)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        want = f"({n_samples},) or " if n_outputs == 1 else ""
        if loss.name == "cross_entropy":
            want = f"({n_samples},) class ids or "
        raise ValueError(
            f"{name} has shape {arr.shape}; the output layer has {n_outputs} outputs, so "
            f"{loss.name} needs {want}({n_samples}, {n_outputs})"
        )
    if loss.classifier:
        _check_probabilities(arr, loss.name, name, rows_sum_to_one=loss.name == "cross_entropy")
    return arr


def check_vector(y: Any, n_samples: int, name: str = "y") -> np.ndarray:
    """``y`` as a finite host array of shape (n_samples,)."""
    arr = _as_host_array(y, name)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(f"{name} must have shape ({n_samples},) to match X, got {arr.shape}")
    found = _first_bad(arr)
    if found is not None:
        bad = found[0]
        raise ValueError(f"{name} contains {arr[bad]} at index {bad[0]}; values must be finite")
    return arr


def _class_ids(arr: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    xp = _namespace(arr)
    if arr.dtype.kind == "f":
        frac = xp.flatnonzero(arr != xp.round(arr))
        if frac.size:
            i = int(frac[0])
            raise ValueError(
                f"{name}[{i}] = {arr[i]} is not a class id: cross_entropy needs integer labels "
                f"0..{n_classes - 1} (or one-hot rows of width {n_classes})"
            )
    out = arr.astype(xp.intp)
    wrong = xp.flatnonzero((out < 0) | (out >= n_classes))
    if wrong.size:
        i = int(wrong[0])
        raise ValueError(
            f"{name}[{i}] = {arr[i]} is out of range: the output layer has {n_classes} classes, "
            f"so labels must be in 0..{n_classes - 1}"
        )
    classes = xp.unique(out)
    if classes.size == 1:
        warnings.warn(
            f"{name} holds a single class ({classes[0]}): a classifier trained on it can only "
            "learn to predict that class",
            UserWarning,
            stacklevel=4,
        )
    return out


def _check_probabilities(arr: np.ndarray, loss_name: str, name: str, rows_sum_to_one: bool) -> None:
    xp = _namespace(arr)
    outside = xp.argwhere((arr < 0) | (arr > 1))
    if outside.size:
        idx = tuple(int(i) for i in outside[0])
        raise ValueError(f"{name}{list(idx)} = {arr[idx]}: {loss_name} needs targets in [0, 1]")
    if rows_sum_to_one:
        sums = arr.sum(axis=1)
        off = xp.flatnonzero(xp.abs(sums - 1) > 1e-3)
        if off.size:
            i = int(off[0])
            raise ValueError(
                f"row {i} of {name} sums to {float(sums[i]):.4g}; cross_entropy targets of shape "
                "(n, k) must be one-hot or probabilities summing to 1"
            )
