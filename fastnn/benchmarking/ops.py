"""Single backend operations at the shapes of a benchmark network's first and last layers.

Each op is checked against the NumPy backend in float64 on the same inputs, then timed.
Only the affine map counts GEMM flops; elementwise ops report time and samples/s.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fastnn.activations import ACTIVATIONS
from fastnn.backends import get_backend

from .workloads import Architecture, Workload

ACTIVATION_OPS = [a for a in ACTIVATIONS if a != "identity"]
OPS = (
    ["affine", "affine_backward"]
    + [f"dense_forward:{a}" for a in ACTIVATION_OPS]
    + [f"backprop_{a}" for a in ACTIVATION_OPS]
    + ["softmax_cross_entropy", "mse", "sgd_step", "momentum_step", "adam_step"]
)


def _inputs(arch: Architecture, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, n_in, n_hidden, n_out = arch.batch, arch.sizes[0], arch.sizes[1], arch.sizes[-1]
    return {
        "X": rng.random((n, n_in)),
        "W": rng.normal(0, 0.05, (n_hidden, n_in)),
        "b": rng.normal(0, 0.1, n_hidden),
        "dZ": rng.normal(size=(n, n_hidden)),
        "H": rng.random((n, n_hidden)),
        "Z_out": rng.normal(size=(n, n_out)),
        "T_out": rng.random((n, n_out)),
        "labels": rng.integers(0, n_out, size=n),
    }


def _call(name: str, backend: str, dtype: str, inputs: dict) -> Callable[[], object]:
    """A closure running op ``name`` on ``backend`` with the inputs converted to ``dtype``."""
    b = get_backend(backend)
    a = {k: b.asarray(v, dtype=None if k == "labels" else dtype) for k, v in inputs.items()}
    if name == "affine":
        return lambda: b.affine(a["X"], a["W"], a["b"])
    if name == "affine_backward":
        return lambda: b.affine_backward(a["dZ"], a["X"], a["W"], False)
    if name.startswith("dense_forward:"):
        act = name.split(":")[1]
        return lambda: b.dense_forward(a["X"], a["W"], a["b"], act)
    if name.startswith("backprop_"):
        return lambda: getattr(b, name)(a["dZ"], a["H"])
    if name == "softmax_cross_entropy":
        return lambda: b.softmax_cross_entropy(a["Z_out"], a["labels"])
    if name == "mse":
        return lambda: b.mse(a["Z_out"], a["T_out"])
    params = [b.copy(a["W"]), b.copy(a["b"])]
    grads = [a["W"] * 0.01, a["b"] * 0.01]
    state = [b.zeros(p.shape, p.dtype) for p in params]
    state2 = [b.zeros(p.shape, p.dtype) for p in params]
    decays = [0.0, 0.0]
    if name == "sgd_step":
        return lambda: b.sgd_step(params, grads, None, 1e-3, 0.0, False, decays)
    if name == "momentum_step":
        return lambda: b.sgd_step(params, grads, state, 1e-3, 0.9, False, decays)
    if name == "adam_step":
        return lambda: b.adam_step(params, grads, state, state2, 1e-3, 0.9, 0.999, 1e-8, 1, decays)
    raise ValueError(f"unknown op {name!r}; known: {OPS}")


def _host(result: object, to_host: Callable) -> list[np.ndarray]:
    """An op's array result(s) as float64 host arrays (None results left out)."""
    items = result if isinstance(result, tuple) else (result,)
    return [np.asarray(to_host(x), dtype=np.float64) for x in items if x is not None]


def op_workload(arch: Architecture, name: str, backend: str, dtype: str) -> Workload:
    """Op ``name`` on ``backend`` at ``arch``'s first-layer (or output-layer) shapes."""
    inputs = _inputs(arch)
    run = _call(name, backend, dtype, inputs)
    to_host = get_backend(backend).to_numpy

    def check() -> float | None:
        if name.endswith("_step"):
            return None  # in-place updates are checked by the training-step benchmarks
        got = _host(run(), to_host)
        want = _host(_call(name, "numpy", "float64", inputs)(), np.asarray)
        return max(
            float(np.max(np.abs(g - w)) / max(np.max(np.abs(w)), 1e-30))
            for g, w in zip(got, want, strict=True)
        )

    n, n_in, n_hidden = arch.batch, arch.sizes[0], arch.sizes[1]
    flops = {"affine": 2.0 * n * n_in * n_hidden, "affine_backward": 2.0 * n * n_in * n_hidden}
    if name.startswith("dense_forward"):
        flops[name] = 2.0 * n * n_in * n_hidden
    return Workload(
        f"fastnn[{backend}]",
        arch,
        f"op:{name}",
        dtype,
        n,
        flops.get(name, 0.0),
        run,
        check,
        {"backend": backend, "op": name},
    )
