"""The CuPy backend: cuBLAS matrix products with fused CUDA kernels, training on the GPU.

The kernels are CUDA C++ templates in ``fastnn/kernels/*.cu``, compiled on first use by
``cupy.RawModule`` (NVRTC) for the dtype at hand; an instance is named from the dtype
(``"bias_activation<float>"``). As on the Numba backend, each layer's results go to
workspace arrays reused from step to step, so the layers allocate nothing per batch (the
loop's few small bookkeeping arrays come from CuPy's pool), and a returned array is valid
until the next call for the same layer.

Importing this module imports CuPy but does not touch the GPU; creating the backend
checks that a usable device is there and says plainly what is missing when it is not.
Matrix products use CuPy's defaults: float32 products are exact float32 unless the user
sets ``CUPY_TF32=1`` (TensorFloat-32, faster and less precise) before importing CuPy.
"""

from __future__ import annotations

import threading
from functools import cached_property
from importlib import resources
from typing import Any

import cupy
import numpy

from .base import Backend
from .workspaces import Workspaces

INSTALL_HINT = "pip install 'fastnn[cuda12x]' (CUDA 12 drivers) or 'fastnn[cuda13x]' (CUDA 13)"
_CTYPES = {numpy.dtype("float32"): "float", numpy.dtype("float64"): "double"}
_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3}
_OPTIONS = ("-std=c++14",)  # NVRTC options, as tests/test_cuda_kernels.py compiles too
_THREADS = 256
_ROW_CHUNK = 256  # rows per block row of the bias-gradient reduction (at least)
_MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y


def check_device() -> None:
    """Raise ``RuntimeError`` saying why CuPy cannot use a GPU here, if it cannot.

    Only the major CUDA versions are compared: within a major version CUDA promises
    minor-version compatibility (a CUDA 13.0 driver runs a CuPy built with the 13.2
    runtime), as CuPy itself assumes. Anything finer is CuPy's to report, when it runs.
    """
    runtime = cupy.cuda.runtime
    driver = runtime.driverGetVersion()
    built_for = runtime.runtimeGetVersion()
    if driver == 0:
        raise RuntimeError(
            "CuPy is installed but no usable GPU: no NVIDIA driver was found. The cupy "
            "backend needs an NVIDIA GPU with its driver; use backend='numpy' or 'numba' here"
        )
    if driver // 1000 < built_for // 1000:
        raise RuntimeError(
            f"CUDA version mismatch: the NVIDIA driver supports CUDA {_version(driver)} but "
            f"this CuPy was built for CUDA {_version(built_for)}, a newer major version. "
            f"Install the CuPy matching the driver ({INSTALL_HINT}) or update the driver"
        )
    try:
        count = runtime.getDeviceCount()
    except runtime.CUDARuntimeError as exc:
        raise RuntimeError(f"CuPy is installed but no usable GPU: {exc}") from None
    if count == 0:
        raise RuntimeError(
            "CuPy is installed but no usable GPU: no CUDA device is visible "
            "(check CUDA_VISIBLE_DEVICES)"
        )


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


class _Module:
    """One ``.cu`` file, compiled per dtype on first use; its kernels looked up once.

    (``RawModule.get_function`` builds a new ``RawKernel`` and asks the driver for the
    function on every call, so the kernels are kept, per name and dtype.)
    """

    def __init__(self, filename: str, kernels: tuple[str, ...]) -> None:
        self.filename = filename
        self.kernels = kernels
        self._compiled: dict[str, Any] = {}
        self._functions: dict[tuple[str, Any], Any] = {}

    def get(self, kernel: str, dtype: Any) -> Any:
        function = self._functions.get((kernel, dtype))
        if function is None:
            function = self._function(kernel, _CTYPES[numpy.dtype(dtype)])
            self._functions = {**self._functions, (kernel, dtype): function}  # thread-safe
        return function

    def _function(self, kernel: str, ctype: str) -> Any:
        if ctype not in self._compiled:
            source = resources.files("fastnn.kernels").joinpath(self.filename).read_text()
            self._compiled[ctype] = cupy.RawModule(
                code=source,
                options=_OPTIONS,
                name_expressions=[f"{k}<{ctype}>" for k in self.kernels],
            )
        return self._compiled[ctype].get_function(f"{kernel}<{ctype}>")


_DENSE = _Module(
    "dense.cu",
    (
        "bias_activation",
        "bias_softmax",
        "activation_backward_bias",
        "softmax_cross_entropy_labels",
        "softmax_cross_entropy_dense",
    ),
)
_OPTIM = _Module("optim.cu", ("sgd", "momentum", "adam", "all_finite"))
_BATCHNORM = _Module(
    "batchnorm.cu",
    (
        "batchnorm_stats",
        "batchnorm_apply",
        "batchnorm_eval",
        "batchnorm_backward_sums",
        "batchnorm_backward_dx",
    ),
)
_POINTER_TABLES_KEPT = 8  # optimizer state, gradients + loss, parameters, ...
_FINITE_BLOCKS = 256  # at most 65,536 threads (and flags) for the finiteness check


def _blocks(n: int) -> tuple[int]:
    """Blocks for a grid-stride loop over ``n`` elements."""
    return (max(1, min(-(-n // _THREADS), 65535)),)


def _rows(n: int) -> tuple[int]:
    """Blocks for one thread per row."""
    return (max(1, -(-n // _THREADS)),)


def _row_chunks(n: int) -> tuple[int, int]:
    """``(rows per chunk, chunks)`` for the bias-gradient reduction over ``n`` rows: chunks
    of 256 rows, longer past 16.7M rows so that the chunk count fits in gridDim.y."""
    chunk = max(_ROW_CHUNK, -(-n // _MAX_GRID_Y))
    return chunk, -(-n // chunk)


def _i32(v: int) -> Any:
    return numpy.int32(v)  # a kernel's ``int`` parameter (a Python int would pass 8 bytes)


def _i64(v: int) -> Any:
    return numpy.int64(v)


class _PinnedStaging:
    """A page-locked host buffer for one batch of streamed rows, grown as needed, and the
    event recorded after the last copy out of it."""

    def __init__(self) -> None:
        self.memory: Any = None
        self.capacity = 0
        self.copied = cupy.cuda.Event()

    def views(self, shape: tuple[int, ...], dtype: Any, n_rows: int) -> tuple[Any, Any]:
        """Host arrays (X of ``shape`` and ``dtype``, int64 rows) over the buffer, once
        the previous copy out of it is done."""
        self.copied.synchronize()
        x_bytes = int(numpy.prod(shape)) * dtype.itemsize
        offset = -(-x_bytes // 8) * 8
        needed = offset + 8 * n_rows
        if needed > self.capacity:
            self.memory = cupy.cuda.alloc_pinned_memory(needed)
            self.capacity = needed
        raw = numpy.frombuffer(self.memory, numpy.uint8, needed)
        return raw[:x_bytes].view(dtype).reshape(shape), raw[offset:needed].view(numpy.int64)


class _ThreadStaging(threading.local):
    """Each thread's two pinned buffers and whose turn it is (threads stream separately)."""

    def __init__(self) -> None:
        self.buffers = (_PinnedStaging(), _PinnedStaging())
        self.turn = 0


class CupyBackend(Backend):
    """cuBLAS products and fused CUDA kernels; everything else from the base, on CuPy."""

    name = "cupy"
    xp = cupy

    def __init__(self) -> None:
        check_device()
        self._work = Workspaces(cupy.empty)
        self._pointer_tables: dict[tuple, Any] = {}
        self._staging = _ThreadStaging()

    def to_numpy(self, a: Any) -> Any:
        return cupy.asnumpy(a)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return cupy.ascontiguousarray(cupy.asarray(a, dtype=dtype))

    def synchronize(self) -> None:
        cupy.cuda.Device().synchronize()

    def memory_in_use(self) -> int:
        return int(cupy.get_default_memory_pool().used_bytes())

    def upload_limit(self) -> int:
        free, _ = cupy.cuda.runtime.memGetInfo()
        return (free + cupy.get_default_memory_pool().free_bytes()) // 2

    def stream_rows(self, X_host: Any, rows: Any, dtype: Any) -> tuple[Any, Any]:
        """The batch goes through page-locked (pinned) host memory, so its copy to the GPU
        is asynchronous: the host gathers the next batch while the GPU still works on this
        one. Two pinned buffers take turns; a buffer is refilled only after the copy out of
        it is done. The copies are queued on the current stream, behind the kernels that
        read the previous batch from the same device arrays."""
        dtype = numpy.dtype(dtype)
        n = len(rows)
        mine = self._staging
        mine.turn ^= 1
        staging = mine.buffers[mine.turn]
        X_pinned, rows_pinned = staging.views((n, *X_host.shape[1:]), dtype, n)
        if X_host.dtype == dtype:
            numpy.take(X_host, rows, axis=0, out=X_pinned)
        else:
            X_pinned[...] = X_host[rows]
        rows_pinned[...] = rows
        X_dev = self._work.get(staging, "X", X_pinned.shape, dtype)
        rows_dev = self._work.get(staging, "rows", (n,), rows_pinned.dtype)
        stream = cupy.cuda.get_current_stream()
        X_dev.set(X_pinned, stream=stream)
        rows_dev.set(rows_pinned, stream=stream)
        staging.copied.record(stream)
        return X_dev, rows_dev

    def take_rows(self, X: Any, idx: Any) -> Any:
        out = self._work.get(X, "rows", (len(idx), *X.shape[1:]), X.dtype)
        return cupy.take(X, idx, axis=0, out=out)

    def finite_flag(self, arrays: list[Any]) -> Any:
        """One multi-tensor pass (a flag per thread, then their ``all``) instead of a
        check, a reduction and a copy per array."""
        dtype = arrays[0].dtype
        if any(a.dtype != dtype or not a.flags.c_contiguous for a in arrays):
            return super().finite_flag(arrays)
        (A,), offsets, _, total = self._tables([0.0] * len(arrays), arrays)
        blocks = min(_blocks(total)[0], _FINITE_BLOCKS)
        flags = self._work.get(offsets, "finite_flags", (blocks * _THREADS,), numpy.bool_)
        kernel = _OPTIM.get("all_finite", dtype)
        kernel((blocks,), (_THREADS,), (A, offsets, _i32(len(arrays)), flags))
        return flags.all()

    # -- dense layer -----------------------------------------------------------------

    def affine(self, X: Any, W: Any, b: Any) -> Any:
        return self.dense_forward(X, W, b, "identity")

    def affine_backward(self, dZ: Any, X: Any, W: Any, need_dX: bool = True) -> tuple:
        db = self._work.get(W, "db", (W.shape[0],), W.dtype)
        cupy.sum(dZ, axis=0, out=db)
        return self._products(dZ, X, W, need_dX) + (db,)

    def _products(self, dZ: Any, X: Any, W: Any, need_dX: bool) -> tuple:
        dW = cupy.matmul(dZ.T, X, out=self._work.get(W, "dW", W.shape, W.dtype))
        dX = None
        if need_dX:
            out = self._work.get(W, "dX", (dZ.shape[0], W.shape[1]), W.dtype)
            dX = cupy.matmul(dZ, W, out=out)
        return dX, dW

    def dense_forward(self, X: Any, W: Any, b: Any, activation: str) -> Any:
        if activation not in _CODES and activation != "softmax":  # no kernel: the base's
            return super().dense_forward(X, W, b, activation)
        n, m = X.shape[0], W.shape[0]
        H = cupy.matmul(X, W.T, out=self._work.get(W, "Z", (n, m), W.dtype))
        if activation == "softmax":
            _DENSE.get("bias_softmax", W.dtype)(_rows(n), (_THREADS,), (H, b, _i64(n), _i32(m)))
        else:
            _DENSE.get("bias_activation", W.dtype)(
                _blocks(n * m), (_THREADS,), (H, b, _i64(n), _i32(m), _i32(_CODES[activation]))
            )
        return H

    def dense_backward(
        self, dH: Any, X: Any, W: Any, H: Any, activation: str, need_dX: bool = True
    ) -> tuple:
        if activation not in _CODES:  # softmax (a row-wise Jacobian) and names without a
            return super().dense_backward(dH, X, W, H, activation, need_dX)  # kernel
        n, m = H.shape
        chunk, chunks = _row_chunks(n)
        dZ = self._work.get(W, "dZ", (n, m), W.dtype)
        partial = self._work.get(W, "db_partial", (chunks, m), W.dtype)
        db = self._work.get(W, "db", (m,), W.dtype)
        _DENSE.get("activation_backward_bias", W.dtype)(
            (-(-m // 32), chunks),
            (32, 8),
            (
                cupy.ascontiguousarray(dH),
                H,
                dZ,
                partial,
                _i64(n),
                _i32(m),
                _i32(_CODES[activation]),
                _i32(chunk),
            ),
        )
        cupy.sum(partial, axis=0, out=db)
        return self._products(dZ, X, W, need_dX) + (db,)

    # -- batch normalization: kernels/batchnorm.cu ------------------------------------

    def batchnorm_train(self, X: Any, gamma: Any, beta: Any, eps: float) -> tuple:
        X = cupy.ascontiguousarray(X)
        n, m = X.shape
        work, dtype = self._work, gamma.dtype
        mean, var, inv_std = (work.get(gamma, role, (m,), dtype) for role in ("mu", "var", "is"))
        H = work.get(gamma, "bn_H", (n, m), dtype)
        X_hat = work.get(gamma, "bn_X_hat", (n, m), dtype)
        size = (_i64(n), _i32(m))
        _BATCHNORM.get("batchnorm_stats", dtype)(
            _rows(m), (_THREADS,), (X, *size, dtype.type(eps), mean, var, inv_std)
        )
        _BATCHNORM.get("batchnorm_apply", dtype)(
            _blocks(n * m), (_THREADS,), (X, mean, inv_std, gamma, beta, X_hat, H, *size)
        )
        return H, mean, var, (X_hat, inv_std)

    def batchnorm_eval(
        self, X: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float
    ) -> Any:
        X = cupy.ascontiguousarray(X)
        n, m = X.shape
        dtype = gamma.dtype
        H = self._work.get(gamma, "bn_eval", (n, m), dtype)
        _BATCHNORM.get("batchnorm_eval", dtype)(
            _blocks(n * m),
            (_THREADS,),
            (X, gamma, beta, running_mean, running_var, dtype.type(eps), H, _i64(n), _i32(m)),
        )
        return H

    def batchnorm_backward(self, dH: Any, cache: Any, gamma: Any, need_dX: bool = True) -> tuple:
        X_hat, inv_std = cache
        dH = cupy.ascontiguousarray(dH)
        n, m = dH.shape
        work, dtype = self._work, gamma.dtype
        dgamma = work.get(gamma, "dgamma", (m,), dtype)
        dbeta = work.get(gamma, "dbeta", (m,), dtype)
        size = (_i64(n), _i32(m))
        _BATCHNORM.get("batchnorm_backward_sums", dtype)(
            _rows(m), (_THREADS,), (dH, X_hat, *size, dgamma, dbeta)
        )
        dX = None
        if need_dX:
            dX = work.get(gamma, "bn_dX", (n, m), dtype)
            _BATCHNORM.get("batchnorm_backward_dx", dtype)(
                _blocks(n * m),
                (_THREADS,),
                (dH, X_hat, inv_std, gamma, dgamma, dbeta, dX, *size),
            )
        return dX, dgamma, dbeta

    # -- fused loss and gradient -------------------------------------------------------

    def softmax_cross_entropy(self, Z: Any, T: Any) -> tuple:
        n, m = Z.shape
        dZ = self._work.get(Z, "dloss", (n, m), Z.dtype)
        rows = self._work.get(Z, "row_loss", (n,), Z.dtype)
        kernel = "softmax_cross_entropy_labels" if T.ndim == 1 else "softmax_cross_entropy_dense"
        targets = T.astype(cupy.int64, copy=False) if T.ndim == 1 else T
        _DENSE.get(kernel, Z.dtype)(_rows(n), (_THREADS,), (Z, targets, dZ, rows, _i64(n), _i32(m)))
        return self._mean(Z, rows), dZ

    def _mean(self, owner: Any, values: Any) -> Any:
        """The mean of ``values`` in a 0-d workspace: the loss keeps its address from step
        to step, so the finiteness check's pointer table is reused."""
        return cupy.mean(values, out=self._work.get(owner, "loss", (), values.dtype))

    @cached_property
    def _bce(self) -> Any:
        return cupy.ElementwiseKernel(
            "T z, T t, T inv_size",
            "T loss, T dz",
            """
            T e = exp(-fabs(z));
            loss = (z > 0 ? z : T(0)) - z * t + log1p(e);
            dz = ((z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e)) - t) * inv_size;
            """,
            "fastnn_sigmoid_bce",
        )

    def sigmoid_binary_cross_entropy(self, Z: Any, T: Any) -> tuple:
        return self._elementwise_loss(self._bce, Z, T, 1.0)

    @cached_property
    def _mse(self) -> Any:
        return cupy.ElementwiseKernel(
            "T h, T t, T two_over_size",
            "T sq, T dh",
            "T d = h - t; sq = d * d; dh = d * two_over_size;",
            "fastnn_mse",
        )

    def mse(self, H: Any, T: Any) -> tuple:
        return self._elementwise_loss(self._mse, H, T, 2.0)

    def _elementwise_loss(self, kernel: Any, H: Any, T: Any, scale: float) -> tuple:
        """``(mean loss, gradient)`` from a kernel writing each element's loss and its
        gradient, the gradient scaled by ``scale / H.size``."""
        per_element = self._work.get(H, "elem_loss", H.shape, H.dtype)
        grad = self._work.get(H, "dloss", H.shape, H.dtype)
        kernel(H, T, H.dtype.type(scale / H.size), per_element, grad)
        return self._mean(H, per_element), grad

    # -- optimizer updates: every parameter in one launch ------------------------------

    def _tables(self, decays: list[float], *groups: list) -> tuple:
        """Device tables of pointers for each group of arrays, the tensors' offsets, the
        decays; uploaded once and reused while the arrays stay the same (the most recent
        few sets are kept: a training step uses two)."""
        # Everything a table depends on: CuPy's pool hands a freed block to the next array
        # of its rounded size, so an address alone may now hold an array of another size.
        key = (
            tuple(decays),
            *((a.data.ptr, a.size, a.dtype.str) for group in groups for a in group),
        )
        entry = self._pointer_tables.get(key)
        if entry is None:
            dtype = groups[0][0].dtype
            sizes = [a.size for a in groups[0]]
            offsets = cupy.asarray(numpy.concatenate([[0], numpy.cumsum(sizes)]), cupy.int64)
            tables = [
                cupy.asarray([a.data.ptr for a in group], dtype=cupy.uint64) for group in groups
            ]
            entry = (tables, offsets, cupy.asarray(decays, dtype=dtype), sum(sizes))
            # Replaced whole, never edited: a thread reading the old dict is unaffected.
            kept = list(self._pointer_tables.items())[1 - _POINTER_TABLES_KEPT :]
            self._pointer_tables = {**dict(kept), key: entry}
        return entry

    def sgd_step(
        self,
        params: list,
        grads: list,
        velocities: list | None,
        lr: float,
        momentum: float,
        nesterov: bool,
        decays: list[float],
    ) -> None:
        s = params[0].dtype.type
        count = _i32(len(params))
        if velocities is None:
            (P, G), offsets, wd, total = self._tables(decays, params, grads)
            _OPTIM.get("sgd", params[0].dtype)(
                _blocks(total), (_THREADS,), (P, G, offsets, wd, count, s(lr))
            )
        else:
            (P, G, V), offsets, wd, total = self._tables(decays, params, grads, velocities)
            _OPTIM.get("momentum", params[0].dtype)(
                _blocks(total),
                (_THREADS,),
                (P, G, V, offsets, wd, count, s(lr), s(momentum), _i32(nesterov)),
            )

    def adam_step(
        self,
        params: list,
        grads: list,
        m: list,
        v: list,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        t: int,
        decays: list[float],
    ) -> None:
        s = params[0].dtype.type
        (P, G, M, V), offsets, wd, total = self._tables(decays, params, grads, m, v)
        _OPTIM.get("adam", params[0].dtype)(
            _blocks(total),
            (_THREADS,),
            (
                P,
                G,
                M,
                V,
                offsets,
                wd,
                _i32(len(params)),
                s(lr),
                s(beta1),
                s(beta2),
                s(eps),
                s(1 - beta1**t),
                s(1 - beta2**t),
            ),
        )
