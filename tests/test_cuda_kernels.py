"""The CUDA sources compile with NVRTC, the compiler CuPy itself uses at run time.

CI compiles them with nvcc too, but NVRTC differs (no host headers, for one), so each
kernel instance the cupy backend names is compiled here exactly as ``cupy.RawModule``
would compile it. Needs CuPy's NVRTC bindings (``pip install cupy-cuda13x
nvidia-cuda-nvrtc``), not a GPU.
"""

from __future__ import annotations

from importlib import resources

import pytest
from conftest import need_module

nvrtc = need_module(
    "cupy_backends.cuda.libs.nvrtc",
    "pip install cupy-cuda13x nvidia-cuda-nvrtc",
    module_level=True,
)
if need_module("cupy", "pip install cupy-cuda13x", module_level=True).__version__.endswith(
    "cpu-emulator"
):
    pytest.skip("NVRTC's bindings need the real CuPy, not the emulator", allow_module_level=True)


@pytest.mark.parametrize("filename", ["dense.cu", "optim.cu", "batchnorm.cu"])
@pytest.mark.parametrize("arch", ["compute_75", "compute_80", "compute_90"])  # CUDA 13: >= 7.5
def test_cupy_kernels_compile_with_nvrtc(filename, arch):
    from fastnn.backends import cupy_backend

    modules = (cupy_backend._DENSE, cupy_backend._OPTIM, cupy_backend._BATCHNORM)
    module = next(m for m in modules if m.filename == filename)
    source = resources.files("fastnn.kernels").joinpath(filename).read_text()
    program = nvrtc.createProgram(source, filename, [], [])
    names = [f"{k}<{t}>" for k in module.kernels for t in cupy_backend._CTYPES.values()]
    for name in names:
        nvrtc.addNameExpression(program, name)
    try:
        nvrtc.compileProgram(program, [f"-arch={arch}", *cupy_backend._OPTIONS])
    except nvrtc.NVRTCError as exc:
        pytest.fail(f"{filename}: {exc}\n{nvrtc.getProgramLog(program)}")
    assert all(nvrtc.getLoweredName(program, name) for name in names)
