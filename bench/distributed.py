"""Data-parallel overhead: 1 rank x 2 BLAS threads against 2 ranks x 1 thread (mpiexec).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/distributed.py

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

    hook.after_backward = timed
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("ARCH", "BACKEND", "OVERLAP"))
    parser.add_argument("--arch", nargs="+", default=["M", "L"])
    parser.add_argument("--backend", default="numba")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    me = [sys.executable, __file__, "--worker"]
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("no mpiexec: pip install 'fastnn[mpi]'")
    heads = ("1 x 2 threads", "2 ranks x 1", "efficiency", "waiting", "no overlap", "waiting")
    print(f"{'arch':5s} " + " ".join(f"{h:>13s}" for h in heads))
    for arch in args.arch:
        one = run([*me, arch, args.backend, "overlap"], threads=2)
        two = run([mpiexec, "-n", "2", *me, arch, args.backend, "overlap"], threads=1)
        flat = run([mpiexec, "-n", "2", *me, arch, args.backend, "flat"], threads=1)
        print(
            f"{arch:5s} {one['samples_per_s']:13,.0f} {two['samples_per_s']:13,.0f} "
            f"{two['samples_per_s'] / one['samples_per_s']:13.2f} "
            f"{100 * two['allreduce']:12.1f}% {flat['samples_per_s']:13,.0f} "
            f"{100 * flat['allreduce']:12.1f}%"
        )


if __name__ == "__main__":
    main()
