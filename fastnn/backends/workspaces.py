"""Workspace arrays that backends reuse across calls instead of allocating per step."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any


class Workspaces:
    """Arrays reused across calls, keyed by (owner array, role); freed with their owner.

    Each key keeps the arrays of its two most recent shapes, so a training batch and the
    shorter last batch (or an evaluation batch) alternate without reallocating, and
    memory stays bounded however many batch sizes a program uses. Keys include the
    thread, so models trained in parallel threads (even on the same data) never share one.
    """

    SHAPES_PER_KEY = 2

    def __init__(self, empty: Callable[..., Any]) -> None:
        self._empty = empty  # numpy.empty, cupy.empty, ...
        self._arrays: dict[tuple[int, str, int], list[Any]] = {}

    def get(self, owner: Any, role: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """The array for ``owner`` and ``role`` with this shape and dtype (contents undefined)."""
        key = (id(owner), role, threading.get_ident())
        arrays = self._arrays.get(key)
        if arrays is None:
            arrays = self._arrays[key] = []
            weakref.finalize(owner, self._arrays.pop, key, None)
        for i, array in enumerate(arrays):
            if array.shape == shape and array.dtype == dtype:
                if i:
                    arrays.insert(0, arrays.pop(i))  # most recently used first
                return array
        array = self._empty(shape, dtype=dtype)
        arrays.insert(0, array)
        del arrays[self.SHAPES_PER_KEY :]
        return array

    def nbytes(self) -> int:
        """Bytes held in workspaces."""
        return sum(a.nbytes for arrays in self._arrays.values() for a in arrays)
