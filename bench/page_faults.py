"""Page faults and allocations per training step, NumPy backend against Numba backend.

    python bench/page_faults.py

Every large temporary NumPy allocates is fresh memory from the operating system, and
touching it costs page faults; the Numba backend's workspaces are touched once.
"""

from __future__ import annotations

import resource

import fastnn
from fastnn.benchmarking.workloads import ARCHITECTURES, fastnn_train_step


def faults_per_step(backend: str, arch: str, steps: int = 50) -> float:
    workload = fastnn_train_step(ARCHITECTURES[arch], backend, "float32")
    for _ in range(5):
        workload.run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        workload.run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def main() -> None:
    for arch in ("S", "M", "L"):
        row = ", ".join(
            f"{b} {faults_per_step(b, arch, 50 if arch != 'L' else 5):7.1f}"
            for b in fastnn.available_backends()
        )
        print(f"{arch}: minor page faults per training step: {row}")


if __name__ == "__main__":
    main()
