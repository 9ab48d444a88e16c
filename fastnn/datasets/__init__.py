"""Data: the bundled digits, small generated problems, and loaders for your own files."""

from .bundled import load_digits
from .files import load_csv, load_features, load_file, load_idx, load_npy, load_npz
from .split import train_test_split
from .synthetic import make_lecture_toy, make_spirals, make_xor

__all__ = [
    "load_csv",
    "load_digits",
    "load_features",
    "load_file",
    "load_idx",
    "load_npy",
    "load_npz",
    "make_lecture_toy",
    "make_spirals",
    "make_xor",
    "train_test_split",
]
