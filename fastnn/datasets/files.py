"""Loaders for users' own data: ``.npz``, ``.npy``, CSV and MNIST's IDX format.

Each returns ``(X, y)`` as NumPy arrays, ``X`` of shape (n, n_features). Nothing is
unpickled. Errors name the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np

_NPZ_KEYS = [
    ("X", "y"),
    ("x", "y"),
    ("X_train", "y_train"),
    ("x_train", "y_train"),
    ("data", "target"),
    ("data", "labels"),
]
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    return path


def _flatten(X: np.ndarray) -> np.ndarray:
    """Images (n, h, w, ...) to rows (n, h * w * ...)."""
    return X.reshape(X.shape[0], -1) if X.ndim > 2 else X


def _split_last_column(path: Path, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(
            f"{path}: expected a 2-D table whose last column is the label, got shape "
            f"{data.shape}; or pass the labels separately"
        )
    return data[:, :-1], data[:, -1]


def load_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from an ``.npz`` with arrays named X/y, x_train/y_train or data/target."""
    path = _existing(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
            for x_key, y_key in _NPZ_KEYS:
                if {x_key, y_key} <= names:
                    return _flatten(f[x_key]), f[y_key]
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
    raise ValueError(
        f"{path} holds arrays {sorted(names)}; expected one of the pairs "
        + ", ".join(f"{a}/{b}" for a, b in _NPZ_KEYS)
    )


def load_npy(
    path: str | os.PathLike, labels: str | os.PathLike | None = None, mmap: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from an ``.npy`` of features plus an ``.npy`` of labels, or from one
    2-D ``.npy`` whose last column is the label. ``mmap`` memory-maps instead of reading."""
    path = _existing(path)
    mode: Literal["r"] | None = "r" if mmap else None
    try:
        data = np.load(path, allow_pickle=False, mmap_mode=mode)
        if labels is None:
            return _split_last_column(path, data)
        y = np.load(_existing(labels), allow_pickle=False, mmap_mode=mode)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npy file: {exc}") from None
    return _flatten(data), y


def load_csv(
    path: str | os.PathLike, label_column: int = -1, delimiter: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from a CSV of numbers, one sample per line, the label in ``label_column``.

    A first line that is not numeric is taken as a header and skipped. The delimiter is
    guessed from the first line (comma, semicolon, tab or whitespace) unless given.
    """
    path = _existing(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    if not first.strip():
        raise ValueError(f"{path} is empty")
    if delimiter is None:
        delimiter = next((d for d in (",", ";", "\t") if d in first), None)
    cells = first.split(delimiter)
    try:
        [float(c) for c in cells]
        skip = 0
    except ValueError:
        skip = 1
    try:
        data = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a table of numbers: {exc}") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path} has a header but no rows")
    if data.shape[1] < 2:
        raise ValueError(f"{path}: need at least one feature column and a label column")
    col = label_column % data.shape[1]
    return np.delete(data, col, axis=1), data[:, col]


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """An array from an IDX file (MNIST's format), gzipped or not; images are flattened."""
    path = _existing(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_TYPES:
                raise ValueError(f"{path} is not an IDX file (bad magic number {head.hex()})")
            ndim = head[3]
            dims_bytes = f.read(4 * ndim)
            if ndim == 0 or len(dims_bytes) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            dims = [int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim)]
            dtype = np.dtype(_IDX_TYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize
            # Read at most what the header promises, plus one byte to detect trailing data,
            # so a header claiming terabytes costs only the file's real size.
            payload = f.read(expected + 1) if expected < (1 << 40) else f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: cannot read IDX data: {exc}") from None
    if len(payload) != expected:
        what = "truncated" if len(payload) < expected else "longer than its header says"
        raise ValueError(f"{path}: IDX data {what} (header {dims}, {expected} bytes expected)")
    data = np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))
    return _flatten(data)


def load_file(
    path: str | os.PathLike, labels: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from a data file, by its extension.

    ``.npz``; ``.npy`` (with ``labels``, another ``.npy``, or a last label column);
    ``.csv``/``.tsv``/``.txt`` (last column is the label); anything else is read as IDX
    and needs ``labels`` (the IDX labels file, e.g. ``train-labels-idx1-ubyte.gz``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path)
    if suffix == ".npy":
        return load_npy(path, labels)
    if suffix in (".csv", ".tsv", ".txt"):
        return load_csv(path)
    if labels is None:
        raise ValueError(
            f"{path}: not .npz, .npy or .csv, so read as IDX, which needs a labels file too"
        )
    X, y = load_idx(path), load_idx(labels)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{labels}: {len(y)} labels of shape {y.shape} for {len(X)} samples")
    return X, y


def load_features(path: str | os.PathLike, n_features: int) -> np.ndarray:
    """Only the inputs ``X`` of a data file, for a model taking ``n_features``: an
    ``.npz``'s X (or x, X_train, x_train, data), an ``.npy`` or a CSV of ``n_features``
    columns, or of one more, whose last (the label) is dropped; anything else as IDX."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                name = next((x for x, _ in _NPZ_KEYS if x in f.files), None)
                if name is None:
                    raise ValueError(f"{path} holds arrays {sorted(f.files)}; expected X")
                X = _flatten(f[name])
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
    elif suffix == ".npy":
        try:
            X = _flatten(np.load(path, allow_pickle=False))
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable .npy file: {exc}") from None
    elif suffix in (".csv", ".tsv", ".txt"):
        X, y = load_csv(path)
        X = np.column_stack([X, y])
    else:
        X = load_idx(path)
    if X.ndim == 2 and X.shape[1] == n_features + 1:
        X = X[:, :-1]  # a label column
    return X
