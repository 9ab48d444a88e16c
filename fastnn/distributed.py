"""Data-parallel training over MPI (mpi4py): synchronous SGD, as Horovod and PyTorch DDP.

Every rank holds the whole model and is given the same, full ``X`` and ``y``. Each global
batch (the batch a single process would take) is split by rows: rank ``r`` of ``N`` takes
positions ``[len r / N, len (r + 1) / N)`` of it, so the shards together are the batch. Each
rank's gradient is the mean over its rows; scaled by its share of the rows and summed over
the ranks (one allreduce of one flat buffer per step) it is the mean over the global batch,
and every rank applies the same update, so the weights stay identical. Dropout masks are
drawn per sample index, so a sample's mask does not depend on the rank that holds it.
BatchNorm uses each rank's own batch statistics (as DDP does).

Launch with ``mpiexec -n 4 python train.py``; ``pip install "fastnn[mpi]"`` brings mpi4py
and MPICH's ``mpiexec``. A single-process ``fit`` never imports mpi4py.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .hooks import Hook

INSTALL_HINT = "pip install 'fastnn[mpi]' (mpi4py and an MPI, such as MPICH's wheel)"


class Communicator:
    """The ranks of ``MPI.COMM_WORLD``: this process's ``rank`` among ``size``."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(
                f"distributed=True needs mpi4py ({exc}); install it with: {INSTALL_HINT}"
            ) from exc
        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def shard(self, s: slice) -> slice:
        """This rank's part of the positions ``s`` of a batch (sizes differ by one at most)."""
        n = s.stop - s.start
        return slice(
            s.start + n * self.rank // self.size, s.start + n * (self.rank + 1) // self.size
        )

    def allreduce_sum(self, buffer: np.ndarray) -> None:
        """In place: every rank's ``buffer`` becomes the sum of all ranks' buffers."""
        self._comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def sum_over_ranks(self, backend: Any, *arrays: Any) -> list:
        """Each backend array summed over the ranks (through one host buffer)."""
        host = [np.asarray(backend.to_numpy(a), dtype="float64").reshape(-1) for a in arrays]
        buffer = np.concatenate(host)
        self.allreduce_sum(buffer)
        out, start = [], 0
        for a, h in zip(arrays, host, strict=True):
            out.append(backend.asarray(buffer[start : start + h.size].reshape(a.shape), a.dtype))
            start += h.size
        return out

    def reduce_epoch(self, ok: Any, sums: Any, counts: Any, units: int) -> tuple:
        """Collective, once per pass: whether every rank's batches were all finite, and
        the per-batch loss sums, correct counts and the units counted, over all ranks."""
        k = len(sums)
        buffer = np.concatenate([np.asarray(ok, "float64"), sums, counts, [units]]).astype(
            "float64"
        )
        self.allreduce_sum(buffer)
        return buffer[:k] == self.size, buffer[k : 2 * k], buffer[2 * k : 3 * k], int(buffer[-1])

    def allgather(self, value: Any) -> list:
        """Every rank's ``value`` (plain Python values), in rank order."""
        return self._comm.allgather(value)

    def agree(self, error: BaseException | None) -> None:
        """Collective: raise on every rank if any rank had an error, so none waits alone
        in the training loop. A rank raises its own error; the others say whose it was."""
        errors = self.allgather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        for rank, message in enumerate(errors):
            if message is not None:
                raise RuntimeError(f"rank {rank} of {self.size} stopped before training: {message}")


def use_local_gpu(comm: Communicator) -> int:
    """Make this rank's GPU CuPy's current device: the rank's index among the ranks of
    its machine, modulo the GPUs there. Call it before creating a cupy model; returns the
    device id. (Written for one GPU per rank; only ever run with one GPU.)"""
    import cupy

    local = comm._comm.Split_type(comm._mpi.COMM_TYPE_SHARED).Get_rank()
    device = local % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(device).use()
    return device


def world(distributed: bool) -> Communicator | None:
    """The communicator of a distributed ``fit``, or None for an ordinary one."""
    return Communicator() if distributed else None


#: start each layer's allreduce as soon as its backward is done (False: one allreduce
#: of everything after the backward pass; `fastnn bench --distributed` compares the two)
OVERLAP = True


def nccl_for(comm: Communicator, backend: Any) -> Any:
    """Collective: an NCCL communicator over the ranks' GPUs, or None where any rank
    lacks one (not the cupy backend, no NCCL in CuPy, or two ranks on one GPU). The
    unique id goes from rank 0 to the others over MPI. (Written for GPU ranks; never
    run with more than one GPU.)"""
    nccl: Any = None
    where = None
    if backend.name == "cupy":
        try:
            nccl = importlib.import_module("cupy.cuda.nccl")
        except ImportError:
            nccl = None
        if nccl is not None and getattr(nccl, "available", True):
            import socket

            import cupy

            where = (socket.gethostname(), cupy.cuda.Device().id)
    places = comm.allgather(where)
    if None in places or len(set(places)) < len(places):
        return None
    uid = comm._comm.bcast(nccl.get_unique_id() if comm.rank == 0 else None, root=0)
    return nccl.NcclCommunicator(comm.size, uid, comm.rank)


class AllreduceGradients(Hook):
    """Sums every gradient, scaled by this rank's share of the batch rows, over the ranks.

    The gradients live in one flat, pre-allocated buffer, a slice per layer: on the GPU
    with NCCL where every rank has a GPU of its own and CuPy has NCCL, else on the host
    with MPI. With
    :data:`OVERLAP`, a layer's slice is filled and its non-blocking allreduce started as
    soon as the backward pass has produced it (last layer first, as DDP's buckets), and
    the update waits for all of them; otherwise one allreduce of the whole buffer follows
    the backward pass. A last one-element allreduce carries each rank's Ctrl-C, so every
    rank stops after the same batch."""

    def __init__(self, comm: Communicator, overlap: bool | None = None) -> None:
        self.comm = comm
        self.overlap = OVERLAP if overlap is None else overlap
        self.buffer: Any = None
        self.slices: list[slice] = []  # each layer's part of the buffer
        self.requests: dict[int, Any] = {}
        self.flag = np.zeros(1)
        self.nccl: Any = None  # GPU ranks: the gradients stay on the device
        self.nccl_checked = False

    def _prepare(self, run: Any) -> None:
        backend = run.model.backend
        if not self.nccl_checked:  # collective, once, at the first step
            self.nccl, self.nccl_checked = nccl_for(self.comm, backend), True
        dtype = run.model.parameters()[0].dtype
        if self.buffer is None or self.buffer.dtype != dtype:
            total = sum(p.size for p in run.model.parameters())
            self.buffer = backend.zeros((total,), dtype) if self.nccl else np.empty(total, dtype)
            start = 0
            self.slices = []
            for layer in run.model.layers:
                size = sum(p.size for p in layer.parameters().values())
                self.slices.append(slice(start, start + size))
                start += size

    def _send(self, run: Any, layer: int) -> None:
        """Fill layer ``layer``'s slice with its scaled gradients and start its allreduce:
        NCCL on the device's stream, or MPI on a host buffer."""
        backend = run.model.backend
        n_local, n_global = run.batch_rows
        part = self.buffer[self.slices[layer]]
        start = 0
        for g in run.model.layers[layer].gradients().values():
            flat = g.reshape(-1) if self.nccl else backend.to_numpy(g).reshape(-1)
            part[start : start + g.size] = flat
            start += g.size
        part *= n_local / n_global
        if not part.size:
            return
        if self.nccl:
            from cupy.cuda import nccl

            kind = nccl.NCCL_FLOAT32 if part.dtype.itemsize == 4 else nccl.NCCL_FLOAT64
            stream = backend.xp.cuda.get_current_stream().ptr
            ptr = part.data.ptr
            self.nccl.allReduce(ptr, ptr, part.size, kind, nccl.NCCL_SUM, stream)
            self.requests[layer] = None  # ordered on the stream: nothing to wait for
        else:
            mpi = self.comm._mpi
            self.requests[layer] = self.comm._comm.Iallreduce(mpi.IN_PLACE, part, op=mpi.SUM)

    def after_layer_backward(self, run: Any, layer: int) -> None:
        if self.overlap:
            self._prepare(run)
            self._send(run, layer)

    def after_backward(self, run: Any) -> None:
        self._prepare(run)
        # Collectives start in the same order on every rank: the backward's, last layer
        # first (here too where nothing overlapped, or this rank had no rows).
        for layer in reversed(range(len(run.model.layers))):
            if layer not in self.requests:
                self._send(run, layer)
        self.comm._mpi.Request.Waitall([r for r in self.requests.values() if r is not None])
        self.requests.clear()
        self.flag[0] = 1 if run.interrupted else 0
        self.comm.allreduce_sum(self.flag)
        backend = run.model.backend
        for layer, where in zip(run.model.layers, self.slices, strict=True):
            part, start = self.buffer[where], 0
            for g in layer.gradients().values():
                g[...] = backend.asarray(part[start : start + g.size].reshape(g.shape))
                start += g.size
        if self.flag[0] > 0:
            run.interrupt()
