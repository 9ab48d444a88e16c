"""Training checkpoints: everything ``fit`` needs to continue exactly where it stopped.

A checkpoint is a model file (same format, same checks, checksum included, no pickle)
with more in it: the optimizer's settings, step count and state arrays
(``optimizer.<name>.<k>``, shaped like parameter ``k``), the position in the run (epoch,
batch within the epoch, partial sums, and the key the batch orders are drawn with), the
history so far and a fingerprint of the training data. Written atomically, so a killed
process leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ModelFileError
from .io import FileContents, read_file, write_file
from .optimizers import SGD, Adam, Optimizer
from .position import Position

CHECKPOINT_FORMAT = "fastnn-checkpoint"
_OPTIMIZERS: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam}


@dataclass
class Checkpoint:
    """A checkpoint read back: the file's model contents, optimizer and position."""

    contents: FileContents
    optimizer: Optimizer
    position: Position
    history: dict[str, list[float]]
    data: dict[str, Any]  # the training data's fingerprint (fastnn.fingerprint)


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Optimizer,
    position: Position,
    history: dict[str, list[float]],
    data: dict[str, Any],
) -> None:
    """Write a checkpoint of ``model``, ``optimizer``, the run's ``position`` and
    ``history``, and the fingerprint ``data`` of the data it trains on."""
    to_np = model.backend.to_numpy
    tensors = {}
    state = {}
    for name in optimizer.state_names:
        arrays = getattr(optimizer, name) or []
        state[name] = len(arrays)
        for k, a in enumerate(arrays):
            tensors[f"optimizer.{name}.{k}"] = to_np(a)
    metadata = {
        "optimizer": json.dumps(
            {
                "class": type(optimizer).__name__,
                "config": optimizer.config(),
                "t": optimizer.t,
                "state": state,
            }
        ),
        "training": json.dumps({"position": asdict(position), "history": history, "data": data}),
    }
    write_file(Path(path), model, CHECKPOINT_FORMAT, tensors, metadata)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and check a checkpoint; raises :class:`~fastnn.ModelFileError` if it is bad."""
    path = Path(path)
    parsed: dict[str, Any] = {}

    def optimizer_tensors(metadata: dict[str, str], shapes: list) -> dict[str, list[int]]:
        parsed.update(_parse(path, metadata))
        tensors = {}
        for name, count in parsed["optimizer"]["state"].items():
            if count not in (0, len(shapes)):
                raise ModelFileError(
                    f"{path}: optimizer state {name!r} has {count} arrays "
                    f"for {len(shapes)} parameters"
                )
            for k in range(count):
                tensors[f"optimizer.{name}.{k}"] = list(shapes[k])
        return tensors

    contents = read_file(path, CHECKPOINT_FORMAT, optimizer_tensors)
    spec = parsed["optimizer"]
    try:
        optimizer = _OPTIMIZERS[spec["class"]](**spec["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: unusable optimizer settings {spec!r:.200} ({exc})") from None
    optimizer.t = spec["t"]
    state = {
        name: [contents.extra[f"optimizer.{name}.{k}"] for k in range(count)]
        for name, count in spec["state"].items()
    }
    optimizer.restore_state(state)
    return Checkpoint(contents, optimizer, parsed["position"], parsed["history"], parsed["data"])


def _parse(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The checkpoint's optimizer and training metadata, type-checked."""
    try:
        spec = json.loads(metadata["optimizer"])
        training = json.loads(metadata["training"])
        position = Position(**training["position"])
        history = training["history"]
        data = training["data"]
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: missing or malformed checkpoint metadata") from None
    ok = (
        isinstance(spec, dict)
        and spec.get("class") in _OPTIMIZERS
        and isinstance(spec.get("config"), dict)
        and isinstance(spec.get("t"), int)
        and isinstance(spec.get("state"), dict)
        and all(isinstance(v, int) and v >= 0 for v in spec["state"].values())
        and set(spec["state"]) <= set(_OPTIMIZERS[spec["class"]].state_names)
        and isinstance(history, dict)
        and all(
            isinstance(v, list) and all(isinstance(x, int | float) for x in v)
            for v in history.values()
        )
        and all(
            isinstance(getattr(position, k), int) and getattr(position, k) >= 0
            for k in (
                "epochs",
                "epoch",
                "batch",
                "first_epoch",
                "batch_size",
                "partial_units",
            )
        )
        and position.epoch <= position.epochs
        and position.batch_size >= 1
        and all(
            isinstance(getattr(position, k), int | float) and math.isfinite(getattr(position, k))
            for k in ("partial_loss", "partial_correct")
        )
        and isinstance(position.shuffle, bool)
        and isinstance(position.key, list)
        and len(position.key) == 2
        and all(isinstance(k, int) and 0 <= k < 1 << 64 for k in position.key)
        and isinstance(data, dict)
        and all(
            isinstance(data.get(name), dict)
            and isinstance(data[name].get("shape"), list)
            and isinstance(data[name].get("dtype"), str)
            and isinstance(data[name].get("sha256"), str)
            for name in ("X", "y")
        )
    )
    if not ok:
        raise ModelFileError(f"{path}: malformed checkpoint metadata")
    return {"optimizer": spec, "position": position, "history": history, "data": data}
