"""Bundled data, generators and file loaders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from fastnn.datasets import (
    load_csv,
    load_digits,
    load_file,
    load_idx,
    load_npy,
    load_npz,
    make_lecture_toy,
    make_spirals,
    make_xor,
    train_test_split,
)


def test_digits_ship_with_the_package():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert 0.0 <= X.min() and X.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    raw, _ = load_digits(scale=False)
    assert raw.dtype == np.uint8 and raw.max() == 16


def test_generators():
    X, y = make_spirals(n_samples=101, seed=1)
    assert X.shape == (101, 2) and np.bincount(y).tolist() == [51, 50]
    np.testing.assert_array_equal(make_spirals(seed=3)[0], make_spirals(seed=3)[0])
    assert make_xor()[1].tolist() == [0, 1, 1, 0]
    X, y = make_lecture_toy()
    assert X.shape == (2, 2) and y.shape == (2,) and ((0 < y) & (y < 1)).all()
    with pytest.raises(ValueError):
        make_spirals(n_samples=1)


def test_stratified_split_keeps_class_shares():
    X, y = load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, seed=0)
    assert len(X_tr) + len(X_te) == 1797 and len(y_te) == len(X_te)
    assert np.abs(np.bincount(y_te) / len(y_te) - np.bincount(y) / len(y)).max() < 0.01
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(X, y, test_size=1.5)


@pytest.fixture
def table(rng):
    X = rng.normal(size=(10, 3))
    y = np.arange(10) % 2
    return X, y


def test_npz_and_npy(tmp_path, table):
    X, y = table
    np.savez(tmp_path / "d.npz", x_train=X, y_train=y)
    X2, y2 = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(X2, X)
    np.savez(tmp_path / "bad.npz", a=X)
    with pytest.raises(ValueError, match=r"holds arrays \['a'\]"):
        load_npz(tmp_path / "bad.npz")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    X3, y3 = load_npy(tmp_path / "X.npy", tmp_path / "y.npy", mmap=True)
    assert isinstance(X3, np.memmap)
    np.testing.assert_array_equal(y3, y)
    np.save(tmp_path / "both.npy", np.column_stack([X, y]))
    X4, y4 = load_file(tmp_path / "both.npy")
    np.testing.assert_array_equal(X4, X)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable .npy"):
        load_npy(tmp_path / "obj.npy")


def test_csv_with_and_without_header(tmp_path, table):
    X, y = table
    rows = "\n".join(",".join(f"{v:.17g}" for v in (*x, t)) for x, t in zip(X, y))
    (tmp_path / "a.csv").write_text("f1,f2,f3,label\n" + rows + "\n")
    (tmp_path / "b.csv").write_text(rows + "\n")
    for name in ("a.csv", "b.csv"):
        X2, y2 = load_csv(tmp_path / name)
        np.testing.assert_array_equal(X2, X)
        np.testing.assert_array_equal(y2, y)
    (tmp_path / "c.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match="not a table of numbers"):
        load_csv(tmp_path / "c.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_csv(tmp_path / "empty.csv")


def idx_bytes(array, code):
    head = (
        b"\x00\x00"
        + bytes([code, array.ndim])
        + b"".join(struct.pack(">I", d) for d in array.shape)
    )
    return head + array.tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_idx_images_and_labels(tmp_path, compress):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([1, 0, 9], dtype=np.uint8)
    write = (
        (lambda p, b: p.write_bytes(gzip.compress(b)))
        if compress
        else (lambda p, b: p.write_bytes(b))
    )
    write(tmp_path / "img-idx3-ubyte", idx_bytes(images, 0x08))
    write(tmp_path / "lab-idx1-ubyte", idx_bytes(labels, 0x08))
    X, y = load_file(tmp_path / "img-idx3-ubyte", labels=tmp_path / "lab-idx1-ubyte")
    assert X.shape == (3, 20)
    np.testing.assert_array_equal(X, images.reshape(3, 20))
    np.testing.assert_array_equal(y, labels)
    floats = np.array([[1.5, -2.0]], dtype=">f4")
    write(tmp_path / "f.idx", idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(load_idx(tmp_path / "f.idx"), [[1.5, -2.0]])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "longer"),
        (b"\x00\x00\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", "truncated"),
        (b"PK\x03\x04", "not an IDX file"),
        (b"\x00\x00\x08", "not an IDX file"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
    ],
    ids=["short-data", "trailing-data", "terabyte-claim", "zip", "tiny", "short-header"],
)
def test_idx_hostile_files(tmp_path, content, message):
    (tmp_path / "x.idx").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_idx(tmp_path / "x.idx")


def test_missing_files(tmp_path):
    for loader in (load_npz, load_npy, load_csv, load_idx):
        with pytest.raises(FileNotFoundError):
            loader(tmp_path / "nope")
    with pytest.raises(ValueError, match="needs a labels file"):
        (tmp_path / "images.bin").write_bytes(b"")
        load_file(tmp_path / "images.bin")
