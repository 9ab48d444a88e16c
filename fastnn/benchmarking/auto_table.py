"""``fastnn bench --auto-table FILE``: the table ``backend="auto"`` picks from.

Each cell times one training step (forward, backward, SGD update) of every backend side
by side, for a network of the grid at a batch size of the grid, after checking the step
against the float64 reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import machine
from .suite import checked
from .timer import measure_side_by_side
from .workloads import Architecture, fastnn_train_step

#: networks from 25k to 5.8M weights (MNIST-shaped, relu, softmax) and batch sizes
NETWORKS = ((784, 32, 10), (784, 128, 10), (784, 512, 256, 10), (784, 2048, 2048, 10))
BATCHES = (16, 64, 256, 1024)


def measure_table(
    backends: list[str],
    dtype: str = "float32",
    networks: tuple[tuple[int, ...], ...] = NETWORKS,
    batches: tuple[int, ...] = BATCHES,
    min_time: float = 0.3,
    log: Any = sys.stderr,
) -> dict[str, Any]:
    """Training-step samples/s of each backend in every (network, batch) cell."""
    rows = []
    for sizes in networks:
        for batch in batches:
            arch = Architecture(
                "-".join(map(str, sizes)), sizes, "relu", "softmax", "cross_entropy", batch, batch
            )
            work = [checked(fastnn_train_step(arch, name, dtype)) for name in backends]
            seconds = measure_side_by_side([w.run for w in work], min_time=min_time, rounds=5)
            rates = {w.implementation[7:-1]: batch / s for w, s in zip(work, seconds, strict=True)}
            parameters = arch.weights + sum(sizes[1:])  # and the biases
            rows.append(
                {"parameters": parameters, "batch": batch, "dtype": dtype, "samples_per_s": rates}
            )
            print(
                f"  {arch.name:22s} batch {batch:5d}: "
                + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()),
                file=log,
            )
    return {"machine": machine.describe(), "rows": rows}


def write_table(table: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
