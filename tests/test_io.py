"""Model files: round trips, atomic writes, and files that must be refused cleanly."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from conftest import need_module

save_file = need_module("safetensors.numpy", "pip install safetensors", module_level=True).save_file

import fastnn  # noqa: E402
from fastnn import ModelFileError  # noqa: E402
from fastnn.io import checksum, load_model, save_model  # noqa: E402


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
    assert meta["format"] == "fastnn" and meta["format_version"] == "2"
    assert meta["checksum"].startswith("sha256:")
    assert json.loads(meta["architecture"])["layers"] == [
        {"kind": "Dense", "config": {"n_in": 5, "n_out": 7, "activation": "tanh"}},
        {"kind": "Dense", "config": {"n_in": 7, "n_out": 3, "activation": "softmax"}},
    ]
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
        with pytest.raises(ModelFileError, match="cut.safetensors"):
            load_model(target)


def test_every_single_bit_flip_is_refused_or_changes_nothing(saved, tmp_path, rng):
    """Every one of the file's bits flipped in turn: the checksum over tensors and metadata
    refuses the file, unless the flip changes nothing that is read."""
    raw = saved.read_bytes()
    original = load_model(saved)
    X = rng.normal(size=(16, 5))
    target = tmp_path / "flip.safetensors"
    outcomes = {"refused": 0, "harmless": 0}
    for i in range(len(raw) * 8):
        data = bytearray(raw)
        data[i // 8] ^= 1 << (i % 8)
        target.write_bytes(bytes(data))
        try:
            loaded = load_model(target)
        except ModelFileError:
            outcomes["refused"] += 1
            continue
        assert repr(loaded) == repr(original), f"bit {i} changed the architecture"
        for (W, b), (W2, b2) in zip(loaded.get_weights(), original.get_weights()):
            assert np.array_equal(W, W2) and np.array_equal(b, b2), f"bit {i} changed weights"
        np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
        outcomes["harmless"] += 1
    print(f"\n{len(raw) * 8} single-bit flips of a model file: {outcomes}")


def test_a_header_over_one_mebibyte_is_refused_unread(tmp_path):
    """The limit itself: the file is long enough to hold the header it claims."""
    n = (1 << 20) + 1
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", n) + b"{" + b" " * (n - 2) + b"}")
    with pytest.raises(ModelFileError, match="over the 1 MiB"):
        load_model(path)


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
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        load_model(path)


def _write(path, tensors, metadata):
    """Write a file as fastnn would, checksum included, so that the check under test is
    the one that refuses it."""
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    metadata = {**metadata, "checksum": checksum(tensors, metadata)}
    save_file(tensors, str(path), metadata=metadata)


def test_the_checksum_is_sha256_of_the_documented_bytes(saved):
    """Recomputed here from the file's own bytes, as the module docstring describes it."""
    import hashlib

    raw = saved.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    digest = hashlib.sha256()
    for name in sorted(header):
        start, stop = header[name]["data_offsets"]
        shape = ",".join(map(str, header[name]["shape"]))
        digest.update(f"tensor {name} {header[name]['dtype']} [{shape}]\n".encode())
        digest.update(raw[8 + n + start : 8 + n + stop])
    for key in sorted(set(meta) - {"checksum"}):
        digest.update(f"metadata {key} {len(meta[key].encode())}\n".encode())
        digest.update(meta[key].encode())
    assert meta["checksum"] == "sha256:" + digest.hexdigest()


def _dense(n_in, n_out, activation):
    return {"kind": "Dense", "config": {"n_in": n_in, "n_out": n_out, "activation": activation}}


def _broken_chain(tensors, meta, arch):
    arch["layers"][1]["config"]["n_in"] = 8
    tensors["layers.1.W"] = np.zeros((3, 8), np.float32)


def _one_output_cross_entropy(tensors, meta, arch):
    arch["layers"][1]["config"]["n_out"] = 1
    tensors["layers.1.W"] = np.zeros((1, 7), np.float32)
    tensors["layers.1.b"] = np.zeros(1, np.float32)


def _valid_parts(model):
    tensors = {}
    for i, (W, b) in enumerate(model.get_weights()):
        tensors[f"layers.{i}.W"], tensors[f"layers.{i}.b"] = W, b
    arch = {
        "class": "MLP",
        "layers": [_dense(5, 7, "tanh"), _dense(7, 3, "softmax")],
        "loss": "cross_entropy",
        "dtype": "float32",
    }
    meta = {
        "format": "fastnn",
        "format_version": "2",
        "fastnn_version": "0.1.0",
        "architecture": json.dumps(arch),
    }
    return tensors, meta, arch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, m, a: m.pop("format"), "not a fastnn model"),
        (lambda t, m, a: m.update(format_version="3"), "newer fastnn"),
        (lambda t, m, a: m.update(format_version="x"), "format_version"),
        (lambda t, m, a: m.update(architecture="{"), "architecture"),
        (lambda t, m, a: a.update(loss="hinge"), "malformed"),
        (lambda t, m, a: a["layers"].__setitem__(0, _dense(5, 7, "gelu")), "layer 0 is malformed"),
        (lambda t, m, a: a["layers"].__setitem__(0, _dense(5, -7, "tanh")), "layer 0 is malformed"),
        (lambda t, m, a: a["layers"].__setitem__(0, [5, 7, "tanh"]), "layer 0 is malformed"),
        (
            lambda t, m, a: a["layers"].__setitem__(0, {"kind": "Conv2d", "config": {}}),
            "unknown layer type 'Conv2d'",
        ),
        (
            lambda t, m, a: a["layers"][0]["config"].update(bias=False),
            "layer 0 is malformed.*bias",
        ),
        (lambda t, m, a: t.update({"layers.0.W": np.zeros((7, 6), np.float32)}), "layers.0.W"),
        (lambda t, m, a: t.update({"layers.0.b": np.zeros(7, np.float64)}), "layers.0.b"),
        (lambda t, m, a: t.pop("layers.1.b"), "missing"),
        (lambda t, m, a: t.update({"extra": np.zeros(1, np.float32)}), "unexpected"),
        (lambda t, m, a: t.update({"layers.0.b": np.full(7, np.nan, np.float32)}), "NaN"),
        (_broken_chain, "layer 1 .* expects 8 inputs but layer 0 .* gives 7"),
        (lambda t, m, a: a["layers"][1]["config"].update(activation="tanh"), "needs a 'softmax'"),
        (_one_output_cross_entropy, "cross_entropy over .* is constant"),
    ],
)
def test_inconsistent_files_name_the_problem(model, tmp_path, change, message):
    tensors, meta, arch = _valid_parts(model)
    change(tensors, meta, arch)
    if "architecture" in meta and meta["architecture"] != "{":
        meta["architecture"] = json.dumps(arch)
    path = tmp_path / "x.safetensors"
    _write(path, tensors, meta)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_a_file_without_its_checksum_is_refused(model, tmp_path):
    tensors, meta, _ = _valid_parts(model)
    path = tmp_path / "x.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelFileError, match="no checksum"):
        load_model(path)


def test_a_format_1_file_from_fastnn_0_1_still_loads(model, tmp_path, rng):
    """Files written before checksums and layer kinds existed (format 1) are read."""
    tensors, meta, arch = _valid_parts(model)
    path = tmp_path / "old.safetensors"
    old = {**meta, "format_version": "1"}
    old["architecture"] = json.dumps({**arch, "layers": [[5, 7, "tanh"], [7, 3, "softmax"]]})
    save_file(tensors, str(path), metadata=old)
    X = rng.normal(size=(4, 5))
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert type(loaded) is fastnn.MLP and loaded.sizes == [5, 7, 3]


def test_saving_and_loading_through_module_functions(model, tmp_path, rng):
    save_model(model, tmp_path / "a.safetensors")
    X = rng.normal(size=(4, 5))
    np.testing.assert_array_equal(
        load_model(tmp_path / "a.safetensors").predict_proba(X), model.predict_proba(X)
    )


def test_mlp_arguments_in_a_file_cannot_differ_from_its_layers(model, tmp_path, monkeypatch):
    """A file whose MLP arguments claim other (huge) sizes than its layers is read as the
    plain stack of its layers; nothing is built from the claim."""
    tensors, meta, arch = _valid_parts(model)
    arch["mlp"] = {"sizes": [5, 10**9, 3], "activation": "tanh", "output": "softmax"}
    path = tmp_path / "x.safetensors"
    _write(path, tensors, {**meta, "architecture": json.dumps(arch)})
    built = []
    monkeypatch.setattr(fastnn.MLP, "__init__", lambda self, *a, **k: built.append(k))
    loaded = load_model(path)
    assert built == [] and type(loaded) is fastnn.Sequential
    assert [layer.n_out for layer in loaded.layers] == [7, 3]
