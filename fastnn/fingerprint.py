"""A cheap fingerprint of training data, so a checkpoint is resumed on the data it was for.

Hashing every byte of a large memory map would read the whole file at every resume; the
fingerprint takes the shape, the dtype and the SHA-256 of a fixed sample of rows (all of
them for small data, else 64 rows spread evenly from first to last), for inputs and
targets. Same data always matches; data that differs in shape, dtype or a sampled row is
caught, and a change elsewhere is missed (that is the price of cheap).
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import numpy as np

SAMPLED_ROWS = 64


def sampled_rows(n: int) -> np.ndarray:
    """The rows a fingerprint hashes: all of ``range(n)`` up to 64, else 64 spread evenly."""
    if n <= SAMPLED_ROWS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, SAMPLED_ROWS).round().astype(np.intp))


def _describe(a: Any) -> dict[str, Any]:
    rows = sampled_rows(a.shape[0])
    if type(a).__module__.split(".")[0] == "cupy":  # a GPU array: copy only the sample
        cupy = sys.modules["cupy"]
        sample = cupy.ascontiguousarray(a[cupy.asarray(rows)]).get()
    else:
        sample = np.ascontiguousarray(a[rows])
    return {
        "shape": [int(s) for s in a.shape],
        "dtype": str(a.dtype),
        "sha256": hashlib.sha256(sample.tobytes()).hexdigest(),
    }


def data_fingerprint(X: Any, y: Any) -> dict[str, Any]:
    """``{"X": ..., "y": ...}``, each with ``shape``, ``dtype`` and ``sha256`` of the
    sampled rows; plain values, stored in a checkpoint's JSON metadata."""
    return {"X": _describe(X), "y": _describe(y)}


def describe_difference(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """What differs between two fingerprints, in words (empty when they match)."""
    parts = []
    for name in ("X", "y"):
        a, b = saved.get(name, {}), now[name]
        if a.get("shape") != b["shape"] or a.get("dtype") != b["dtype"]:
            parts.append(
                f"{name} was {a.get('dtype')} {tuple(a.get('shape') or ())}, "
                f"now {b['dtype']} {tuple(b['shape'])}"
            )
        elif a.get("sha256") != b["sha256"]:
            parts.append(f"{name} has the same shape and dtype but other values")
    return "; ".join(parts)
