"""The backend interface and registry."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import fastnn
from fastnn.backends import _REGISTRY as REGISTRY
from fastnn.backends import Backend, get_backend, known_backends, use_backend


def _public_methods(cls):
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("name", known_backends())
def test_backend_class_grows_no_method_and_keeps_signatures(name):
    entry = REGISTRY[name]
    try:
        cls = getattr(importlib.import_module(entry.module), entry.cls)
    except ImportError as exc:
        pytest.skip(f"[{name}] {exc}")
    base = _public_methods(Backend)
    for method, signature in _public_methods(cls).items():
        assert method in base, f"{cls.__name__}.{method} is not in the Backend interface"
        assert signature == base[method], (
            f"{cls.__name__}.{method}{signature} != base{base[method]}"
        )


def test_every_interface_method_has_a_docstring():
    for method in _public_methods(Backend):
        doc = inspect.getdoc(getattr(Backend, method))
        assert doc, f"Backend.{method} needs a docstring stating its math"


def test_every_activation_has_a_backprop():
    for activation in fastnn.activations.ACTIVATIONS:
        assert hasattr(Backend, activation) and hasattr(Backend, "backprop_" + activation)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'; known backends: numpy"):
        get_backend("tensorflow")
    with pytest.raises(ValueError, match="unknown backend"):
        fastnn.MLP([2, 1], backend="tensorflow")


def test_missing_library_gives_install_hint(monkeypatch):
    from fastnn.backends import _Entry, _instances

    monkeypatch.setitem(
        REGISTRY, "fake", _Entry("fastnn_no_such_module", "X", "nosuchlib", "pip install nosuch")
    )
    with pytest.raises(ImportError, match="pip install nosuch"):
        get_backend("fake")
    assert "fake" not in _instances
    assert "fake" not in fastnn.available_backends()


def test_default_backend_from_environment(monkeypatch):
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    assert get_backend().name == "numpy"
    monkeypatch.setenv("FASTNN_BACKEND", "nope")
    with pytest.raises(ValueError, match="FASTNN_BACKEND='nope'"):
        get_backend()


def test_use_backend_is_scoped_to_its_thread():
    seen = {}

    def other_thread():
        seen["other"] = fastnn.backends.default_backend_name()

    with use_backend("numpy") as backend:
        assert backend.name == "numpy"
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen["other"] == "numpy"
    with pytest.raises(ValueError):
        with use_backend("nope"):
            pass


def test_importing_fastnn_imports_no_gpu_or_jit_library():
    code = "import sys, fastnn; print(sorted(m for m in ('numba', 'cupy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_math_modules_do_not_import_numpy():
    """Layers, losses, optimizers, the model and the training loop go through the backend."""
    import ast

    for module in (
        "layers",
        "losses",
        "optimizers",
        "model",
        "training",
        "activations",
        "gradcheck",
        "perceptron",
    ):
        path = Path(importlib.import_module(f"fastnn.{module}").__file__)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("numpy", "numba", "cupy"), (module, name)


def test_to_numpy_returns_host_arrays(backend):
    b = get_backend(backend)
    a = b.asarray([[1.0, 2.0]], dtype="float32")
    host = fastnn.to_numpy(a)
    assert type(host).__module__ == "numpy"
    assert host.dtype.name == "float32" and host.tolist() == [[1.0, 2.0]]
