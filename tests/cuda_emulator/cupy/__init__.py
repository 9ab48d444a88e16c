"""A CPU stand-in for the part of CuPy that fastnn uses, to test the cupy backend here.

Put ``tests/cuda_emulator`` first on ``PYTHONPATH`` and ``import cupy`` gets this module.
It is not a GPU and proves nothing about one: what it checks is fastnn's own logic on the
cupy path and the CUDA kernels' arithmetic. "Device" arrays are host memory behind a
wrapper that, like CuPy, refuses to mix with NumPy arrays (``numpy.asarray(device_array)``
raises, and so does ``device_array + numpy_array``). ``RawModule`` compiles the ``.cu``
source for the CPU with g++ (see ``emulator.h``) and launches each kernel over its whole
grid, block by block; every launch checks each argument against the kernel's parameter
types (size, kind, the element type a pointer expects, contiguity), a check CuPy does not
make, so a wrong scalar width or dtype fails here instead of corrupting memory on a GPU.
``ElementwiseKernel`` compiles its loop body the same way. ``empty`` fills new arrays
with NaN (floats) or the largest value (integers), so reading memory nobody wrote shows.
Streams and events exist but everything runs synchronously, one launch at a time, so
races between streams or threads cannot show up here.
"""

from __future__ import annotations

import ctypes
import re
import threading
import types
import weakref
from typing import Any

import numpy

from . import _compile

__version__ = "13.0.0+cpu-emulator"

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


# -- memory pool accounting ----------------------------------------------------------


class MemoryPool:
    """CuPy's pool, as far as fastnn can tell: ``empty`` takes blocks rounded up to 512
    bytes and a freed block goes straight back out to the next request of its rounded
    size, so a new array can sit at the address of a dead one of another size, as on a
    GPU. Other arrays (results of NumPy functions) are counted but not pooled. Under
    AddressSanitizer the slack past each array and every free block are poisoned, so
    kernels that read or write there still fail."""

    BIN = 512

    def __init__(self) -> None:
        self._used = 0
        self._live: dict[int, Any] = {}
        self._free: dict[int, list[numpy.ndarray]] = {}
        self._lock = threading.RLock()  # a finalizer may run inside _track

    def _track(self, a: numpy.ndarray) -> None:
        with self._lock:
            if a.base is None and a.nbytes and id(a) not in self._live:
                self._used += a.nbytes
                self._live[id(a)] = weakref.finalize(a, self._release, id(a), a.nbytes)

    def _release(self, key: int, nbytes: int) -> None:
        with self._lock:
            self._used -= nbytes
            self._live.pop(key, None)

    def malloc(self, shape: Any, dtype: Any) -> numpy.ndarray:
        """A new array over a pooled block: a freed one of the same rounded size if any."""
        dtype = numpy.dtype(dtype)
        nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
        size = max(self.BIN, -(-nbytes // self.BIN) * self.BIN)
        with self._lock:
            free = self._free.get(size)
            block = free.pop() if free else numpy.empty(size, numpy.uint8)
            self._used += size
        _poison(block, 0, size, False)
        _poison(block, nbytes, size - nbytes, True)
        a = block[:nbytes].view(dtype).reshape(shape)
        weakref.finalize(a, self._give_back, block)
        return a

    def _give_back(self, block: numpy.ndarray) -> None:
        _poison(block, 0, block.size, True)
        with self._lock:
            self._used -= block.size
            self._free.setdefault(block.size, []).append(block)

    def used_bytes(self) -> int:
        return self._used

    def free_bytes(self) -> int:
        with self._lock:
            return sum(size * len(blocks) for size, blocks in self._free.items())


def _asan() -> Any:
    """libasan's poisoning calls when it is loaded (CI's sanitized run), else None."""
    try:
        process = ctypes.CDLL(None)
        poison = process.__asan_poison_memory_region
        unpoison = process.__asan_unpoison_memory_region
    except AttributeError:
        return None
    for f in (poison, unpoison):
        f.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return poison, unpoison


_ASAN = _asan()


def _poison(block: numpy.ndarray, offset: int, size: int, poisoned: bool) -> None:
    if _ASAN is not None and size > 0:
        _ASAN[0 if poisoned else 1](block.ctypes.data + offset, size)


_POOL = MemoryPool()
# One launch at a time, as on one stream (the emulator's block state is process-wide, and
# ctypes lets other Python threads run during a launch).
_LAUNCH = threading.Lock()


def get_default_memory_pool() -> MemoryPool:
    return _POOL


# -- arrays --------------------------------------------------------------------------


class MemoryPointer:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


def _wrap(value: Any) -> Any:
    """NumPy results as device arrays; a NumPy scalar as a 0-d array, as CuPy returns."""
    if isinstance(value, numpy.ndarray):
        _POOL._track(value)
        return ndarray._of(value)
    if isinstance(value, numpy.generic) and not isinstance(value, numpy.str_):
        return ndarray._of(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    """Device arrays to their storage; NumPy arrays refused, as CuPy refuses them."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _unwrap_key(key: Any) -> Any:
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_unwrap_key(k) for k in key)
    return key


def _call(function: Any, args: tuple, kwargs: dict) -> Any:
    out = kwargs.get("out")
    args = _unwrap(args)
    kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
    with numpy.errstate(all="ignore"):  # a GPU raises no floating-point warnings
        result = function(*args, **kwargs)
    if isinstance(out, ndarray) and result is out._a:
        return out
    if isinstance(out, tuple) and isinstance(result, tuple):
        return tuple(o if r is o._a else _wrap(r) for o, r in zip(out, result, strict=True))
    return _wrap(result)


class ndarray:  # CuPy's name
    """A device array: host memory that will not convert to NumPy implicitly."""

    __slots__ = ("_a", "__weakref__")
    _a: numpy.ndarray

    @classmethod
    def _of(cls, a: numpy.ndarray) -> ndarray:
        self = object.__new__(cls)
        self._a = a
        return self

    # host transfers: explicit only
    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> numpy.ndarray:
        if out is not None:
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr: numpy.ndarray, stream: Any = None) -> None:
        """Copy host ``arr`` in (same shape and dtype, as CuPy requires)."""
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        self._a[...] = arr

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(_IMPLICIT)

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._a.ctypes.data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # no __array_interface__: no way around ``.get()``
            raise AttributeError(name)
        value = getattr(self._a, name)
        if callable(value):

            def method(*args: Any, **kwargs: Any) -> Any:
                result = _call(value, args, kwargs)
                return self if isinstance(result, ndarray) and result._a is self._a else result

            return method
        return _wrap(value)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if "out" in kwargs:
            kwargs["out"] = tuple(kwargs["out"])
            if len(kwargs["out"]) == 1:
                kwargs["out"] = kwargs["out"][0]
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        return _call(func, args, kwargs)

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap_key(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        # A NumPy value is refused: fastnn moves host data to the device explicitly.
        self._a[_unwrap_key(key)] = _unwrap(value)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __repr__(self) -> str:
        return repr(self._a).replace("array(", "cupy.ndarray(", 1)

    def __str__(self) -> str:
        return str(self._a)

    __hash__ = None  # type: ignore[assignment]


def _operator(name: str) -> Any:
    def op(self: ndarray, *other: Any) -> Any:
        with numpy.errstate(all="ignore"):
            result = getattr(self._a, name)(*_unwrap(other))
        if result is NotImplemented:
            return result
        return self if result is self._a else _wrap(result)

    op.__name__ = name
    return op


for _name in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split():
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        setattr(ndarray, _form.format(_name), _operator(_form.format(_name)))
for _name in "lt le eq ne gt ge neg pos abs invert".split():
    setattr(ndarray, f"__{_name}__", _operator(f"__{_name}__"))


# -- creating and converting -----------------------------------------------------------


def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    """Device arrays pass through (cast if asked); anything else is copied to the device."""
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return _wrap(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a: Any, dtype: Any = None, copy: bool = True, order: str = "K") -> ndarray:
    if isinstance(a, ndarray):
        return _wrap(numpy.array(a._a, dtype=dtype, copy=copy, order=order))
    return _wrap(numpy.array(a, dtype=dtype, order=order, copy=True))


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    """Uninitialized as on a GPU, and visibly so: floats are NaN, integers their maximum,
    so a kernel or workspace that reads before writing shows up in results."""
    if order not in ("C", "c"):
        raise NotImplementedError("the emulator's pool gives C-ordered arrays only")
    a = _POOL.malloc(shape, dtype)
    kind = a.dtype.kind
    if kind in "fc":
        a.fill(numpy.nan)
    elif kind in "iu":
        a.fill(numpy.iinfo(a.dtype).max)
    elif kind == "b":
        a.fill(True)
    return _wrap(a)


def empty_like(a: ndarray, dtype: Any = None) -> ndarray:
    return empty(a.shape, a.dtype if dtype is None else dtype)


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> numpy.ndarray:
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return numpy.asarray(a, order=order)


def __getattr__(name: str) -> Any:
    """Everything else: NumPy's function of that name, on device arrays only."""
    value = getattr(numpy, name)
    if callable(value) and not isinstance(value, type):

        def function(*args: Any, **kwargs: Any) -> Any:
            return _call(value, args, kwargs)

        function.__name__ = name
        return function
    return value


# -- kernels ---------------------------------------------------------------------------


def _code(dtype: Any) -> str:
    dtype = numpy.dtype(dtype)
    return f"{dtype.kind}{dtype.itemsize}"


def _scalar_code(value: Any) -> str:
    if isinstance(value, numpy.generic):
        return _code(value.dtype)
    if isinstance(value, bool):
        return "b1"
    if isinstance(value, int):
        return "i8"  # CuPy passes a Python int as a 64-bit integer
    if isinstance(value, float):
        return "f8"
    raise TypeError(f"Unsupported type {type(value)}")


def _marshal(kernel: str, signature: list[str], args: tuple) -> tuple[Any, list]:
    if len(args) != len(signature):
        raise TypeError(f"{kernel}: takes {len(signature)} arguments, got {len(args)}")
    keep: list = []
    for i, (param, value) in enumerate(zip(signature, args, strict=True)):
        where = f"{kernel} argument {i} ({param})"
        if isinstance(value, ndarray):
            if not param.startswith("p"):
                raise TypeError(f"{where}: the parameter is a value, got an array")
            wanted = param[1:]
            got = _code(value.dtype)
            if wanted.startswith("p"):
                ok = got in ("u8", "i8")  # a table of device pointers
            else:
                ok = got == wanted or (wanted == "u1" and got == "b1")
            if not ok:
                raise TypeError(f"{where}: the kernel reads {wanted}, got a {value.dtype} array")
            if not value._a.flags.c_contiguous:
                raise ValueError(f"{where}: a non-contiguous array (strides {value.strides})")
            keep.append(ctypes.c_void_p(value._a.ctypes.data))
        elif isinstance(value, numpy.ndarray):
            raise TypeError(f"{where}: Unsupported type {type(value)}")
        elif value is None and param.startswith("p"):
            keep.append(ctypes.c_void_p(0))
        else:
            got = _scalar_code(value)
            if got != param:
                raise TypeError(
                    f"{where}: the parameter is {param} but the argument is {got} "
                    f"({type(value).__name__} {value!r})"
                )
            keep.append(ctypes.create_string_buffer(numpy.asarray(value).tobytes()))
    pointers = (ctypes.c_void_p * max(1, len(keep)))(
        *[
            ctypes.cast(ctypes.pointer(k) if isinstance(k, ctypes.c_void_p) else k, ctypes.c_void_p)
            for k in keep
        ]
    )
    return pointers, keep


def _dims(value: Any, limits: tuple[int, int, int], what: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, numpy.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3:
        raise ValueError(f"{what} must have 1 to 3 dimensions, got {value!r}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    for d, limit in zip(dims, limits, strict=True):
        if not 1 <= d <= limit:
            raise ValueError(f"invalid {what} {value!r}: each dimension from 1 to {limit}")
    return dims  # type: ignore[return-value]


class RawKernel:
    def __init__(self, lib: Any, index: int, name: str, synchronizes: bool) -> None:
        self._lib, self._index, self.name = lib, index, name
        self._signature = lib.emu_signature(index).decode().split(",")
        self._sync = synchronizes

    def __call__(self, grid: Any, block: Any, args: tuple, *, shared_mem: int = 0) -> None:
        g = _dims(grid, (2**31 - 1, 65535, 65535), "grid")
        b = _dims(block, (1024, 1024, 64), "block")
        if b[0] * b[1] * b[2] > 1024:
            raise ValueError(f"block {block!r} has more than 1024 threads")
        pointers, keep = _marshal(self.name, self._signature, tuple(args))
        with _LAUNCH:
            self._lib.emu_launch(self._index, *g, *b, pointers, int(self._sync))
        del keep


class RawModule:
    """CUDA source compiled for the CPU; ``name_expressions`` as NVRTC takes them."""

    def __init__(
        self,
        code: str,
        options: tuple = (),
        name_expressions: Any = None,
        **kwargs: Any,
    ) -> None:
        self._names = list(name_expressions or ())
        self._lib = _compile.kernel_module(code, self._names)
        self._code = code

    def get_function(self, name: str) -> RawKernel:
        if name not in self._names:
            raise KeyError(f"{name} is not among the module's name expressions")
        sync = _synchronizes(self._code, name.split("<")[0])
        return RawKernel(self._lib, self._names.index(name), name, sync)


def _synchronizes(code: str, kernel: str) -> bool:
    """Whether the body of ``__global__ ... kernel(...)`` calls ``__syncthreads``.

    (A device function that synchronizes on the kernel's behalf is not seen here; the
    emulator then stops the process with a message rather than run the barrier wrong.)
    """
    match = re.search(r"__global__\s+void\s+" + re.escape(kernel) + r"\s*\(", code)
    if match is None:
        return "__syncthreads" in code
    start = code.index("{", match.end())
    depth = 0
    for end in range(start, len(code)):
        depth += {"{": 1, "}": -1}.get(code[end], 0)
        if depth == 0:
            break
    return "__syncthreads" in code[start : end + 1]


_PARAM = re.compile(r"^\s*(raw\s+)?(\w+)\s+(\w+)\s*$")


def _params(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        match = _PARAM.match(part)
        if match is None or match.group(1):
            raise NotImplementedError(f"emulated ElementwiseKernel: cannot read {part!r}")
        out.append((match.group(2), match.group(3)))
    return out


_C_TYPES = {"f4": "float", "f8": "double", "i4": "int", "i8": "long long", "b1": "bool"}


class ElementwiseKernel:
    """The loop body compiled for the CPU; arrays broadcast, scalars passed by value."""

    def __init__(
        self, in_params: str, out_params: str, operation: str, name: str = "kernel", **kwargs: Any
    ) -> None:
        self._in, self._out = _params(in_params), _params(out_params)
        self._operation, self.name = operation, name
        self._libs: dict[tuple, Any] = {}

    def __call__(self, *args: Any) -> Any:
        n_in = len(self._in)
        if len(args) not in (n_in, n_in + len(self._out)):
            raise TypeError(f"{self.name}: wrong number of arguments ({len(args)})")
        dtype_of = {k: numpy.dtype(k) for k, _ in self._in + self._out if hasattr(numpy, k)}
        for (kind, _), value in zip(self._in + self._out, args, strict=False):
            if isinstance(value, numpy.ndarray):
                raise TypeError(f"Unsupported type {type(value)}")
            if isinstance(value, ndarray) and kind not in dtype_of:
                dtype_of[kind] = value.dtype
            elif isinstance(value, ndarray) and not hasattr(numpy, kind):
                if value.dtype != dtype_of[kind]:  # CuPy's own check
                    raise TypeError(
                        f"Type is mismatched. {self.name} {kind} {value.dtype} {dtype_of[kind]}"
                    )
        arrays = [a for a in args if isinstance(a, ndarray)]
        shape = numpy.broadcast_shapes(*(a.shape for a in arrays))
        outs = list(args[n_in:]) or [_wrap(numpy.empty(shape, dtype_of[k])) for k, _ in self._out]
        inputs = []
        scalar = []
        for (kind, _), value in zip(self._in, args[:n_in], strict=True):
            if isinstance(value, ndarray):
                inputs.append(
                    numpy.ascontiguousarray(
                        numpy.broadcast_to(value._a, shape), dtype=dtype_of[kind]
                    )
                )
                scalar.append(False)
            else:
                inputs.append(numpy.asarray(value, dtype=dtype_of[kind]))
                scalar.append(True)
        targets = []
        for out in outs:
            if not isinstance(out, ndarray) or out.shape != shape:
                raise ValueError(f"{self.name}: output must be a device array of shape {shape}")
            targets.append(out._a if out._a.flags.c_contiguous else numpy.empty(shape, out.dtype))
        key = tuple(_code(a.dtype) for a in inputs + targets) + tuple(scalar)
        if key not in self._libs:
            self._libs[key] = self._build(inputs, targets, scalar)
        keep = [numpy.ascontiguousarray(a) for a in inputs]
        pointers = (ctypes.c_void_p * (len(keep) + len(targets)))(
            *[a.ctypes.data for a in keep + targets]
        )
        self._libs[key].emu_elementwise(pointers, ctypes.c_longlong(int(numpy.prod(shape))))
        for out, target in zip(outs, targets, strict=True):
            if target is not out._a:
                out._a[...] = target
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _build(self, inputs: list, targets: list, scalar: list) -> Any:
        lines = []
        for (kind, _), a in zip(self._in + self._out, inputs + targets, strict=True):
            if not hasattr(numpy, kind):
                lines.append(f"typedef {_C_TYPES[_code(a.dtype)]} {kind};")
        lines = sorted(set(lines))
        body = []
        for i, ((_, name), a, is_scalar) in enumerate(zip(self._in, inputs, scalar, strict=True)):
            c = _C_TYPES[_code(a.dtype)]
            index = "0" if is_scalar else "i"
            body.append(f"const {c} {name} = static_cast<const {c}*>(p[{i}])[{index}];")
        for j, ((_, name), a) in enumerate(zip(self._out, targets, strict=True)):
            c = _C_TYPES[_code(a.dtype)]
            body.append(f"{c}& {name} = static_cast<{c}*>(p[{len(inputs) + j}])[i];")
        text = (
            'extern "C" void emu_elementwise(void** p, long long n) {\n'
            + "\n".join(lines)
            + "\nfor (long long i = 0; i < n; ++i) {\n"
            + "\n".join(body)
            + "\n{\n"
            + self._operation
            + ";\n}\n}\n}\n"
        )
        return _compile.build(text)


# -- the CUDA runtime, as far as fastnn asks ------------------------------------------


class CUDARuntimeError(RuntimeError):
    pass


class Device:
    def __init__(self, device: int = 0) -> None:
        if device != 0:
            raise CUDARuntimeError("cudaErrorInvalidDevice: the emulator has one device")
        self.id = device

    def use(self) -> None:
        pass

    def synchronize(self) -> None:
        pass


class Stream:
    """Work is synchronous here, so a stream only has to exist."""

    def __init__(self, non_blocking: bool = False) -> None:
        self.ptr = 0

    def synchronize(self) -> None:
        pass


class Event:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._time = 0.0

    def record(self, stream: Any = None) -> None:
        import time

        self._time = time.perf_counter()

    def synchronize(self) -> None:
        pass


def _elapsed(start: Event, stop: Event) -> float:
    return (stop._time - start._time) * 1e3


def _alloc_pinned(nbytes: int) -> Any:
    return memoryview(bytearray(nbytes))


_TOTAL_MEMORY = 16 << 30

runtime = types.SimpleNamespace(
    driverGetVersion=lambda: 13000,
    runtimeGetVersion=lambda: 13000,
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda i: {"name": b"CPU emulator", "totalGlobalMem": _TOTAL_MEMORY},
    memGetInfo=lambda: (_TOTAL_MEMORY - _POOL.used_bytes(), _TOTAL_MEMORY),
    CUDARuntimeError=CUDARuntimeError,
)
cuda = types.SimpleNamespace(
    runtime=runtime,
    Device=Device,
    Stream=Stream,
    get_current_stream=Stream,
    Event=Event,
    get_elapsed_time=_elapsed,
    alloc_pinned_memory=_alloc_pinned,
    MemoryPointer=MemoryPointer,
)


class _Random:
    def __init__(self) -> None:
        self._rng = numpy.random.default_rng(0)

    def random(self, size: Any = None, dtype: Any = float) -> ndarray:
        return _wrap(self._rng.random(size, dtype=dtype))


random = _Random()
