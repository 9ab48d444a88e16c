"""Where an S training step of the Numba backend goes: GEMMs, fused kernels, Python.

Times each part of one step on a fixed batch in isolation (the five matrix products, the
fused kernels, the SGD updates), then the whole step and the epoch per step (``fit`` over
8192 samples), all float32, medians of rounds. What the whole step takes beyond its parts
is Python dispatch. What the epoch takes beyond the step is the epoch loop, built up one
part at a time side by side: the step on each batch of a shuffled epoch gathered into the
reused buffer (``take_rows``), then with the per-batch finiteness flag and correct count,
then ``fit`` itself (its Python per batch, and per call: input checks, the epoch's order,
the snapshot for divergence). Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/profile_step.py [S|M]
"""

from __future__ import annotations

import sys

import numpy as np

import fastnn
from fastnn.benchmarking.timer import measure, measure_side_by_side
from fastnn.benchmarking.workloads import ARCHITECTURES, LR, data, reference_model
from fastnn.kernels import dense, optim
from fastnn.layers import Batch


def median_us(fn, min_time: float = 0.5) -> float:
    """Median microseconds per call (fastnn's benchmark timer: warm-up, 9 rounds)."""
    return 1e6 * measure(fn, min_time=min_time, rounds=9)


def layer_parts(i: int, W, b, H, last: bool, labels) -> dict[str, float]:
    """Each GEMM and kernel of dense layer ``i`` (input ``H``), timed alone."""
    n = H.shape[0]
    Z = np.empty((n, W.shape[0]), np.float32)
    dZ = np.random.default_rng(i).random(Z.shape, dtype=np.float32)
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(H)
    parts = {
        f"GEMM Z{i} = H{i - 1} W{i}^T": median_us(lambda: np.matmul(H, W.T, out=Z)),
        f"GEMM dW{i} = dZ{i}^T H{i - 1}": median_us(lambda: np.matmul(dZ.T, H, out=dW)),
    }
    if i > 1:
        parts[f"GEMM dH{i - 1} = dZ{i} W{i}"] = median_us(lambda: np.matmul(dZ, W, out=dX))
    code = dense.IDENTITY if last else dense.RELU
    parts[f"kernel bias+act {i}"] = median_us(lambda: dense.bias_activation(Z, b, code))
    if last:
        T = labels.astype(np.int64)
        parts["kernel softmax+loss+dZ"] = median_us(
            lambda: dense.softmax_cross_entropy_labels(Z, T, dZ)
        )
        parts[f"kernel db{i} (column sums)"] = median_us(lambda: dense.column_sums(dZ, db))
    else:
        parts[f"kernel act backward+db {i}"] = median_us(
            lambda: dense.activation_backward_bias(dZ, Z, code, dZ, db)
        )
    zero = np.float32(0)
    parts[f"kernel sgd W{i}"] = median_us(
        lambda: optim.sgd(W.reshape(-1), dW.reshape(-1), zero, zero)
    )
    parts[f"kernel sgd b{i}"] = median_us(lambda: optim.sgd(b, db, zero, zero))
    return parts


def main(name: str = "S") -> None:
    arch = ARCHITECTURES[name]
    model = reference_model(arch, "float32", "numba")
    X, y = data(arch, arch.epoch_samples)
    X = X.astype(np.float32)
    n = arch.batch
    Xb, labels = np.ascontiguousarray(X[:n]), y[:n]
    dense_layers = [layer for layer in model.layers if layer.kind == "Dense"]
    parts: dict[str, float] = {}
    H = Xb
    for i, layer in enumerate(dense_layers, start=1):
        last = i == len(dense_layers)
        parts.update(layer_parts(i, layer.W, layer.b, H, last, labels))
        H = np.maximum(H @ layer.W.T + layer.b, 0)
    Xd, Td = model.backend.asarray(Xb), model._targets_to_backend(labels)
    opt = fastnn.SGD(lr=LR)

    def step() -> None:
        model.train_batch(Xd, Td)
        opt.step(model)

    epoch_parts = epoch_loop(name, model, opt, step, X, y)
    whole = epoch_parts[0]
    gemms = sum(v for k, v in parts.items() if k.startswith("GEMM"))
    kernels = sum(v for k, v in parts.items() if k.startswith("kernel"))
    for key, value in parts.items():
        print(f"  {key:34s} {value:8.1f} us")
    print(
        f"{name} step {whole:.0f} us: GEMMs {gemms:.0f} us ({100 * gemms / whole:.0f}%), "
        f"kernels {kernels:.0f} us ({100 * kernels / whole:.0f}%), Python and the rest "
        f"{whole - gemms - kernels:.0f} us ({100 * (whole - gemms - kernels) / whole:.0f}%)"
    )
    labels = [
        "step on one fixed batch",
        "+ gathering each batch (take_rows)",
        "+ finiteness flag, correct count",
        "fit (its loop and per-call work)",
    ]
    for i, (label, value) in enumerate(zip(labels, epoch_parts, strict=True)):
        added = f"(+{value - epoch_parts[i - 1]:.0f} us)" if i else ""
        print(f"  {label:36s} {value:6.0f} us {added}")
    print(f"{name} epoch at {100 * whole / epoch_parts[3]:.0f}% of the step's rate")


def epoch_loop(name: str, model, opt, step, X, y) -> list[float]:
    """Microseconds per step of ``step``, then of the epoch loop's parts, each added to the
    one before, and of ``fit``, timed side by side."""
    arch = ARCHITECTURES[name]
    n, backend = arch.batch, model.backend
    Xd, Td = backend.asarray(X), model._targets_to_backend(y)
    order = np.random.default_rng(0).permutation(len(X))
    batches = [order[i : i + n] for i in range(0, len(X) - n + 1, n)]
    state = {"next": 0}

    def gathered() -> tuple:
        rows = batches[state["next"]]
        state["next"] = (state["next"] + 1) % len(batches)
        return rows, backend.take_rows(Xd, rows), backend.take_rows(Td, rows)

    def step_gathered() -> None:
        _, Xb, Tb = gathered()
        model.train_batch(Xb, Tb)
        opt.step(model)

    def step_checked() -> None:
        rows, Xb, Tb = gathered()
        loss, out = model.train_batch(Xb, Tb, Batch(rows))
        backend.finite_flag([loss, *model.parameter_gradients()])
        opt.step(model)
        model.count_correct(out, Tb, logits=model._fused)

    def fit() -> None:
        model.fit(X, y, epochs=2, batch_size=n, optimizer="sgd", lr=LR, progress=False)

    calls = [step, step_gathered, step_checked, fit]
    seconds = measure_side_by_side(calls, min_time=2.0, rounds=7)
    return [1e6 * s for s in seconds[:3]] + [1e6 * seconds[3] / (2 * arch.steps_per_epoch)]


if __name__ == "__main__":
    main(*sys.argv[1:])
