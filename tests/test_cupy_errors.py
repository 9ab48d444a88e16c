"""The CuPy backend's three ways of being unusable, each with its own clear message.

These run without a GPU by standing in a fake ``cupy`` module for the real one.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

import pytest

import fastnn
from fastnn.backends import _instances


class _RuntimeError(Exception):
    pass


def fake_cupy(driver: int, runtime: int, devices: int | None) -> types.ModuleType:
    def device_count():
        if devices is None:
            raise _RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return devices

    rt = types.SimpleNamespace(
        driverGetVersion=lambda: driver,
        runtimeGetVersion=lambda: runtime,
        getDeviceCount=device_count,
        CUDARuntimeError=_RuntimeError,
    )
    module = types.ModuleType("cupy")
    module.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    module.cuda = types.SimpleNamespace(runtime=rt)
    module.empty = None
    return module


@pytest.fixture
def cupy_backend_module(monkeypatch):
    def load(cupy_module):
        monkeypatch.setitem(sys.modules, "cupy", cupy_module)
        monkeypatch.delitem(sys.modules, "fastnn.backends.cupy_backend", raising=False)
        monkeypatch.delitem(_instances, "cupy", raising=False)
        return importlib.import_module("fastnn.backends.cupy_backend")

    yield load
    sys.modules.pop("fastnn.backends.cupy_backend", None)


@pytest.mark.parametrize(
    ("driver", "runtime", "devices", "message"),
    [
        (0, 12080, 0, "CuPy is installed but no usable GPU: no NVIDIA driver was found"),
        (
            12020,
            13000,
            1,
            r"CUDA version mismatch: the NVIDIA driver supports CUDA 12.2 but "
            r"this CuPy was built for CUDA 13.0.*fastnn\[cuda12x\]",
        ),
        (12080, 12080, 0, "no usable GPU: no CUDA device is visible"),
        (12080, 12080, None, "no usable GPU: cudaErrorNoDevice"),
    ],
)
def test_unusable_gpu_is_explained(cupy_backend_module, driver, runtime, devices, message):
    module = cupy_backend_module(fake_cupy(driver, runtime, devices))
    with pytest.raises(RuntimeError, match=message):
        module.check_device()
    with pytest.raises(RuntimeError, match=message):
        fastnn.get_backend("cupy")
    assert "cupy" not in fastnn.available_backends()
    assert message.split(":")[0].split(" ")[0] in fastnn.backends.unavailable_reason("cupy")


@pytest.mark.parametrize(
    ("driver", "runtime"),
    [(13000, 13020), (13000, 13000), (12020, 12080), (13020, 12080)],
    ids=["13.0-driver-13.2-cupy", "same", "12.2-driver-12.8-cupy", "newer-driver"],
)
def test_a_driver_of_the_same_major_cuda_version_is_accepted(cupy_backend_module, driver, runtime):
    """CUDA's minor-version compatibility: a 13.0 driver (580) runs cupy-cuda13x 14.2,
    whose runtime says 13.2, as CuPy itself assumes. The GPU machine lent to us is this."""
    module = cupy_backend_module(fake_cupy(driver, runtime, 1))
    module.check_device()  # no error


def test_cupy_not_installed_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" fails
    monkeypatch.delitem(sys.modules, "fastnn.backends.cupy_backend", raising=False)
    monkeypatch.delitem(_instances, "cupy", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[cuda12x\]'"):
        fastnn.get_backend("cupy")
    with pytest.raises(ImportError, match=r"fastnn\[cuda12x\]"):
        fastnn.MLP([2, 1], backend="cupy")
