"""Where a training run is: what a checkpoint must hold to continue it exactly."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Position:
    """Where a training run is: enough to draw the same batches from here on.

    The run's epoch ``e`` is the model's epoch ``first_epoch + e``, whose batch order is a
    function of ``key`` and that number alone (:func:`fastnn.random.epoch_orders`), so no
    generator state needs saving.
    """

    epochs: int  # the run's total
    epoch: int  # epochs completed
    key: list[int] = field(default_factory=lambda: [0, 0])  # the model's batch-order key
    first_epoch: int = 0  # epochs the model had trained before this run
    batch: int = 0  # batches completed in the epoch under way (0: at an epoch boundary)
    partial_loss: float = 0.0  # that epoch's loss sum (weighted by batch size) so far
    partial_correct: float = 0.0
    partial_units: int = 0
    batch_size: int = 32
    shuffle: bool = True
