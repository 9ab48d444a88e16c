"""Data-parallel overhead: 1 rank x 2 BLAS threads against 2 ranks x 1 thread (mpiexec).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fastnn bench --distributed

For M and L (float32, SGD, ``fit`` over each architecture's epoch of synthetic data) it
prints samples/s of both, the scaling efficiency (2-rank throughput / 1-rank throughput:
both use the machine's 2 cores) and the share of a 2-rank run the update spends waiting
for the gradients' allreduce, with each layer's allreduce started during the backward
pass (overlap) and with one allreduce after it. On 2 cores this measures what data
parallelism costs, not a speedup.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

EPOCHS = 3


def worker(arch_name: str, backend: str, overlap: str) -> None:
    """One rank (or the single process): time ``fit`` and the allreduce inside it."""
    import fastnn.distributed

    fastnn.distributed.OVERLAP = overlap == "overlap"
    from fastnn.benchmarking.workloads import ARCHITECTURES, data, reference_model

    arch = ARCHITECTURES[arch_name]
    X, y = data(arch, arch.epoch_samples)
    X = X.astype("float32")
    model = reference_model(arch, "float32", backend)
    spent = [0.0]
    hook = fastnn.distributed.AllreduceGradients
    wait = hook.after_backward

    def timed(self, run):  # the time the update waits for the gradients
        start = time.perf_counter()
        wait(self, run)
        spent[0] += time.perf_counter() - start

    hook.after_backward = timed  # type: ignore[method-assign]  # this worker only
    fit = dict(batch_size=arch.batch, optimizer="sgd", lr=0.01, progress=False, distributed=True)
    model.fit(X, y, epochs=1, **fit)  # warm-up: kernels compiled, buffers allocated
    spent[0] = 0.0
    start = time.perf_counter()
    model.fit(X, y, epochs=EPOCHS, **fit)
    seconds = time.perf_counter() - start
    rank = int(os.environ.get("PMI_RANK", "0"))
    if rank == 0:
        print(
            json.dumps(
                {"samples_per_s": EPOCHS * len(X) / seconds, "allreduce": spent[0] / seconds}
            )
        )


def run(command: list[str], threads: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(arch: str, backend: str = "numba", ranks: int = 2) -> dict:
    """samples/s of one process with ``ranks`` BLAS threads and of ``ranks`` ranks with
    one each, the efficiency (their ratio), and the share of the distributed run spent
    waiting for the gradients, with per-layer (overlapped) and one flat allreduce."""
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise RuntimeError("no mpiexec: pip install 'fastnn[mpi]'")
    me = [sys.executable, "-m", "fastnn.benchmarking.distributed", "--worker"]
    one = run([*me, arch, backend, "overlap"], threads=ranks)
    many = run([mpiexec, "-n", str(ranks), *me, arch, backend, "overlap"], threads=1)
    flat = run([mpiexec, "-n", str(ranks), *me, arch, backend, "flat"], threads=1)
    return {
        "arch": arch,
        "backend": backend,
        "ranks": ranks,
        "one_process": one["samples_per_s"],
        "distributed": many["samples_per_s"],
        "efficiency": many["samples_per_s"] / one["samples_per_s"],
        "waiting": many["allreduce"],
        "flat": flat["samples_per_s"],
        "flat_waiting": flat["allreduce"],
    }


def format_table(rows: list[dict]) -> str:
    heads = ("1 x 2 threads", "2 ranks x 1", "efficiency", "waiting", "no overlap", "waiting")
    lines = [f"{'arch':5s} " + " ".join(f"{h:>13s}" for h in heads)]
    for r in rows:
        lines.append(
            f"{r['arch']:5s} {r['one_process']:13,.0f} {r['distributed']:13,.0f} "
            f"{r['efficiency']:13.2f} {100 * r['waiting']:12.1f}% {r['flat']:13,.0f} "
            f"{100 * r['flat_waiting']:12.1f}%"
        )
    lines.append(
        "(samples/s; both configurations use 2 cores: this is the overhead of data "
        "parallelism, not a speedup)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("ARCH", "BACKEND", "OVERLAP"))
    args = parser.parse_args()
    worker(*args.worker)


if __name__ == "__main__":
    main()
