"""Model files: safetensors (no pickle, nothing executes on load), written atomically.

A file holds one tensor per parameter and buffer of each layer, ``layers.<l>.<name>``
(``layers.0.W`` (n_out, n_in), ``layers.0.b`` (n_out,) for a dense layer), and string
metadata: ``format`` (``"fastnn"``), ``format_version``, ``fastnn_version``,
``architecture`` (JSON: the model class, each layer's kind and config, the loss, the
dtype, and for an ``MLP`` the arguments that build it) and ``checksum``.

The checksum is ``"sha256:"`` and the SHA-256 hex digest of, for each tensor in name
order, the line ``tensor <name> <dtype> [<d0>,<d1>,...]\n`` and the tensor's bytes, then
for each other metadata entry in key order the line ``metadata <key> <byte length>\n``
and the value's UTF-8 bytes. A file whose bytes do not match it is refused, so a flipped
bit anywhere that matters (a weight, a shape, a setting) is caught. Format 1 (fastnn 0.1)
had no checksum and stored dense layers only, as ``[n_in, n_out, activation]``; its model
files are still read.

Loading checks all of it against the tensors before creating anything, and nothing in a
file is executed: layer kinds are looked up in the registry of fastnn's layer classes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

from .errors import ModelFileError
from .layers import Layer, layer_from_config
from .losses import LOSSES, get_loss
from .model import DTYPES, MLP, Sequential, check_layers

FORMAT = "fastnn"
FORMAT_VERSION = 2
_UNCHECKED_VERSION = 1  # model files of fastnn 0.1: no checksum
# A fastnn header is a few kB; refuse to parse a header claiming more than this.
_MAX_HEADER_BYTES = 1 << 20
# safetensors' names for the dtypes fastnn writes
_SAFETENSORS_DTYPES = {"float32": "F32", "float64": "F64", "int64": "I64"}


def checksum(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """The ``checksum`` entry for these tensors and metadata (see the module docstring)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        shape = ",".join(str(d) for d in a.shape)
        kind = _SAFETENSORS_DTYPES[a.dtype.name]
        digest.update(f"tensor {name} {kind} [{shape}]\n".encode())
        digest.update(a.tobytes())
    for key in sorted(set(metadata) - {"checksum"}):
        value = metadata[key].encode()
        digest.update(f"metadata {key} {len(value)}\n".encode())
        digest.update(value)
    return "sha256:" + digest.hexdigest()


def save_model(model: Sequential, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path``: a temporary file in the same folder, flushed, synced,
    then renamed over ``path``, so an interrupted save leaves the previous file intact."""
    write_file(Path(path), model, FORMAT)


def write_file(
    path: Path,
    model: Sequential,
    fmt: str,
    tensors: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Atomically write ``model``'s architecture and weights, plus extra ``tensors`` and
    string ``metadata``, as a safetensors file of format ``fmt``."""
    from . import __version__

    all_tensors = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    all_tensors.update({k: np.ascontiguousarray(v) for k, v in (tensors or {}).items()})
    all_metadata_architecture = architecture_of(model)
    all_metadata = {
        "format": fmt,
        "format_version": str(FORMAT_VERSION),
        "fastnn_version": __version__,
        "architecture": json.dumps(all_metadata_architecture),
        **(metadata or {}),
    }
    all_metadata["checksum"] = checksum(all_tensors, all_metadata)
    atomic_write(path, safetensors_bytes(all_tensors, metadata=all_metadata))


def architecture_of(model: Sequential) -> dict[str, Any]:
    """What a file stores of ``model`` besides its tensors: plain values only."""
    architecture: dict[str, Any] = {
        "class": "MLP" if isinstance(model, MLP) else "Sequential",
        "layers": [{"kind": layer.kind, "config": layer.config()} for layer in model.layers],
        "loss": model.loss.name,
        "dtype": model.dtype,
    }
    if isinstance(model, MLP):
        architecture["mlp"] = model._mlp
    return architecture


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new one, whole."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc} (folder {folder})") from exc
    try:
        # mkstemp makes the file private; give it the mode a plain open() would have.
        os.chmod(tmp, _new_file_mode(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OSError(
                f"cannot write {path}: {exc.strerror or exc}; "
                "the previous file, if any, is unchanged"
            ) from exc
        raise
    _fsync_folder(folder)


def _new_file_mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_model(path: str | os.PathLike, backend: Any = None) -> Sequential:
    """Read a model written by :func:`save_model` onto ``backend`` (default: the default backend).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ModelFileError
        The file is damaged, truncated, not a fastnn model, or from an incompatible version.
    """
    contents = read_file(Path(path), FORMAT)
    return build_model(contents, backend)


@dataclass
class FileContents:
    """What :func:`read_file` found, all checked against each other."""

    architecture: dict[str, Any]
    layers: list[Layer]
    state: dict[str, np.ndarray]  # layers.<l>.<name>: every parameter and buffer
    metadata: dict[str, str]
    extra: dict[str, np.ndarray]


def read_file(
    path: Path,
    fmt: str,
    extra_tensors: Callable[[dict[str, str], list[tuple[int, ...]]], dict[str, list[int]]]
    | None = None,
) -> FileContents:
    """Read and check a file written by :func:`write_file` with format ``fmt``.

    ``extra_tensors(metadata, parameter_shapes)`` names the tensors beyond the layers'
    the file must hold, with their shapes (checked, like the layers', before anything is
    read); ``parameter_shapes`` are the model's parameters' shapes, in order.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no {'model' if fmt == FORMAT else fmt} file at {path}")
    _check_header_size(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            version = _read_format(path, metadata, fmt)
            read: dict[str, np.ndarray] = {}
            if version > _UNCHECKED_VERSION:
                read = _check_checksum(path, f, metadata)
            architecture = _read_architecture(path, metadata)
            layers, expected = _layers_from(path, architecture, version)
            parameter_shapes = [
                tuple(expected[f"layers.{i}.{name}"])
                for i, layer in enumerate(layers)
                for name in layer.parameter_names
            ]
            extra = extra_tensors(metadata, parameter_shapes) if extra_tensors else {}
            _check_tensors(path, f, expected, architecture["dtype"], extra)
            state = {k: read[k] if k in read else f.get_tensor(k) for k in expected}
            extra_arrays = {k: read[k] if k in read else f.get_tensor(k) for k in extra}
    except SafetensorError as exc:
        raise ModelFileError(f"{path} is not a readable safetensors file: {exc}") from None
    for name, value in state.items():
        if not np.isfinite(value).all():
            raise ModelFileError(f"{path}: {name} holds NaN or infinite values")
    return FileContents(architecture, layers, state, metadata, extra_arrays)


def build_model(contents: FileContents, backend: Any = None) -> Sequential:
    """The model a file describes, with its parameters and buffers, on ``backend``."""
    architecture, layers = contents.architecture, contents.layers
    kwargs = {"loss": architecture["loss"], "backend": backend, "dtype": architecture["dtype"]}
    model: Sequential | None = None
    if architecture["class"] == "MLP":
        mlp = architecture.get("mlp") or _mlp_of_dense_layers(layers)
        # The MLP arguments must give exactly the file's (checked) layers, compared before
        # anything is built: a file cannot make fastnn allocate what its tensors lack.
        with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
            if isinstance(mlp, dict) and _mlp_layers(mlp) == _configs(layers):
                model = MLP(**mlp, **kwargs)
    if model is None:
        model = Sequential(layers, **kwargs)
    model.load_state_dict(contents.state)
    return model


def _configs(layers: list[Layer]) -> list[tuple[str, dict[str, Any]]]:
    return [(layer.kind, layer.config()) for layer in layers]


def _mlp_layers(mlp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The kinds and configs of the layers these MLP arguments make (none is built)."""
    args = {k: v for k, v in mlp.items() if k != "preprocess"}
    first = mlp.get("preprocess")
    head = [] if first is None else [(first["kind"], first["config"])]
    return head + _configs(MLP.layers_for(**args))


def _mlp_of_dense_layers(layers: list[Layer]) -> dict[str, Any] | None:
    """MLP arguments for a format-1 file's dense layers, if they fit an MLP."""
    configs = [layer.config() for layer in layers]
    hidden = {c["activation"] for c in configs[:-1]}
    if len(hidden) > 1:
        return None
    return {
        "sizes": [configs[0]["n_in"]] + [c["n_out"] for c in configs],
        "activation": hidden.pop() if hidden else "relu",
        "output": configs[-1]["activation"],
    }


def _check_header_size(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise ModelFileError(f"{path} is truncated or empty ({size} bytes): not a fastnn model")
    n = int.from_bytes(head, "little")
    if n > _MAX_HEADER_BYTES:
        raise ModelFileError(
            f"{path}: header claims {n} bytes, over the 1 MiB a fastnn header can need: "
            "damaged, or not a fastnn model"
        )
    if 8 + n > size:
        raise ModelFileError(
            f"{path}: header claims {n} bytes but the file has {size}: "
            "truncated, damaged, or not a fastnn model"
        )


def _read_format(path: Path, metadata: dict[str, str], fmt: str) -> int:
    """The file's format version, after checking it is a ``fmt`` file this fastnn reads."""
    if metadata.get("format") != fmt:
        what = "a fastnn model" if fmt == FORMAT else f"a {fmt} file"
        raise ModelFileError(f"{path} is a safetensors file but not {what}")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ModelFileError(
            f"{path}: unreadable format_version {metadata.get('format_version')!r}"
        ) from None
    oldest = _UNCHECKED_VERSION if fmt == FORMAT else FORMAT_VERSION
    if not oldest <= version <= FORMAT_VERSION:
        newer = "a newer" if version > FORMAT_VERSION else "an older"
        why = "" if fmt == FORMAT else " (its batch orders were drawn another way)"
        raise ModelFileError(
            f"{path} was written by {newer} fastnn ({metadata.get('fastnn_version', '?')}, "
            f"format {version}){why}; this fastnn reads {fmt} files of format "
            f"{oldest}{'' if oldest == FORMAT_VERSION else f' to {FORMAT_VERSION}'}"
        )
    return version


def _check_checksum(path: Path, f: Any, metadata: dict[str, str]) -> dict[str, np.ndarray]:
    """Refuse the file unless its tensors and metadata hash to its recorded checksum;
    returns the tensors it read, so they are read once."""
    recorded = metadata.get("checksum")
    if recorded is None:
        raise ModelFileError(f"{path}: no checksum in the metadata; the file is damaged")
    tensors = {}
    for name in f.keys():
        dtype = f.get_slice(name).get_dtype()
        if dtype not in _SAFETENSORS_DTYPES.values():
            raise ModelFileError(f"{path}: tensor {name} has dtype {dtype}, not one fastnn writes")
        tensors[name] = f.get_tensor(name)
    if checksum(tensors, metadata) != recorded:
        raise ModelFileError(
            f"{path}: the checksum does not match the contents: the file was damaged "
            "(a changed byte) after it was written"
        )
    return tensors


def _read_architecture(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    try:
        architecture = json.loads(metadata["architecture"])
    except (KeyError, ValueError):
        raise ModelFileError(f"{path}: missing or unreadable architecture metadata") from None
    ok = (
        isinstance(architecture, dict)
        and architecture.get("class") in ("MLP", "Sequential")
        and architecture.get("loss") in LOSSES
        and architecture.get("dtype") in DTYPES
        and isinstance(architecture.get("layers"), list)
        and architecture["layers"]
    )
    if not ok:
        raise ModelFileError(f"{path}: architecture metadata is malformed: {architecture!r:.200}")
    return architecture


def _layers_from(
    path: Path, architecture: dict[str, Any], version: int
) -> tuple[list[Layer], dict[str, list[int]]]:
    """The file's layers, checked to chain and to suit the loss, and the names and shapes
    of the tensors they need; nothing is allocated."""
    layers = []
    kind: Any
    config: Any
    for i, spec in enumerate(architecture["layers"]):
        if version == _UNCHECKED_VERSION:  # fastnn 0.1: [n_in, n_out, activation]
            valid = isinstance(spec, list) and len(spec) == 3
            kind, config = (
                "Dense",
                dict(zip(("n_in", "n_out", "activation"), spec or [], strict=False)),
            )
        else:
            valid = isinstance(spec, dict) and set(spec) == {"kind", "config"}
            kind, config = (spec["kind"], spec["config"]) if valid else (None, None)
            valid = valid and isinstance(kind, str) and isinstance(config, dict)
        if not valid:
            raise ModelFileError(f"{path}: layer {i} is malformed: {spec!r:.100}")
        try:
            layers.append(layer_from_config(kind, config))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: layer {i} is malformed: {exc}") from None
    try:
        widths = check_layers(layers, get_loss(architecture["loss"]))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: the architecture is inconsistent: {exc}") from None
    expected = {
        f"layers.{i}.{name}": list(shape)
        for i, (layer, width) in enumerate(zip(layers, widths, strict=False))
        for name, shape in layer.shapes(width).items()
    }
    return layers, expected


def _check_tensors(
    path: Path, f: Any, expected: dict[str, list[int]], dtype: str, extra: dict[str, list[int]]
) -> None:
    expected = {**expected, **extra}
    names = set(f.keys())
    if names != set(expected):
        missing = sorted(set(expected) - names)
        unexpected = sorted(names - set(expected))
        raise ModelFileError(
            f"{path}: tensors do not match the architecture "
            f"(missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    want_dtype = {"float32": "F32", "float64": "F64"}[dtype]
    for name, shape in expected.items():
        sl = f.get_slice(name)
        if list(sl.get_shape()) != shape or sl.get_dtype() != want_dtype:
            raise ModelFileError(
                f"{path}: tensor {name} is {sl.get_dtype()} {sl.get_shape()}, "
                f"expected {want_dtype} {shape}"
            )
