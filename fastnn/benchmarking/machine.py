"""What the numbers were measured on: CPU, cores, thread settings, library versions."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from typing import Any

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMBA_THREADING_LAYER",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_threads() -> list[dict[str, Any]]:
    """Thread pools of the loaded BLAS/OpenMP libraries (needs threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "install threadpoolctl to report BLAS threads"}]
    keys = ("internal_api", "version", "num_threads", "threading_layer", "architecture")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info()]


def forced_blas_core() -> str | None:
    """A warning when ``OPENBLAS_CORETYPE`` forces OpenBLAS's kernels (``Haswell`` on an
    AVX-512 CPU runs GEMM at about half the rate), else None."""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced:
        return None
    pools = blas_threads()
    detected = [p.get("architecture") for p in pools if p.get("internal_api") == "openblas"]
    return (
        f"OPENBLAS_CORETYPE={forced} forces OpenBLAS's {forced} kernels"
        + (f" (running: {', '.join(map(str, detected))})" if detected else "")
        + "; NumPy's GEMM may run below the CPU's width. To measure the machine, unset it "
        "for this command: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fastnn bench ..."
    )


def numba_threads() -> dict[str, Any]:
    """Numba's thread count and threading layer, when Numba is installed."""
    try:
        import numba
    except ImportError:
        return {}
    return {
        "num_threads": numba.get_num_threads(),
        "threading_layer": getattr(numba.config, "THREADING_LAYER", "default"),  # set at run time
        "note": "fastnn's kernels run serially; the matrix products use the BLAS threads",
    }


def versions(
    packages: tuple[str, ...] = (
        "fastnn",
        "numpy",
        "numba",
        "cupy",
        "torch",
        "jax",
        "jaxlib",
        "scikit-learn",
    ),
) -> dict[str, str]:
    """Installed versions of the libraries the benchmarks touch."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe() -> dict[str, Any]:
    """Everything above, plus the date and the thread-related environment variables."""
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": cores(),
        "python": platform.python_version(),
        "blas": blas_threads(),
        "numba": numba_threads(),
        "environment": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "warning": forced_blas_core(),
        "versions": versions(),
    }
