"""``backend="auto"``: pick the backend that trained fastest in a measured table.

The table holds training-step rates (samples/s) of each backend for a few networks
(number of parameters) and batch sizes. A model is placed on the fastest available backend
at the measured cell nearest to its own (in log parameters and log batch size). fastnn ships
a table measured on a 2-core CPU (``auto_table.json``); ``fastnn bench --auto-table FILE``
measures this machine's, and ``$FASTNN_AUTO_TABLE`` makes fastnn use it. A backend the
table has no rates for (cupy, in the shipped table) is never picked: a GPU machine's own
table is what can say when its GPU pays.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTO = "auto"
DEFAULT_TABLE = Path(__file__).with_name("auto_table.json")
TABLE_VARIABLE = "FASTNN_AUTO_TABLE"


@dataclass(frozen=True)
class Auto:
    """``backend="auto"`` for a model trained with batches of ``batch_size`` rows (fit's
    default 32 unless told)."""

    batch_size: int = 32


@dataclass(frozen=True)
class Choice:
    """The backend picked, and why (a sentence for ``model.backend_choice``)."""

    name: str
    reason: str


def table_path() -> Path:
    """``$FASTNN_AUTO_TABLE`` if set, else the table shipped with fastnn."""
    return Path(os.environ.get(TABLE_VARIABLE) or DEFAULT_TABLE)


def load_table(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The measured table: ``{"machine": ..., "rows": [{"parameters", "batch", "dtype",
    "samples_per_s": {backend: rate}}]}``."""
    path = table_path() if path is None else Path(path)
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"backend='auto' cannot read its table {path}: {exc}") from None
    rows = table.get("rows") if isinstance(table, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"backend='auto': {path} has no measured rows")
    table["path"] = str(path)
    return table


def _distance(row: dict[str, Any], parameters: int, batch: int) -> float:
    return math.hypot(
        math.log(max(parameters, 1) / row["parameters"]), math.log(max(batch, 1) / row["batch"])
    )


def choose(
    parameters: int,
    batch: int,
    dtype: str,
    available: list[str],
    table: dict[str, Any] | None = None,
) -> Choice:
    """The fastest of ``available`` backends for a network of ``parameters`` parameters trained
    in batches of ``batch`` rows of ``dtype``, from ``table`` (default :func:`load_table`)."""
    if not available:
        raise ValueError("backend='auto': no backend can run here")
    table = load_table() if table is None else table
    rows = [r for r in table["rows"] if r.get("dtype") == dtype] or table["rows"]
    rows = [r for r in rows if set(r["samples_per_s"]) & set(available)]
    if len(available) == 1:
        return Choice(available[0], f"auto: {available[0]}, the only backend available here")
    if not rows:  # nothing measured: the reference backend
        name = "numpy" if "numpy" in available else available[0]
        return Choice(name, f"auto: {name}, as {table['path']} measured none of {available}")
    nearest = min(rows, key=lambda r: _distance(r, parameters, batch))
    rates = {name: rate for name, rate in nearest["samples_per_s"].items() if name in available}
    best = max(rates, key=rates.__getitem__)
    versus = ", ".join(
        f"{rates[best] / rate:.2f}x {name}" for name, rate in sorted(rates.items()) if name != best
    )
    unmeasured = sorted(set(available) - set(rates))
    reason = (
        f"auto: {best}, the fastest training step ({versus}) measured for "
        f"{nearest['parameters']:,} parameters at batch {nearest['batch']} "
        f"{nearest.get('dtype', '')}, the cell nearest to {parameters:,} parameters at batch "
        f"{batch} in {table['path']}"
    )
    if unmeasured:
        reason += f"; not measured there: {', '.join(unmeasured)}"
    return Choice(best, reason)
