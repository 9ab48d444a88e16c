"""Model files: round trips, atomic writes, and files that must be refused cleanly."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

import fastnn
from fastnn import ModelFileError
from fastnn.io import load_model, save_model


@pytest.fixture
def model():
    return fastnn.MLP([5, 7, 3], activation="tanh", loss="cross_entropy", seed=0)


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "model.safetensors"
    model.save(path)
    return path


@pytest.mark.parametrize(
    ("sizes", "activation", "loss", "dtype"),
    [
        ([5, 7, 3], "tanh", "cross_entropy", "float32"),
        ([5, 4, 4, 1], "sigmoid", "binary_cross_entropy", "float64"),
        ([5, 2], "relu", "mse", "float32"),
    ],
)
def test_round_trip_gives_identical_predictions(
    backend, tmp_path, rng, sizes, activation, loss, dtype
):
    model = fastnn.MLP(sizes, activation=activation, loss=loss, dtype=dtype, seed=1)
    X = rng.normal(size=(20, 5))
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = fastnn.load(path, backend=backend)
    assert type(loaded) is fastnn.MLP and loaded.sizes == sizes
    assert loaded.dtype == dtype and loaded.loss.name == loss
    assert repr(loaded) == repr(model).replace("'numpy'", repr(backend))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for (W, b), (W2, b2) in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_sequential_with_mixed_activations_round_trips(tmp_path):
    model = fastnn.Sequential(
        [fastnn.Dense(3, 4, "relu"), fastnn.Dense(4, 4, "tanh"), fastnn.Dense(4, 2)],
        loss="mse",
        seed=0,
    )
    model.save(tmp_path / "s.safetensors")
    loaded = fastnn.load(tmp_path / "s.safetensors")
    assert type(loaded) is fastnn.Sequential
    assert [layer.activation for layer in loaded.layers] == ["relu", "tanh", "identity"]


def test_file_holds_no_pickle_and_documented_metadata(saved):
    raw = saved.read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    meta = header["__metadata__"]
    assert meta["format"] == "fastnn" and meta["format_version"] == "1"
    assert json.loads(meta["architecture"])["layers"] == [[5, 7, "tanh"], [7, 3, "softmax"]]
    assert set(header) - {"__metadata__"} == {
        "layers.0.W",
        "layers.0.b",
        "layers.1.W",
        "layers.1.b",
    }


def test_interrupted_save_keeps_the_previous_file(model, saved, monkeypatch):
    before = saved.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="previous file, if any, is unchanged"):
        fastnn.MLP([5, 7, 3], loss="cross_entropy", seed=9).save(saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name], "temporary file left behind"


def test_save_into_missing_folder_is_a_clear_error(model, tmp_path):
    with pytest.raises(OSError, match="cannot write"):
        model.save(tmp_path / "no" / "such" / "m.safetensors")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        fastnn.load(tmp_path / "absent.safetensors")


def test_every_truncation_is_refused(saved, tmp_path):
    raw = saved.read_bytes()
    target = tmp_path / "cut.safetensors"
    for n in range(len(raw)):  # every length
        target.write_bytes(raw[:n])
        with pytest.raises(ModelFileError):
            load_model(target)


def test_random_bit_flips_never_crash(saved, tmp_path):
    raw = bytearray(saved.read_bytes())
    rng = np.random.default_rng(0)
    target = tmp_path / "flip.safetensors"
    outcomes = set()
    for _ in range(1000):
        data = bytearray(raw)
        for pos in rng.integers(0, len(data), size=3):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        target.write_bytes(bytes(data))
        try:
            load_model(target)
            outcomes.add("loaded")  # a flip inside the weights yields another valid model
        except ModelFileError:
            outcomes.add("refused")
    assert "refused" in outcomes


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00" * 7,
        b"not a model at all",
        struct.pack("<Q", 1 << 40) + b"{}",
        struct.pack("<Q", 10) + b"{bad json}",
        struct.pack("<Q", 2) + b"{}",
    ],
    ids=["empty", "short", "text", "terabyte-header", "bad-json", "no-tensors"],
)
def test_hostile_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        load_model(path)


def _write(path, tensors, metadata):
    save_file({k: np.asarray(v) for k, v in tensors.items()}, str(path), metadata=metadata)


def _valid_parts(model):
    tensors = {}
    for i, (W, b) in enumerate(model.get_weights()):
        tensors[f"layers.{i}.W"], tensors[f"layers.{i}.b"] = W, b
    arch = {
        "class": "MLP",
        "layers": [[5, 7, "tanh"], [7, 3, "softmax"]],
        "loss": "cross_entropy",
        "dtype": "float32",
    }
    meta = {
        "format": "fastnn",
        "format_version": "1",
        "fastnn_version": "0.1.0",
        "architecture": json.dumps(arch),
    }
    return tensors, meta, arch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, m, a: m.pop("format"), "not a fastnn model"),
        (lambda t, m, a: m.update(format_version="2"), "newer fastnn"),
        (lambda t, m, a: m.update(format_version="x"), "format_version"),
        (lambda t, m, a: m.update(architecture="{"), "architecture"),
        (lambda t, m, a: a.update(loss="hinge"), "malformed"),
        (lambda t, m, a: a["layers"].__setitem__(0, [5, 7, "gelu"]), "layer 0 is malformed"),
        (lambda t, m, a: a["layers"].__setitem__(0, [5, -7, "tanh"]), "layer 0 is malformed"),
        (lambda t, m, a: t.update({"layers.0.W": np.zeros((7, 6), np.float32)}), "layers.0.W"),
        (lambda t, m, a: t.update({"layers.0.b": np.zeros(7, np.float64)}), "layers.0.b"),
        (lambda t, m, a: t.pop("layers.1.b"), "missing"),
        (lambda t, m, a: t.update({"extra": np.zeros(1, np.float32)}), "unexpected"),
        (lambda t, m, a: t.update({"layers.0.b": np.full(7, np.nan, np.float32)}), "NaN"),
    ],
)
def test_inconsistent_files_name_the_problem(model, tmp_path, change, message):
    tensors, meta, arch = _valid_parts(model)
    change(tensors, meta, arch)
    if "architecture" in meta and meta["architecture"] != "{":
        meta["architecture"] = json.dumps(arch)
    path = tmp_path / "x.safetensors"
    _write(path, tensors, meta)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_saving_and_loading_through_module_functions(model, tmp_path, rng):
    save_model(model, tmp_path / "a.safetensors")
    X = rng.normal(size=(4, 5))
    np.testing.assert_array_equal(
        load_model(tmp_path / "a.safetensors").predict_proba(X), model.predict_proba(X)
    )
