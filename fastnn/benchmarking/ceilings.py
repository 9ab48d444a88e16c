"""The machine's limits, measured in the same run: GEMM rate and memory bandwidth."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from .timer import measure


def gemm_gflops(m: int, k: int, n: int, dtype: str = "float32", min_time: float = 0.3) -> float:
    """GFLOP/s of the BLAS for ``(m, k) @ (k, n)`` (``2 m k n`` flops), at its current threads."""
    rng = np.random.default_rng(0)
    A = rng.random((m, k), dtype=np.float64).astype(dtype)
    B = rng.random((k, n), dtype=np.float64).astype(dtype)
    C = np.empty((m, n), dtype=dtype)
    seconds = measure(lambda: np.matmul(A, B, out=C), min_time=min_time)
    return 2.0 * m * k * n / seconds / 1e9


def peak_gemm_gflops(dtype: str = "float32", size: int = 2048) -> float:
    """GFLOP/s of a large square GEMM: the practical peak of NumPy's BLAS."""
    return gemm_gflops(size, size, size, dtype, min_time=1.0)


def _torch_gemm(A: np.ndarray, B: np.ndarray) -> Callable[[], object]:
    torch = importlib.import_module("torch")
    At, Bt = torch.from_numpy(A), torch.from_numpy(B)
    Ct = torch.empty((A.shape[0], B.shape[1]), dtype=At.dtype)
    return lambda: torch.matmul(At, Bt, out=Ct)


def _jax_gemm(A: np.ndarray, B: np.ndarray) -> Callable[[], object]:
    jax = importlib.import_module("jax")
    if A.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    Aj, Bj = jax.device_put(A), jax.device_put(B)
    matmul = jax.jit(jax.numpy.matmul)
    return lambda: matmul(Aj, Bj).block_until_ready()


#: GEMMs of the libraries a run may have, besides NumPy's BLAS: PyTorch ships its own
#: (MKL on x86), and JAX's XLA has its own CPU GEMM, so either may beat NumPy's OpenBLAS
OTHER_GEMMS: dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], object]]] = {
    "torch": _torch_gemm,
    "jax": _jax_gemm,
}


def best_gemm_gflops(dtype: str = "float32", size: int = 2048) -> dict[str, float]:
    """GFLOP/s of a ``size``^3 GEMM in NumPy and in every other installed library of
    :data:`OTHER_GEMMS`: the largest is the machine's practical peak for ``% peak``."""
    rates = {"numpy": peak_gemm_gflops(dtype, size)}
    rng = np.random.default_rng(0)
    A = rng.random((size, size)).astype(dtype)
    B = rng.random((size, size)).astype(dtype)
    for name, build in OTHER_GEMMS.items():
        try:
            run = build(A, B)
        except ImportError:
            continue
        rates[name] = 2.0 * size**3 / measure(run, min_time=1.0) / 1e9
    return rates


def memory_bandwidth_gbs(megabytes: int = 256) -> float:
    """GB/s of a large array copy, counting the bytes read plus the bytes written."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    seconds = measure(lambda: np.copyto(dst, src), min_time=0.5)
    return 2 * src.nbytes / seconds / 1e9
