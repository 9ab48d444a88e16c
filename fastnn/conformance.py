"""Do the backends compute the same thing? Step-by-step comparison against NumPy float64.

:data:`TOLERANCES` is the one table of how closely each backend and dtype must follow
the reference; the test suite uses it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .backends import available_backends

# Agreement with the NumPy float64 reference, as (rtol, atol), per backend and dtype.
# check_backends scales rtol by each tensor's largest magnitude (|diff| <= atol +
# rtol * max|ref|): rounding in a sum grows with its terms, not with its result, so an
# element that cancels to nearly 0 carries the error of its large neighbours.
# float64 backends differ from the reference only by summation order (BLAS blocking,
# kernel loops): 1e-10. float32 carries about 7 significant digits; a few layers of matrix
# products with inner sums of ~1000 terms lose one or two of them, so 1e-4 relative with
# an absolute floor of 1e-5 for values near zero. Numba's kernels evaluate elementwise math
# in float64 before storing float32 results, which only brings them closer.
TOLERANCES: dict[tuple[str, str], tuple[float, float]] = {
    ("numpy", "float64"): (1e-10, 1e-12),
    ("numpy", "float32"): (1e-4, 1e-5),
    ("numba", "float64"): (1e-10, 1e-12),
    ("numba", "float32"): (1e-4, 1e-5),
    # cuBLAS sums in yet another order, and the GPU's exp/log are within 2 ulp; float32
    # products stay float32 (no TF32) unless CUPY_TF32=1, which these bounds do not cover.
    ("cupy", "float64"): (1e-10, 1e-12),
    ("cupy", "float32"): (1e-4, 1e-5),
}


@dataclass
class Deviation:
    """How far one tensor of one backend is from the reference at one point of a step."""

    backend: str
    step: int
    op: str  # "forward", "loss", "backward", "update" or "eval"
    layer: int | None
    tensor: str
    max_abs: float
    max_rel: float  # max_abs / max |reference|
    rtol: float
    atol: float
    ok: bool  # max_abs <= atol + rtol * max |reference|


class BackendReport:
    """The result of :func:`check_backends`: one :class:`Deviation` per backend, op and tensor."""

    def __init__(self, rows: list[Deviation]) -> None:
        self.rows = rows

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def first_failure(self) -> Deviation | None:
        """The first op, in the order computed, whose result exceeds its tolerance."""
        return next((row for row in self.rows if not row.ok), None)

    def worst(self) -> dict[tuple[str, int | None, str], float]:
        """Largest relative deviation per (backend, layer, tensor) over all steps."""
        out: dict[tuple[str, int | None, str], float] = {}
        for row in self.rows:
            key = (row.backend, row.layer, row.tensor)
            out[key] = max(out.get(key, 0.0), row.max_rel)
        return out

    def __str__(self) -> str:
        lines = [f"{'backend':8s} {'layer':>5s} {'tensor':8s} {'max rel dev':>12s}"]
        for (backend, layer, tensor), rel in self.worst().items():
            lines.append(
                f"{backend:8s} {'' if layer is None else layer:>5} {tensor:8s} {rel:12.3e}"
            )
        failure = self.first_failure
        if failure is None:
            lines.append("all within tolerance")
        else:
            where = "" if failure.layer is None else f" of layer {failure.layer}"
            lines.append(
                f"first op over tolerance: {failure.backend} step {failure.step} {failure.op} "
                f"{failure.tensor}{where}: |diff| {failure.max_abs:.3e} > atol {failure.atol:g} "
                f"+ rtol {failure.rtol:g} max|ref|"
            )
        return "\n".join(lines)

    __repr__ = __str__


def _host(model: Any, a: Any) -> Any:
    return model.backend.to_numpy(a).astype("float64")


def _trace_step(model: Any, X: Any, T: Any, lr: float) -> list[tuple[str, int | None, str, Any]]:
    """Every intermediate of one SGD step, as host float64 copies, in the order computed:
    each layer's output, the loss, each layer's gradients by name (last layer first) and
    each parameter after the update."""
    out: list[tuple[str, int | None, str, Any]] = []
    *hidden, last = model.layers
    H = X
    for i, layer in enumerate(hidden):
        H = layer.forward(H, train=True)
        out.append(("forward", i, "H", _host(model, H)))
    fused = model._fused
    res = last.forward_logits(H, train=True) if fused else last.forward(H, train=True)
    out.append(("forward", len(hidden), "Z" if fused else "H", _host(model, res)))
    loss, grad = model.loss(model.backend, res, T)
    out.append(("loss", None, "loss", _host(model, model.backend.asarray([float(loss)]))))
    n = len(model.layers)
    grad = (last.backward_logits if fused else last.backward)(grad, need_dX=n > 1)
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            grad = model.layers[i].backward(grad, need_dX=i > 0)
        for name, g in model.layers[i].gradients().items():
            out.append(("backward", i, "d" + name, _host(model, g)))
    model.backend.sgd_step(
        model.parameters(),
        model.parameter_gradients(),
        None,
        lr,
        0.0,
        False,
        [0.0] * len(model.parameters()),
    )
    for i, layer in enumerate(model.layers):
        for name, a in layer.state().items():  # parameters, and buffers (running statistics)
            out.append(("update", i, name, _host(model, a)))
    out += _eval_outputs(model, X)
    return out


def _eval_outputs(model: Any, X: Any) -> list[tuple[str, int | None, str, Any]]:
    """Each layer's output in evaluation mode (running statistics, no dropout)."""
    out: list[tuple[str, int | None, str, Any]] = []
    for i, layer in enumerate(model.layers):
        X = layer.forward(X)
        out.append(("eval", i, "H", _host(model, X)))
    return out


def check_backends(
    model: Any,
    X: Any,
    y: Any,
    steps: int = 2,
    lr: float = 0.01,
    backends: list[str] | None = None,
) -> BackendReport:
    """Run the same SGD steps on every backend from ``model``'s weights and compare each
    layer's training-mode output (dropout masks and batch statistics included), the loss,
    every gradient, the updated parameters and buffers, and each layer's evaluation-mode
    output, with NumPy float64.

    Parameters
    ----------
    model : Sequential
        Supplies the architecture, dtype and starting weights; it is not changed.
    X, y : arrays
        One batch, used for every step.
    steps : int
        SGD steps to compare (differences that compound show up after a few).
    lr : float
        Learning rate of the steps.
    backends : list of str, optional
        Default: every backend available here, but not NumPy for a float64 model, which
        is the reference itself.

    Returns
    -------
    BackendReport
        ``print(report)`` shows the largest deviation per backend, layer and tensor, and
        the first op that exceeded its tolerance; ``report.ok`` says whether none did.
    """
    host_X = model._features(X)
    T_host = model._targets(y, host_X.shape[0])
    reference = model.clone(backend="numpy", dtype="float64")
    rows: list[Deviation] = []
    if backends is None:
        backends = [
            name for name in available_backends() if (name, model.dtype) != ("numpy", "float64")
        ]
    for name in backends:
        rtol, atol = TOLERANCES[(name, model.dtype)]
        candidate = model.clone(backend=name)
        ref = reference.clone()
        Xc = candidate.backend.asarray(host_X, dtype=candidate.dtype)
        Tc = candidate._targets_to_backend(T_host)
        Xr = ref.backend.asarray(host_X, dtype="float64")
        Tr = ref._targets_to_backend(T_host)
        for step in range(1, steps + 1):
            got = _trace_step(candidate, Xc, Tc, lr)
            want = _trace_step(ref, Xr, Tr, lr)
            for (op, layer, tensor, a), (_, _, _, r) in zip(got, want, strict=True):
                diff = abs(a - r)
                max_abs = float(diff.max())
                scale = float(abs(r).max())
                rows.append(
                    Deviation(
                        name,
                        step,
                        op,
                        layer,
                        tensor,
                        max_abs,
                        max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf),
                        rtol,
                        atol,
                        max_abs <= atol + rtol * scale,
                    )
                )
        for layer in candidate.layers:
            layer.release()
    return BackendReport(rows)
