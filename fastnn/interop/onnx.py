"""Export to ONNX, for ONNX Runtime and other inference engines.

The graph computes what ``predict_proba`` computes (``predict`` for regression), from
raw inputs, in the model's dtype, for any batch size (a dynamic first dimension):

* ``Standardize`` / ``Rescale``: ``Sub`` then ``Div`` by the stored statistics;
* ``Dense``: ``Gemm`` (``X W^T + b``, ``transB=1``), then its activation;
* ``Activation``: ``Relu``, ``Sigmoid``, ``Tanh``, ``Softmax`` (axis -1; ONNX Runtime
  subtracts the row maximum, so it cannot overflow), nothing for identity;
* ``BatchNorm``: ``BatchNormalization`` with the running statistics (evaluation mode; not
  folded into the Gemm, so the exported graph mirrors the model's layers);
* ``Dropout``: nothing (the identity outside training).

Opset 17, which current ONNX Runtime supports. ``onnx`` is needed (``pip install
"fastnn[onnx]"``); a layer with no export raises ``ValueError`` naming it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; readable by every ONNX Runtime since 1.13
INSTALL_HINT = "pip install 'fastnn[onnx]' (onnx, and onnxruntime to run the file)"
_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def to_onnx(model: Any, path: str | os.PathLike | None = None) -> Any:
    """The ONNX ``ModelProto`` of ``model``; written to ``path`` when given."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the onnx package ({exc}): {INSTALL_HINT}") from exc
    kind = TensorProto.FLOAT if model.dtype == "float32" else TensorProto.DOUBLE
    nodes: list[Any] = []
    weights: list[Any] = []
    current = "X"

    def constant(name: str, value: Any) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value, dtype=model.dtype), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def activation(name: str, x: str, at: str) -> str:
        if name == "identity":
            return x
        extra = {"axis": -1} if name == "softmax" else {}
        return node(_ACTIVATIONS[name], [x], f"{at}.{name}", **extra)

    for i, layer in enumerate(model.layers):
        state = {k: model.backend.to_numpy(v) for k, v in layer.state().items()}
        at = f"layers.{i}"
        if layer.kind in ("Standardize", "Rescale"):
            shifted = node("Sub", [current, constant(f"{at}.shift", state["shift"])], f"{at}.sub")
            current = node("Div", [shifted, constant(f"{at}.scale", state["scale"])], f"{at}.div")
        elif layer.kind == "Dense":
            W, b = constant(f"{at}.W", state["W"]), constant(f"{at}.b", state["b"])
            current = activation(
                layer.activation, node("Gemm", [current, W, b], f"{at}.gemm", transB=1), at
            )
        elif layer.kind == "Activation":
            current = activation(layer.name, current, at)
        elif layer.kind == "BatchNorm":
            inputs = [current] + [
                constant(f"{at}.{k}", state[k])
                for k in ("gamma", "beta", "running_mean", "running_var")
            ]
            current = node("BatchNormalization", inputs, f"{at}.batchnorm", epsilon=layer.eps)
        elif layer.kind == "Dropout":
            continue
        else:
            raise ValueError(f"{layer!r} (layer {i}): no ONNX export for {layer.kind} layers")
    nodes.append(helper.make_node("Identity", [current], ["Y"], name="output"))
    graph = helper.make_graph(
        nodes,
        "fastnn",
        [helper.make_tensor_value_info("X", kind, ["batch", model.n_features])],
        [helper.make_tensor_value_info("Y", kind, ["batch", model.n_outputs])],
        initializer=weights,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fastnn",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto
