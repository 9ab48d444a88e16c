"""Hooks: what the epoch loop does besides training, at fixed points of a run.

The loop (:mod:`fastnn.training`) calls each hook of the run, in order:

* ``after_layer_backward(run, layer)``: as soon as the backward pass has set the
  gradients of the layer at position ``layer`` (last layer first), so their allreduce can
  overlap with the rest of the backward;
* ``after_backward(run)``: after every batch's backward pass, before the update (the
  gradients are ``run.model.parameter_gradients()``; data-parallel training averages them
  over processes here);
* ``on_epochs_end(run, count)``: after ``count`` more epochs are recorded in
  ``run.history`` (1, or a fused many-epoch call's count), validation included;
* ``on_interrupt(run)``: Ctrl-C stopped the run after its last complete batch;
* ``on_run_end(run)``: the run reached its end (not after an error or an interrupt);
* ``close(run)``: always, last.

``run`` is the loop's state: ``model``, ``optimizer``, ``position`` (epoch and batch),
``history``, ``epochs`` (the run's total) and ``stop()``, which ends the run after the
current epoch. ``fit(hooks=[...])`` adds your own after the built-in ones below.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any


class Hook:
    """Base class: every method does nothing; override the ones you need."""

    def after_layer_backward(self, run: Any, layer: int) -> None:
        """Each batch: the layer at position ``layer`` has its gradients."""

    def after_backward(self, run: Any) -> None:
        """Each batch: the gradients are computed, the update is next."""

    def on_epochs_end(self, run: Any, count: int) -> None:
        """``count`` more epochs are in ``run.history``."""

    def on_interrupt(self, run: Any) -> None:
        """Ctrl-C: the run stops after its last complete batch."""

    def on_run_end(self, run: Any) -> None:
        """The run completed its epochs (or stopped early by ``run.stop()``)."""

    def close(self, run: Any) -> None:
        """Always called last, however the run ended."""


def wants_every_batch(hook: Hook) -> bool:
    """Whether ``hook`` acts between a batch's backward and its update (so the loop may
    not hand whole epochs to a fused backend call)."""
    kind = type(hook)
    return (
        kind.after_backward is not Hook.after_backward
        or kind.after_layer_backward is not Hook.after_layer_backward
    )


class ProgressBar(Hook):
    """A tqdm bar over the run's epochs on standard error, with the latest history."""

    def __init__(self, epochs: int, done: int) -> None:
        from tqdm import tqdm  # imported only when a bar is shown

        self.bar = tqdm(total=epochs, initial=done, unit="epoch", file=sys.stderr, leave=True)

    def on_epochs_end(self, run: Any, count: int) -> None:
        self.bar.update(count)
        latest = {k: f"{v[-1]:.4g}" for k, v in run.history.items() if v}
        self.bar.set_postfix(latest, refresh=False)

    def close(self, run: Any) -> None:
        self.bar.close()


class Checkpoints(Hook):
    """Writes the run to ``path`` every ``every`` epochs, when interrupted and at the end
    (see :mod:`fastnn.checkpoint`)."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every

    def due(self, epoch: int) -> bool:
        """Whether a checkpoint is written after ``epoch`` epochs."""
        return epoch % self.every == 0

    def next_due(self, epoch: int) -> int:
        """The first epoch after ``epoch`` at which a checkpoint is written."""
        return (epoch // self.every + 1) * self.every

    def on_epochs_end(self, run: Any, count: int) -> None:
        if self.due(run.position.epoch):
            run.save(self.path)

    def on_interrupt(self, run: Any) -> None:
        run.save(self.path)

    def on_run_end(self, run: Any) -> None:
        run.save(self.path)


class EarlyStopping(Hook):
    """Stops when ``monitor`` (a history key) has not improved for ``patience`` epochs,
    and puts back the parameters and buffers of the best epoch at the end."""

    def __init__(self, patience: int, monitor: str) -> None:
        self.patience, self.monitor = patience, monitor
        self.best_loss, self.best_epoch = math.inf, 0
        self.best_state: list | None = None

    def on_epochs_end(self, run: Any, count: int) -> None:
        loss = run.history[self.monitor][-1]
        epoch = run.position.epoch
        if loss < self.best_loss:
            copy = run.model.backend.copy
            self.best_state = [copy(a) for a in run.model.state_arrays()]
            self.best_loss, self.best_epoch = loss, epoch
        elif epoch - self.best_epoch >= self.patience:
            run.stop()

    def on_run_end(self, run: Any) -> None:
        if self.best_state is not None and self.best_epoch != len(run.history["loss"]):
            for array, saved in zip(run.model.state_arrays(), self.best_state, strict=True):
                array[...] = saved
