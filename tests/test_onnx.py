"""ONNX export, judged by onnx's checker and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_module

import fastnn
from fastnn import Activation, BatchNorm, Dense, Dropout

onnx = need_module("onnx", "pip install 'fastnn[onnx]'", module_level=True)
ort = need_module("onnxruntime", "pip install 'fastnn[onnx]'", module_level=True)

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def networks(kind):
    """Every layer type, each loss."""
    if kind == "mlp-dropout-batchnorm":
        return fastnn.MLP([6, 9, 7, 3], loss="cross_entropy", dropout=0.3, batch_norm=True, seed=1)
    if kind == "standardize-activations":
        return fastnn.Sequential(
            [
                fastnn.Standardize(6, np.arange(6.0), np.arange(1.0, 7.0)),
                Dense(6, 8, "tanh"),
                Dense(8, 5),
                Activation("sigmoid"),
                Dense(5, 4, "relu"),
                Dense(4, 2),
                Activation("softmax"),
            ],
            loss="cross_entropy",
            seed=2,
        )
    if kind == "rescale-bce":
        return fastnn.Sequential(
            [
                fastnn.Rescale(6, -np.ones(6), 2 * np.ones(6)),
                Dense(6, 5, "relu"),
                Dropout(0.5),
                Dense(5, 3, "sigmoid"),
            ],
            loss="binary_cross_entropy",
            seed=3,
        )
    return fastnn.Sequential(  # regression, identity output
        [Dense(6, 7, "relu"), BatchNorm(7), Dense(7, 2)], loss="mse", seed=4
    )


KINDS = ["mlp-dropout-batchnorm", "standardize-activations", "rescale-bce", "mse-batchnorm"]


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_runtime_computes_what_fastnn_predicts(backend, dtype, kind, tmp_path, rng):
    model = networks(kind).clone(backend=backend, dtype=dtype)
    X = rng.normal(size=(40, 6)) * 3
    y = (
        rng.integers(0, 2, size=(40, model.n_outputs))
        if model.loss.name == "binary_cross_entropy"
        else (
            rng.integers(0, model.n_outputs, size=40)
            if model.is_classifier
            else rng.normal(size=(40, 2))
        )
    )
    model.fit(X, y, epochs=2, batch_size=8, optimizer="adam", lr=0.01)  # running statistics move
    path = tmp_path / "m.onnx"
    model.to_onnx(path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for rows in (1, 17):  # any batch size
        got = session.run(None, {"X": X[:rows].astype(dtype)})[0]
        want = model.predict_proba(X[:rows]) if model.is_classifier else model.predict(X[:rows])
        np.testing.assert_allclose(got, want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_a_layer_without_an_export_is_named():
    class Square(fastnn.Layer):
        kind = "Square"

        def config(self):
            return {}

        def forward(self, X, train=False, batch=None):
            return X * X

    model = fastnn.Sequential([Dense(3, 3), Square()], loss="mse", seed=0)
    with pytest.raises(ValueError, match=r"\(layer 1\): no ONNX export for Square layers"):
        model.to_onnx()


def test_fastnn_export_writes_what_runtime_runs(tmp_path, rng):
    from fastnn.cli import main

    saved, exported = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    assert main(["train", "--epochs", "3", "--no-plot", "--model-out", str(saved)]) == 0
    assert main(["export", str(saved), str(exported)]) == 0
    from fastnn.datasets import load_digits

    X, _ = load_digits(scale=False)  # raw: the exported graph scales them itself
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(None, {"X": X[:50].astype("float32")})[0]
    np.testing.assert_allclose(got, fastnn.load(saved).predict_proba(X[:50]), rtol=1e-5, atol=1e-6)
