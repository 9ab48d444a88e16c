"""The benchmark networks, their data, and fastnn's workloads on them.

Every workload starts from the same initial weights (fastnn's seeded initialization)
on the same synthetic data, so its first training step can be checked against the NumPy
float64 reference before it is timed.

FLOP counts (multiply-add = 2 flops; elementwise work is not counted):

* inference: ``2 * W * n`` with ``W`` the number of weights (biases ignored);
* training step: forward ``2 W n``, weight gradients ``2 W n``, input gradients
  ``2 (W - W_1) n``: the first layer's input gradient is not needed and neither fastnn
  nor PyTorch computes it, so it is not counted. That is ``(6 W - 2 W_1) n``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastnn
from fastnn.optimizers import make_optimizer

LR = 0.01


@dataclass(frozen=True)
class Architecture:
    """A benchmark network: layer sizes, activations, loss and batch size."""

    name: str
    sizes: tuple[int, ...]
    activation: str
    output: str
    loss: str
    batch: int
    epoch_samples: int
    dropout: float = 0.0
    batch_norm: bool = False

    @property
    def weights(self) -> int:
        return sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    @property
    def first_layer_weights(self) -> int:
        return self.sizes[0] * self.sizes[1]

    def train_flops(self, n: int) -> float:
        return float((6 * self.weights - 2 * self.first_layer_weights) * n)

    def infer_flops(self, n: int) -> float:
        return float(2 * self.weights * n)

    def describe(self) -> str:
        return "-".join(map(str, self.sizes))

    @property
    def epochs_per_call(self) -> int:
        """Epochs one "epoch" benchmark call runs: enough for 256 samples, so a tiny data
        set (the lecture's 2 samples) is timed over many training iterations."""
        return max(1, 256 // self.epoch_samples)

    @property
    def check_batch(self) -> int:
        """Rows of the one-step correctness check (the float64 reference runs on the CPU)."""
        return min(self.batch, 1024)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.epoch_samples // self.batch)


ARCHITECTURES = {
    "S": Architecture("S", (784, 128, 10), "relu", "softmax", "cross_entropy", 128, 8192),
    "M": Architecture("M", (784, 512, 256, 10), "relu", "softmax", "cross_entropy", 256, 8192),
    "L": Architecture("L", (784, 2048, 2048, 10), "relu", "softmax", "cross_entropy", 1024, 4096),
    # M with BatchNorm and Dropout(0.2) after each hidden layer: what those layers cost
    "M-bn-dropout": Architecture(
        "M-bn-dropout",
        (784, 512, 256, 10),
        "relu",
        "softmax",
        "cross_entropy",
        256,
        8192,
        dropout=0.2,
        batch_norm=True,
    ),
    "lecture": Architecture("lecture", (2, 5, 1), "sigmoid", "sigmoid", "mse", 2, 2),
    # for GPUs only: about 1.8 TFLOP per training step
    "XL": Architecture(
        "XL", (784, 4096, 4096, 4096, 10), "relu", "softmax", "cross_entropy", 8192, 65536
    ),
}
#: what ``fastnn bench`` and ``pytest bench/`` run by default on a CPU
CPU_ARCHITECTURES = ("S", "M", "M-bn-dropout", "L", "lecture")


def data(arch: Architecture, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic inputs in [0, 1) of the architecture's width, and targets for its loss."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, arch.sizes[0]))
    if arch.loss == "cross_entropy":
        return X, rng.integers(0, arch.sizes[-1], size=n)
    return X, rng.random(n)


def reference_model(arch: Architecture, dtype: str = "float64", backend: str = "numpy"):
    """The architecture as a fastnn model with the benchmark's seed."""
    return fastnn.MLP(
        list(arch.sizes),
        activation=arch.activation,
        output=arch.output,
        loss=arch.loss,
        backend=backend,
        dtype=dtype,
        seed=0,
        dropout=arch.dropout,
        batch_norm=arch.batch_norm,
    )


def one_step(arch: Architecture, dtype: str = "float64", backend: str = "numpy") -> list:
    """Weights ``[W1, b1, ...]`` (host arrays) after one SGD step on the first batch."""
    model = reference_model(arch, dtype, backend)
    X, y = data(arch, arch.check_batch)
    model.fit(
        X,
        y,
        epochs=1,
        batch_size=arch.check_batch,
        optimizer="sgd",
        lr=LR,
        shuffle=False,
        progress=False,
    )
    return [a for pair in model.get_weights() for a in pair]


def reference_step(arch: Architecture) -> list[np.ndarray]:
    """:func:`one_step` in float64 on NumPy: read-only arrays, computed once per
    architecture (for XL that step is about 226 GFLOP on a CPU)."""
    return list(_reference_step(arch))


@functools.cache
def _reference_step(arch: Architecture) -> tuple[np.ndarray, ...]:
    weights = one_step(arch)
    for a in weights:
        a.flags.writeable = False
    return tuple(weights)


def deviation(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Largest ``max|got - want| / scale`` over the tensors, ``scale`` being the tensor's
    ``max|want|``, or 1e-4 of the largest tensor's where that is smaller: a tensor
    that is 0 in exact arithmetic (the bias before a BatchNorm, whose gradient vanishes)
    holds only rounding, which no scale of its own can measure. Tensors within a factor
    10,000 of the largest (every tensor of S, M, L and the lecture net) are measured as
    before."""
    floor = 1e-4 * max(float(np.max(np.abs(w))) for w in want)
    return max(
        float(np.max(np.abs(np.asarray(g, dtype=np.float64) - w)))
        / max(float(np.max(np.abs(w))), floor, 1e-30)
        for g, w in zip(got, want, strict=True)
    )


#: largest acceptable ``deviation`` from the float64 reference after one step
CHECK_TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


@dataclass
class Workload:
    """A timed callable with what it computes.

    ``run`` does ``samples`` samples of work worth ``flops``; ``check`` returns the
    deviation of one training step from the float64 reference (None when the
    workload has no step to check).
    """

    implementation: str
    arch: Architecture
    kind: str  # "train_step", "epoch", "infer_batch1", "infer_large", "update_<optimizer>"
    dtype: str
    samples: int
    flops: float
    run: Callable[[], Any]
    check: Callable[[], float | None] = lambda: None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def train_step(
        cls,
        implementation: str,
        arch: Architecture,
        dtype: str,
        run: Callable[[], Any],
        check: Callable[[], float | None],
        info: dict[str, Any],
    ) -> Workload:
        """``run`` is one training step on a batch of ``arch.batch`` samples."""
        flops = arch.train_flops(arch.batch)
        return cls(implementation, arch, "train_step", dtype, arch.batch, flops, run, check, info)

    @classmethod
    def epochs(
        cls,
        implementation: str,
        arch: Architecture,
        dtype: str,
        run: Callable[[], Any],
        check: Callable[[], float | None],
        info: dict[str, Any],
    ) -> Workload:
        """``run`` trains ``arch.epochs_per_call`` epochs of ``arch.epoch_samples`` samples."""
        samples = arch.epoch_samples * arch.epochs_per_call
        return cls(
            implementation,
            arch,
            "epoch",
            dtype,
            samples,
            arch.train_flops(samples),
            run,
            check,
            info,
        )

    @property
    def steps(self) -> int:
        """Training steps (SGD updates) per call; 1 for inference."""
        if self.kind == "epoch":
            return -(-self.samples // self.arch.epoch_samples) * self.arch.steps_per_epoch
        return 1


def fastnn_train_step(arch: Architecture, backend: str, dtype: str) -> Workload:
    """One forward, backward and SGD update on a fixed batch."""
    model = reference_model(arch, dtype, backend)
    X, y = data(arch, arch.batch)
    b = model.backend
    Xd = b.asarray(X, dtype=dtype)
    Td = model._targets_to_backend(y if arch.loss == "cross_entropy" else y.reshape(-1, 1))
    opt = fastnn.SGD(lr=LR)

    def step() -> None:
        model.train_batch(Xd, Td)
        opt.step(model)
        b.synchronize()  # a GPU step is timed to its end

    return Workload.train_step(
        f"fastnn[{backend}]",
        arch,
        dtype,
        step,
        _step_check(arch, backend, dtype),
        {"backend": backend},
    )


def _step_check(arch: Architecture, backend: str, dtype: str) -> Callable[[], float]:
    def check() -> float:
        return deviation(one_step(arch, dtype, backend), reference_step(arch))

    return check


def fastnn_epoch(arch: Architecture, backend: str, dtype: str) -> Workload:
    """``model.fit`` over ``arch.epoch_samples`` samples, as a user calls it, for
    ``arch.epochs_per_call`` epochs."""
    model = reference_model(arch, dtype, backend)
    X, y = data(arch, arch.epoch_samples)
    X = X.astype(dtype)
    epochs = arch.epochs_per_call

    def epoch() -> None:
        model.fit(
            X, y, epochs=epochs, batch_size=arch.batch, optimizer="sgd", lr=LR, progress=False
        )

    return Workload.epochs(
        f"fastnn[{backend}]",
        arch,
        dtype,
        epoch,
        _step_check(arch, backend, dtype),
        {"backend": backend},
    )


def fastnn_inference(arch: Architecture, backend: str, dtype: str, batch: int) -> Workload:
    """``model.predict_proba`` (or ``predict`` for regressors) on ``batch`` samples."""
    model = reference_model(arch, dtype, backend)
    X, _ = data(arch, batch)
    X = X.astype(dtype)
    predict = model.predict_proba if model.is_classifier else model.predict
    reference = reference_model(arch)

    def check() -> float:
        return deviation(
            [predict(X)],
            [
                np.asarray(
                    reference.predict_proba(X) if reference.is_classifier else reference.predict(X)
                )
            ],
        )

    kind = "infer_batch1" if batch == 1 else "infer_large"
    return Workload(
        f"fastnn[{backend}]",
        arch,
        kind,
        dtype,
        batch,
        arch.infer_flops(batch),
        lambda: predict(X),
        check,
        {"backend": backend},
    )


#: optimizers timed alone (``update_<name>`` rows): the update is memory-bound, one pass
#: over the parameters and the optimizer's state
UPDATE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def _updated(model: Any, optimizer: str, steps: int) -> list:
    """Host copies of ``model``'s parameters after ``steps`` updates with the gradients it
    holds (kept fixed)."""
    opt = make_optimizer(optimizer, lr=LR)
    for _ in range(steps):
        opt.step(model)
    return [model.backend.to_numpy(p).copy() for p in model.parameters()]


def _float64_twin(model: Any, arch: Architecture) -> Any:
    """A NumPy float64 model holding ``model``'s parameters and gradients, widened."""
    twin = reference_model(arch)
    to_np = model.backend.to_numpy
    for ours, theirs in zip(model.layers, twin.layers, strict=True):
        for name, param in ours.parameters().items():
            getattr(theirs, name)[...] = to_np(param)
            setattr(theirs, "d" + name, np.asarray(to_np(getattr(ours, "d" + name)), np.float64))
    return twin


def _batch_on(model: Any, arch: Architecture, X: np.ndarray, y: np.ndarray) -> tuple:
    targets = y if arch.loss == "cross_entropy" else y.reshape(-1, 1)
    return model.backend.asarray(X, dtype=model.dtype), model._targets_to_backend(targets)


def fastnn_update(arch: Architecture, backend: str, dtype: str, optimizer: str) -> Workload:
    """One optimizer step over every parameter, the gradients of one batch held fixed:
    the update alone, as ``fastnn[<backend>]`` rows of kind ``update_<optimizer>``
    (its samples are the batch a step trains on, so samples/s compares with the step's)."""
    model = reference_model(arch, dtype, backend)
    X, y = data(arch, arch.batch)
    model.train_batch(*_batch_on(model, arch, X, y))
    opt = make_optimizer(optimizer, lr=LR)

    def step() -> None:
        opt.step(model)
        model.backend.synchronize()

    def check() -> float:
        # The update's own arithmetic against float64 from the same gradients: gradients
        # of a float32 pass differ from float64 ones in their last bits, which Adam turns
        # into full steps where a gradient is near 0. Three steps, so momentum and Adam's
        # moments are exercised past their first value.
        probe = reference_model(arch, dtype, backend)
        probe.train_batch(*_batch_on(probe, arch, *data(arch, arch.check_batch)))
        want = _updated(_float64_twin(probe, arch), optimizer, 3)
        return deviation(_updated(probe, optimizer, 3), want)

    return Workload(
        f"fastnn[{backend}]",
        arch,
        f"update_{optimizer}",
        dtype,
        arch.batch,
        0.0,
        step,
        check,
        {"backend": backend, "parameters": sum(a.size for a in model.parameters())},
    )
