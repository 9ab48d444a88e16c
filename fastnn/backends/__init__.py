"""Backend registry: names to backend classes, imported only when first asked for.

The default backend is ``$FASTNN_BACKEND`` (``"numpy"`` when unset); :func:`use_backend`
overrides it for the current thread or task (a :class:`contextvars.ContextVar`).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .base import Backend


@dataclass(frozen=True)
class _Entry:
    module: str
    cls: str
    requires: str  # the third-party module the backend imports
    install_hint: str


_REGISTRY: dict[str, _Entry] = {
    "numpy": _Entry("fastnn.backends.numpy_backend", "NumpyBackend", "numpy", "pip install numpy"),
    "numba": _Entry(
        "fastnn.backends.numba_backend", "NumbaBackend", "numba", "pip install 'fastnn[numba]'"
    ),
    "cupy": _Entry(
        "fastnn.backends.cupy_backend",
        "CupyBackend",
        "cupy",
        "pip install 'fastnn[cuda12x]' (CUDA 12 drivers) or 'fastnn[cuda13x]' (CUDA 13)",
    ),
}

_instances: dict[str, Backend] = {}
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastnn_backend", default=None
)


def known_backends() -> list[str]:
    """Names of every backend fastnn knows, installed or not."""
    return list(_REGISTRY)


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run here (library missing, no usable device), or None.

    Only a backend whose library is installed is imported, to ask it about its device.
    """
    entry = _REGISTRY[_check_name(name)]
    if importlib.util.find_spec(entry.requires) is None:
        return f"{entry.requires} is not installed: {entry.install_hint}"
    try:
        get_backend(name)
    except (ImportError, RuntimeError) as exc:
        return str(exc)
    return None


def available_backends() -> list[str]:
    """Names of the backends that can run here (library installed, device usable)."""
    return [name for name in _REGISTRY if unavailable_reason(name) is None]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(_REGISTRY)}")
    return name


def default_backend_name() -> str:
    """The backend used when none is named: ``use_backend``, else ``$FASTNN_BACKEND``."""
    name = _override.get()
    if name is not None:
        return name
    env = os.environ.get("FASTNN_BACKEND", "").strip()
    if not env:
        return "numpy"
    if env not in _REGISTRY:
        raise ValueError(
            f"FASTNN_BACKEND={env!r} is not a backend; known backends: {', '.join(_REGISTRY)}"
        )
    return env


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name`` (a shared instance), or the default one when ``None``.

    Raises
    ------
    ValueError
        ``name`` is not a known backend.
    ImportError
        The backend's array library is not installed; the message gives the install command.
    """
    if isinstance(name, Backend):
        return name
    name = default_backend_name() if name is None else _check_name(name)
    if name not in _instances:
        entry = _REGISTRY[name]
        try:
            module = importlib.import_module(entry.module)
        except ImportError as exc:
            raise ImportError(
                f"the {name!r} backend needs {entry.requires!r}, which failed to import "
                f"({exc}); install it with: {entry.install_hint}"
            ) from exc
        _instances[name] = getattr(module, entry.cls)()
    return _instances[name]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Make ``name`` the default backend inside a ``with`` block (this thread/task only)."""
    backend = get_backend(_check_name(name))
    token = _override.set(name)
    try:
        yield backend
    finally:
        _override.reset(token)


__all__ = [
    "Backend",
    "available_backends",
    "default_backend_name",
    "get_backend",
    "known_backends",
    "unavailable_reason",
    "use_backend",
]
