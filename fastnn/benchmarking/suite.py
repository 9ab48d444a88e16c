"""Building the set of workloads to compare, and measuring the machine's ceilings for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from fastnn.backends import available_backends

from . import peers
from .ceilings import gemm_gflops
from .timer import measure_side_by_side
from .workloads import (
    CHECK_TOLERANCE,
    UPDATE_OPTIMIZERS,
    Architecture,
    Workload,
    fastnn_epoch,
    fastnn_inference,
    fastnn_train_step,
    fastnn_update,
)

KINDS = ("train_step", "epoch", "infer_batch1", "infer_large") + tuple(
    f"update_{name}" for name in UPDATE_OPTIMIZERS
)
PEERS = ("pytorch", "jax", "scikit-learn", "numpy-tutorial", "pytorch-cuda")
LARGE_BATCH = 8192


def builders(
    arch: Architecture, kind: str, dtype: str, backends: list[str], peer_names: tuple[str, ...]
) -> Iterator[tuple[str, Callable[[], Workload]]]:
    """``(implementation, build)`` pairs for one architecture and kind; building may raise
    :class:`~fastnn.benchmarking.peers.PeerUnavailable`."""
    batch = {"infer_batch1": 1, "infer_large": LARGE_BATCH}.get(kind, 0)  # 0: not inference
    for backend in backends:
        name = f"fastnn[{backend}]"
        if kind == "train_step":
            yield name, partial(fastnn_train_step, arch, backend, dtype)
        elif kind == "epoch":
            yield name, partial(fastnn_epoch, arch, backend, dtype)
        elif kind.startswith("update_"):
            yield name, partial(fastnn_update, arch, backend, dtype, kind[len("update_") :])
        else:
            yield name, partial(fastnn_inference, arch, backend, dtype, batch)
    for peer in () if kind.startswith("update_") else peer_names:  # fastnn's own rows
        device = "cuda" if peer == "pytorch-cuda" else "cpu"
        if peer in ("pytorch", "pytorch-cuda"):
            if kind == "train_step":
                yield peer, partial(peers.torch_train_step, arch, dtype, device)
            elif kind == "epoch":
                yield peer, partial(peers.torch_epoch, arch, dtype, device)
            else:
                yield peer, partial(peers.torch_inference, arch, dtype, batch, device)
        elif peer == "jax" and kind == "train_step":
            yield "jax-jit", partial(peers.jax_train_step, arch, dtype)
            yield "jax-jit-host", partial(peers.jax_train_step, arch, dtype, host=True)
        elif peer == "jax" and kind == "epoch":
            yield "jax-jit", partial(peers.jax_epoch, arch, dtype)
        elif peer == "scikit-learn" and kind == "epoch":
            yield peer, partial(peers.sklearn_epoch, arch, dtype)
        elif peer == "numpy-tutorial" and kind == "train_step":
            yield peer, partial(peers.tutorial_train_step, arch, dtype)


@dataclass
class Result:
    """One measured workload."""

    implementation: str
    arch: str
    kind: str
    dtype: str
    seconds: float  # per call
    seconds_per_step: float  # per training step (per call for inference)
    samples_per_s: float
    gflops: float
    deviation: float | None  # from the float64 reference after one step
    info: dict


def checked(workload: Workload) -> Workload:
    """``workload`` after checking its first step against the float64 reference."""
    error = workload.check()
    workload.info["deviation"] = error
    if error is not None and error > CHECK_TOLERANCE[workload.dtype]:
        raise AssertionError(
            f"{workload.implementation} {workload.arch.name} {workload.kind} {workload.dtype}: "
            f"deviates {error:.2e} from the float64 reference "
            f"(tolerance {CHECK_TOLERANCE[workload.dtype]:.0e}); not timing a wrong result"
        )
    return workload


def run_side_by_side(workloads: list[Workload], min_time: float) -> list[Result]:
    """Time checked workloads in interleaved rounds (see :func:`measure_side_by_side`)."""
    rounds = 3 if workloads and workloads[0].kind == "epoch" else 7
    times = measure_side_by_side([w.run for w in workloads], min_time=min_time, rounds=rounds)
    return [
        Result(
            w.implementation,
            w.arch.name,
            w.kind,
            w.dtype,
            seconds,
            seconds / w.steps,
            w.samples / seconds,
            w.flops / seconds / 1e9,
            w.info["deviation"],
            w.info,
        )
        for w, seconds in zip(workloads, times, strict=True)
    ]


def step_gemm_gflops(arch: Architecture, dtype: str) -> float:
    """GFLOP/s of the BLAS doing just the matrix products of one training step of ``arch``
    (forward, weight gradients, and input gradients but the first layer's)."""
    n = arch.batch
    shapes = []
    for i, (n_in, n_out) in enumerate(zip(arch.sizes[:-1], arch.sizes[1:], strict=True)):
        shapes.append((n, n_in, n_out))  # Z = X @ W.T
        shapes.append((n_out, n, n_in))  # dW = dZ.T @ X
        if i:
            shapes.append((n, n_out, n_in))  # dX = dZ @ W
    flops = sum(2.0 * m * k * p for m, k, p in shapes)
    # A ceiling is the best rate the BLAS reaches: the fastest of three measurements of each
    # shape, so that one slow spell of a shared machine does not lower it (S's once read
    # 54 GFLOP/s, below the 105 its own training step reached in the same run).
    seconds = sum(
        2.0 * m * k * p / (max(gemm_gflops(m, k, p, dtype, min_time=0.1) for _ in range(3)) * 1e9)
        for m, k, p in shapes
    )
    return flops / seconds / 1e9


def default_backends() -> list[str]:
    """Every backend that can run here."""
    return available_backends()
