"""One forward and backward pass, recorded in the lecture's notation.

:func:`trace` runs a model on one batch without updating anything and records each
quantity of the lecture's equations, layer by layer, in the lecture's order:

* forward: ``h^0 = x``; per dense layer ``z^l = W^l h^(l-1) + b^l`` and ``h^l = sigma(z^l)``
  (other layers: ``h^l`` from ``h^(l-1)`` by their own equation);
* the loss ``L``;
* backward: ``dz^L`` (or ``dh^L``), then per dense layer ``dz^l = dh^l * sigma'(z^l)``,
  ``dW^l = dz^l (h^(l-1))^T``, ``db^l`` (``dz^l`` summed over the samples) and
  ``dh^(l-1) = (W^l)^T dz^l``.

The lecture writes one column per sample (``h^l`` is units x n); fastnn stores one row per
sample (``H`` is n x units, ``Z = H W^T + b``), the transpose. Entries keep fastnn's arrays
(``value``) and print in the lecture's columns. ``W`` is out x in in both.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: arrays up to this many elements print whole; larger ones as a summary
PRINT_ELEMENTS = 60
#: line width of the printed trace's prose
WIDTH = 92

LOSS_EQUATIONS = {
    "mse": "L = (1/n) sum (y_hat - y)^2  (mean over samples and outputs)",
    "cross_entropy": "L = -(1/n) sum_i log softmax(z^L)_i[y_i]",
    "binary_cross_entropy": "L = (1/n) sum -(y log sigma(z^L) + (1 - y) log(1 - sigma(z^L)))",
}
OUTPUT_GRADIENTS = {
    "mse": "dh^{ell} = dL/dy_hat = (2/n) (y_hat - y)  (the lecture's y_hat - y for its n = 2)",
    "cross_entropy": "dz^{ell} = dL/dz^{ell} = (softmax(z^{ell}) - y) / n  (fused with the loss)",
    "binary_cross_entropy": "dz^{ell} = dL/dz^{ell} = (sigmoid(z^{ell}) - y) / n  (fused)",
}
#: sigma'(z) as fastnn computes it, from the output h = sigma(z) (no second exp)
DERIVATIVES = {
    "sigmoid": "sigmoid'(z) = h (1 - h)",
    "tanh": "tanh'(z) = 1 - h^2",
    "relu": "relu'(z) = 1 where h > 0, else 0",
    "identity": "identity'(z) = 1",
    "softmax": "softmax: dz = h * (dh - sum_j dh_j h_j) per sample",
}


@dataclass(frozen=True)
class TraceEntry:
    """One quantity of one step.

    ``value`` is a host array in fastnn's layout (rows are samples for the per-sample
    quantities ``h``, ``z``, ``dh``, ``dz``); ``per_sample`` says which.
    """

    step: str  # "forward", "loss" or "backward"
    layer: int  # l: 0 for the input, 1 .. for the model's layers in order
    name: str  # "z^1", "dW^2", "L", ...
    equation: str
    value: np.ndarray
    per_sample: bool
    note: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``value`` (fastnn's layout)."""
        return self.value.shape

    @property
    def lecture_shape(self) -> tuple[int, ...]:
        """Shape in the lecture's column notation (units x samples for per-sample arrays)."""
        return self.value.T.shape if self.per_sample else self.value.shape

    def lecture_value(self) -> np.ndarray:
        """``value`` in the lecture's column notation."""
        return self.value.T if self.per_sample else self.value


class Trace:
    """The entries of one traced pass; ``trace["dW^2"]`` finds one by name."""

    def __init__(self, entries: list[TraceEntry], model: str, n: int) -> None:
        self.entries = entries
        self.model = model
        self.n = n

    def __iter__(self) -> Iterator[TraceEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, name: str) -> TraceEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(f"no entry {name!r}; the trace has {', '.join(self.names())}")

    def names(self) -> list[str]:
        """Entry names in the lecture's order."""
        return [e.name for e in self.entries]

    def __str__(self) -> str:
        intro = (
            f"One forward and backward pass of {self.model} on {self.n} samples "
            "(nothing updated). Shapes are the lecture's: one column per sample, so h^l is "
            "(units x n). fastnn stores the transpose, one row per sample (H is n x units, "
            "Z = H W^T + b); W is (out x in) in both."
        )
        lines = textwrap.wrap(intro, WIDTH)
        step = None
        for e in self.entries:
            if e.step != step:
                step = e.step
                lines += ["", step]
            shape = " x ".join(map(str, e.lecture_shape)) or "scalar"
            lines.append(f"  {e.equation}   ({shape})")
            lines += ["      " + line for line in _format(e.lecture_value()).splitlines()]
            if e.note:
                first, *rest = e.note.splitlines()
                lines += ["    note: " + first, *("          " + line for line in rest)]
        return "\n".join(lines)


def _format(a: np.ndarray) -> str:
    if a.size <= PRINT_ELEMENTS:
        return np.array2string(a, precision=5, suppress_small=False, max_line_width=100)
    return (
        f"norm {np.linalg.norm(a):.5g}, min {a.min():.5g}, max {a.max():.5g}, "
        f"mean {a.mean():.5g} ({a.size} values)"
    )


def _lecture_bug(ell: int, dZ: np.ndarray, dW: np.ndarray, dH: np.ndarray) -> str:
    """What the lecture's ``dh1 = np.dot(dw2.T, dz2)`` gives at this layer, against the
    right ``(W^l)^T dz^l``."""
    wrong = (dZ @ dW).T  # (dW^l)^T dz^l in columns
    k = ell - 1
    shape = " x ".join(map(str, wrong.shape))
    why = (
        f"That is not the gradient: z^{ell} = W^{ell} h^{k} + b^{ell} is linear in h^{k} with "
        f"coefficient W^{ell}, so dz^{ell}/dh^{k} = W^{ell} and dh^{k} = (W^{ell})^T dz^{ell} "
        f"(above). dW^{ell} is a gradient, not a coefficient. Both products are ({shape}): "
        f"the lecture's code runs and is silently wrong (here off by up to "
        f"{np.max(np.abs(wrong - dH.T)):.3g})."
    )
    return (
        f"the lecture's code computes dh{k} = np.dot(dw{ell}.T, dz{ell}), that is "
        f"(dW^{ell})^T dz^{ell}:\n{_format(wrong)}\n" + "\n".join(textwrap.wrap(why, WIDTH - 10))
    )


def trace(model: Any, X: Any, y: Any) -> Trace:
    """Record one forward and backward pass of ``model`` on ``(X, y)``; see the module.

    Nothing changes: no parameter is updated, no running statistic moves, and dropout is
    the identity (as in ``model.gradients``, whose values the backward entries equal).
    """
    host = model._features(X)
    T_host = model._targets(y, host.shape[0])
    b = model.backend
    to_np = b.to_numpy

    def keep(a: Any) -> np.ndarray:  # a host copy: backend arrays may be reused workspaces
        return np.array(to_np(a), copy=True)

    H = b.asarray(host, dtype=model.dtype)
    T = model._targets_to_backend(T_host)
    batch = model.batch(draw_masks=False, update_statistics=False)
    layers = model.layers
    last = len(layers) - 1
    fused = model._fused
    entries = [TraceEntry("forward", 0, "h^0", "h^0 = x", keep(H), True)]
    outputs: list[np.ndarray] = []  # h^ell, host copies
    for i, layer in enumerate(layers):
        ell, act = i + 1, layer.small_network_activation()
        if act is not None:  # H = act(H W^T + b): recorded term by term
            W, bias = layer.parameters().values()
            Z = keep(b.affine(H, W, bias))
            entries.append(
                TraceEntry(
                    "forward", ell, f"z^{ell}", f"z^{ell} = W^{ell} h^{i} + b^{ell}", Z, True
                )
            )
            if i == last and fused:
                H = layer.forward_logits(H, True, batch.at(i))
                act = model.loss.output_activation
                out = keep(getattr(b, act)(b.asarray(Z, dtype=model.dtype)))
                equation = f"y_hat = h^{ell} = {act}(z^{ell})  (inside the loss)"
            else:
                H = layer.forward(H, True, batch.at(i))
                out = keep(H)
                equation = ("y_hat = " if i == last else "") + f"h^{ell} = {act}(z^{ell})"
        else:
            H = layer.forward(H, True, batch.at(i))
            out = keep(H)
            equation = layer.trace_equation(ell)
        outputs.append(out)
        entries.append(TraceEntry("forward", ell, f"h^{ell}", equation, out, True))

    loss, grad = model.loss(b, H, T)
    entries.append(
        TraceEntry("loss", last + 1, "L", LOSS_EQUATIONS[model.loss.name], keep(loss), False)
    )
    L = last + 1
    if fused:
        name, equation = f"dz^{L}", OUTPUT_GRADIENTS[model.loss.name].format(ell=L)
    else:
        name = f"dh^{L}"
        equation = OUTPUT_GRADIENTS["mse"] if model.loss.name == "mse" else "dh^{ell} = dL/dh^{ell}"
        equation = equation.format(ell=L)
    entries.append(TraceEntry("backward", L, name, equation, keep(grad), True))
    try:
        for i in range(last, -1, -1):
            layer, ell, need_dX = layers[i], i + 1, i > 0
            act = layer.small_network_activation()
            if act is not None:
                if i == last and fused:
                    dZ = entries[-1].value
                    grad = layer.backward_logits(grad, need_dX)
                else:
                    h = b.asarray(outputs[i], dtype=model.dtype)
                    dZ = keep(getattr(b, "backprop_" + act)(grad, h))
                    entries.append(
                        TraceEntry(
                            "backward",
                            ell,
                            f"dz^{ell}",
                            f"dz^{ell} = dh^{ell} * {act}'(z^{ell})  [{DERIVATIVES.get(act, '')}]",
                            dZ,
                            True,
                        )
                    )
                    grad = layer.backward(grad, need_dX)
                dW, db = (keep(g) for g in layer.gradients().values())
                entries += [
                    TraceEntry(
                        "backward", ell, f"dW^{ell}", f"dW^{ell} = dz^{ell} (h^{i})^T", dW, False
                    ),
                    TraceEntry(
                        "backward",
                        ell,
                        f"db^{ell}",
                        f"db^{ell} = dz^{ell} summed over samples",
                        db,
                        False,
                    ),
                ]
                if need_dX:
                    dH = keep(grad)
                    entries.append(
                        TraceEntry(
                            "backward",
                            ell,
                            f"dh^{i}",
                            f"dh^{i} = (W^{ell})^T dz^{ell}",
                            dH,
                            True,
                            _lecture_bug(ell, dZ, dW, dH),
                        )
                    )
                continue
            grad = layer.backward(grad, need_dX)
            for name, g in layer.gradients().items():
                entries.append(
                    TraceEntry(
                        "backward",
                        ell,
                        f"d{name}^{ell}",
                        f"d{name}^{ell} = dL/d{name}^{ell}",
                        keep(g),
                        False,
                    )
                )
            if need_dX:
                entries.append(
                    TraceEntry(
                        "backward",
                        ell,
                        f"dh^{i}",
                        f"dh^{i} = dL/dh^{i}  (back through {layer!r})",
                        keep(grad),
                        True,
                    )
                )
    finally:
        for layer in layers:
            layer.release()
    return Trace(entries, repr(model), host.shape[0])
