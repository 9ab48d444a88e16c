"""Compiles CUDA C++ for the CPU with g++ and the emulator header, and launches kernels.

A compiled library is cached by a hash of its source in ``$FASTNN_EMU_CACHE`` (default: a
folder in the temporary directory), so a test session compiles each module once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HEADER = Path(__file__).resolve().parent.parent / "emulator.h"
_FLAGS = ("-std=c++20", "-O1", "-fPIC", "-shared", "-fno-fast-math", "-w")
if os.environ.get("FASTNN_EMU_SANITIZE"):  # with LD_PRELOAD of libasan: bounds-checked
    _FLAGS += ("-fsanitize=address", "-fno-omit-frame-pointer")
_EXPORTS = """
extern "C" int emu_count() { return sizeof(emu_entries) / sizeof(emu_entries[0]); }
extern "C" const char* emu_signature(int i) { return emu_entries[i].signature.c_str(); }
extern "C" void emu_launch(int i, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, void** args, int sync) {
    emu_entries[i].launch(dim3{gx, gy, gz}, dim3{bx, by, bz}, args, sync != 0);
}
"""


def compiler() -> str | None:
    """The C++ compiler the emulator uses, or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def kernel_module(source: str, expressions: list[str]) -> ctypes.CDLL:
    """A library exporting ``expressions`` (kernel instances of ``source``) to launch."""
    entries = ",\n".join(f"    emu::entry<&{e}>(&{e})" for e in expressions)
    text = f"{source}\n\nstatic const emu::Entry emu_entries[] = {{\n{entries}\n}};\n{_EXPORTS}"
    lib = build(text)
    lib.emu_signature.restype = ctypes.c_char_p
    lib.emu_launch.argtypes = [ctypes.c_int] + [ctypes.c_uint] * 6 + [ctypes.c_void_p, ctypes.c_int]
    return lib


def build(text: str) -> ctypes.CDLL:
    """``text`` compiled as C++ after the emulator header, loaded."""
    header = HEADER.read_text()
    key = hashlib.sha256((header + text + " ".join(_FLAGS)).encode()).hexdigest()[:24]
    cache = Path(os.environ.get("FASTNN_EMU_CACHE", Path(tempfile.gettempdir()) / "fastnn-emu"))
    cache.mkdir(parents=True, exist_ok=True)
    library = cache / f"{key}.so"
    if not library.exists():
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("the CUDA emulator needs a C++ compiler (g++)")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "module.cpp"
            src.write_text(text)
            out = Path(tmp) / "module.so"
            command = [cxx, *_FLAGS, "-include", str(HEADER), str(src), "-o", str(out)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"emulated compile failed:\n{done.stderr[-4000:]}")
            os.replace(out, library)
    return ctypes.CDLL(str(library))
