"""The ``fastnn`` command line: ``fastnn train`` trains and saves a model."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .activations import ACTIVATIONS
from .backends import known_backends
from .backends.auto import AUTO, Auto
from .datasets import load_digits, load_file, make_spirals, make_xor, train_test_split
from .errors import ModelFileError, TrainingDivergedError
from .layers import Rescale, Standardize
from .losses import LOSSES
from .model import DTYPES, MLP
from .optimizers import OPTIMIZERS

BUILTIN_DATA = {
    "digits": "the bundled UCI handwritten digits (1,797 8x8 images, 10 classes)",
    "xor": "the 4 points of XOR (trained and tested on the same points)",
    "spirals": "two interleaved spirals, 400 points, 2 classes",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Train multilayer perceptrons from first principles.",
        epilog="Run 'fastnn COMMAND --help' for the options of a command, each explained.",
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train an MLP and save it (with no options: the bundled digits)",
        description=(
            "Train an MLP, print its test accuracy, save the model (.safetensors) and the "
            "cost curve (PNG). With no options it trains on the bundled UCI digits."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = train.add_argument_group("data")
    data.add_argument(
        "--data",
        default="digits",
        metavar="NAME_OR_FILE",
        help="a built-in dataset ("
        + "; ".join(f"{k}: {v}" for k, v in BUILTIN_DATA.items())
        + ") or a file: .npz (arrays X and y), .npy or .csv (last column is the label), "
        "or an IDX images file (MNIST format, gzipped or not) with --labels",
    )
    data.add_argument("--labels", type=Path, help="labels file for .npy or IDX data")
    data.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        help="share of the samples held out to measure test accuracy",
    )
    data.add_argument(
        "--validation-size",
        type=float,
        default=None,
        help="share of the training part held out to watch every epoch (and, with "
        "--patience, to pick the epoch to stop at); default 0.1 with --patience, else "
        "none. The test part is used once, at the end",
    )
    data.add_argument(
        "--scale",
        choices=["standard", "minmax", "none"],
        default="minmax",
        help="feature scaling fitted on the training part and saved as the model's first "
        "layer (so the model takes raw data): standard (zero mean, unit variance), minmax "
        "(to [0, 1]) or none",
    )
    net = train.add_argument_group("network")
    net.add_argument(
        "--hidden",
        type=int,
        nargs="*",
        default=[64],
        metavar="N",
        help="hidden layer sizes, e.g. --hidden 128 64 (none: a linear model)",
    )
    net.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        default="relu",
        help="activation of the hidden layers",
    )
    net.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="dropout probability after each hidden layer, in [0, 1) (0: none)",
    )
    net.add_argument(
        "--batch-norm",
        action="store_true",
        help="batch normalization between each hidden layer's product and its activation",
    )
    net.add_argument(
        "--loss",
        choices=list(LOSSES),
        default="cross_entropy",
        help="cross_entropy for classes, mse for regression",
    )
    opt = train.add_argument_group("optimization")
    opt.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default="momentum",
        help="sgd is the lecture's W = W - lr dW; momentum and nesterov add "
        "momentum 0.9; adam adapts the step per weight",
    )
    opt.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: 0.05, or 0.001 for adam)"
    )
    opt.add_argument("--epochs", type=int, default=40, help="passes over the training data")
    opt.add_argument("--batch-size", type=int, default=32, help="samples per gradient step")
    opt.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty on weights")
    opt.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without a better validation loss, keeping "
        "the best epoch's weights",
    )
    run = train.add_argument_group("run")
    run.add_argument(
        "--backend",
        choices=[*known_backends(), AUTO],
        default=None,
        help="array backend (default: $FASTNN_BACKEND, else auto: the backend that trained "
        "fastest at this network size and batch size in a measured table, see fastnn bench "
        "--auto-table)",
    )
    run.add_argument("--dtype", choices=list(DTYPES), default="float32")
    run.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training under mpiexec (every rank runs this same command; "
        "rank 0 prints and writes the files); needs pip install 'fastnn[mpi]'",
    )
    run.add_argument("--seed", type=int, default=0, help="seeds weights, batches and the split")
    run.add_argument(
        "--model-out",
        type=Path,
        default=Path("model.safetensors"),
        help="where to write the trained model",
    )
    run.add_argument(
        "--plot-out", type=Path, default=Path("cost.png"), help="where to write the cost curve"
    )
    run.add_argument("--no-plot", action="store_true", help="do not draw the cost curve")
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when the terminal shows it)",
    )
    run.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a checkpoint here every --checkpoint-every epochs, at the end "
        "and on Ctrl-C (weights, optimizer state, position, history)",
    )
    run.add_argument(
        "--checkpoint-every", type=int, default=1, metavar="N", help="epochs between checkpoints"
    )
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="PATH",
        help="continue the run saved in this checkpoint (its network and "
        "optimizer; give the same data, --seed, --epochs and --batch-size)",
    )
    add_model_parsers(commands)
    add_bench_parser(commands)
    add_lecture_parsers(commands)
    return parser


def add_lecture_parsers(commands: Any) -> None:
    """``fastnn lecture`` and ``fastnn trace``: seeing the equations happen."""
    lecture = commands.add_parser(
        "lecture",
        help="run the lecture's examples: perceptron, 2-5-1 network with its trace, cost curve",
        description="The lecture, end to end: the perceptron on AND and XOR (a picture of "
        "its decision boundaries), the 2-5-1 sigmoid network on the lecture's two samples "
        "(alpha 0.01, full batch, mean squared error) with the trace of its first iteration, "
        "and the cost curve. The pictures need matplotlib.",
    )
    lecture.add_argument(
        "--out", type=Path, default=Path("fastnn-lecture"), help="folder for the PNGs"
    )
    lecture.add_argument("--iterations", type=int, default=5000, help="gradient-descent steps")
    lecture.add_argument("--backend", choices=known_backends(), default=None)
    trace = commands.add_parser(
        "trace",
        help="print one forward and backward pass of a saved model in the lecture's notation",
        description="Run a saved model forward and backward on the first rows of labelled "
        "data, without updating it, and print every z, h, dz, dW, db and dh with its shape "
        "in the lecture's column notation (values for small layers, summaries for large ones).",
    )
    add_model_and_labelled_data(trace)
    trace.add_argument("--rows", type=int, default=2, help="how many samples (the first rows)")


def add_model_and_labelled_data(command: argparse.ArgumentParser) -> None:
    """The arguments of a command that runs a saved model on labelled data."""
    command.add_argument("model", type=Path, help="a .safetensors model file")
    command.add_argument(
        "data", help="a built-in dataset (" + ", ".join(BUILTIN_DATA) + ") or a data file"
    )
    command.add_argument("--labels", type=Path, help="labels file for .npy or IDX data")
    command.add_argument("--backend", choices=known_backends(), default=None)


def add_model_parsers(commands: Any) -> None:
    """``fastnn predict``, ``fastnn evaluate`` and ``fastnn info``: using a saved model."""
    predict = commands.add_parser(
        "predict",
        help="predict with a saved model, to a CSV",
        description="Predict with a saved model: a CSV with a header row, then one row per "
        "sample in input order: the predicted class (then the probabilities with --proba) "
        "or the regression outputs. The model applies its own preprocessing: give raw data.",
    )
    predict.add_argument("model", type=Path, help="a .safetensors model file")
    predict.add_argument(
        "data",
        help="a .csv, .npy, .npz or IDX file of inputs (a last label column, if the model "
        "takes one column fewer, is ignored), or a built-in dataset ("
        + ", ".join(BUILTIN_DATA)
        + ")",
    )
    predict.add_argument("--out", type=Path, default=Path("predictions.csv"), help="CSV to write")
    predict.add_argument("--proba", action="store_true", help="add each class's probability")
    predict.add_argument("--backend", choices=known_backends(), default=None)
    evaluate = commands.add_parser(
        "evaluate",
        help="loss and accuracy of a saved model on labelled data",
        description="Print the loss (and accuracy) of a saved model on labelled data. With "
        "--test-part, only the test part of the split fastnn train makes (same --test-size "
        "and --seed): it reproduces the test accuracy train printed.",
    )
    add_model_and_labelled_data(evaluate)
    evaluate.add_argument("--test-part", action="store_true", help="the test part only")
    evaluate.add_argument("--test-size", type=float, default=0.2)
    evaluate.add_argument("--seed", type=int, default=0)
    export = commands.add_parser(
        "export",
        help="export a saved model to ONNX",
        description="Write a saved model as ONNX (opset 17, dynamic batch): what predict_proba "
        "(predict for regression) computes, from raw inputs. Needs pip install 'fastnn[onnx]'.",
    )
    export.add_argument("model", type=Path, help="a .safetensors model file")
    export.add_argument("out", type=Path, help="the .onnx file to write")
    info = commands.add_parser("info", help="describe a model or checkpoint file")
    info.add_argument("model", type=Path, help="a .safetensors model or a checkpoint file")


BENCH_HELP = """\
Time fastnn's backends against PyTorch (eager, CPU threads = cores), JAX (a jit-compiled
SGD step: jax-jit on device-resident batches, jax-jit-host fed NumPy arrays; its epoch
loops over host batches), scikit-learn's MLPClassifier(solver="sgd") and the plain NumPy
code a tutorial would write, on synthetic MNIST-shaped data, all from the same initial
weights. Every workload is first checked against the NumPy float64 reference (one SGD
step), then timed (median of rounds, after warm-up) in this one process.

Architectures: S 784-128-10 (batch 128), M 784-512-256-10 (batch 256),
L 784-2048-2048-10 (batch 1024), lecture 2-5-1 sigmoid (2 samples, full batch).
Kinds: train_step (forward, backward, SGD update on one batch, called directly), epoch
(model.fit over 8192 samples, 4096 for L; 128 epochs of the lecture's 2 samples per call),
infer_batch1 (latency of one sample), infer_large (throughput at batch 8192),
update_<optimizer> (the optimizer's update alone, on one batch's gradients).

Reading the table: time/step is per SGD update (per call for inference); samples/s is
throughput; GFLOP/s counts the matrix products
(training: (6 W - 2 W_1) n, since nobody computes the first layer's input gradient;
inference: 2 W n; W = number of weights); '% peak' compares that with the fastest
2048^3 GEMM measured in the same run (NumPy's BLAS, PyTorch's, JAX's, whichever are
installed); 'x fastnn[numpy]', 'x pytorch' and 'x jax-jit' are speed ratios against
those rows (above 1: faster). The header names the BLAS kernel and any OPENBLAS_*
override (OPENBLAS_CORETYPE=Haswell halves an AVX-512 machine's GEMM rate: unset it for
the command). Peers that are not installed are listed as skipped, with the install
command."""


def add_bench_parser(commands: Any) -> None:
    """The ``fastnn bench`` subcommand."""
    from .benchmarking.suite import KINDS, PEERS
    from .benchmarking.workloads import ARCHITECTURES, CPU_ARCHITECTURES

    bench = commands.add_parser(
        "bench",
        help="benchmark backends against PyTorch, scikit-learn and plain NumPy",
        description=BENCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--arch",
        nargs="+",
        choices=list(ARCHITECTURES),
        default=list(CPU_ARCHITECTURES),
        help="architectures (default: " + ", ".join(CPU_ARCHITECTURES) + "; XL "
        "784-4096-4096-4096-10, batch 8192, is for GPUs)",
    )
    bench.add_argument(
        "--kind", nargs="+", choices=KINDS, default=list(KINDS), help="what to time (default: all)"
    )
    bench.add_argument(
        "--dtype",
        nargs="+",
        choices=list(DTYPES),
        default=["float32"],
        help="dtypes (default: float32)",
    )
    bench.add_argument(
        "--backend",
        nargs="+",
        choices=known_backends(),
        default=None,
        help="fastnn backends (default: every one available here)",
    )
    bench.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        default=["pytorch", "scikit-learn", "numpy-tutorial"],
        help="peers to compare with (pytorch-cuda needs a GPU; none: --peers)",
    )
    bench.add_argument(
        "--min-time",
        type=float,
        default=0.5,
        help="seconds of timing per workload (more: steadier numbers)",
    )
    bench.add_argument(
        "--json",
        type=Path,
        default=Path("bench-results.json"),
        help="where to save the full results",
    )
    bench.add_argument(
        "--png",
        type=Path,
        default=Path("bench.png"),
        help="where to draw the chart (needs matplotlib)",
    )
    bench.add_argument("--no-plot", action="store_true", help="do not draw the chart")
    bench.add_argument(
        "--compare",
        type=Path,
        metavar="OLD_JSON",
        help="also show the change against an earlier --json file",
    )
    bench.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    bench.add_argument(
        "--distributed",
        action="store_true",
        help="instead: 1 process x 2 BLAS threads against 2 MPI ranks x 1 thread on the "
        "--arch architectures (default M and L), with the share spent waiting for the "
        "gradient allreduce, overlapped per layer and as one flat allreduce; needs "
        "pip install 'fastnn[mpi]'",
    )
    bench.add_argument(
        "--auto-table",
        type=Path,
        metavar="FILE",
        help="instead: measure the table backend='auto' picks from (training steps of "
        "each --backend for networks of 25k to 5.8M weights at batch 16 to 1024) and write "
        "it to FILE; use it with FASTNN_AUTO_TABLE=FILE",
    )
    bench.add_argument(
        "--readme",
        type=Path,
        metavar="README",
        help="rewrite the Performance section of this README with the results",
    )


def load_dataset(name: str, labels: Path | None = None, seed: int = 0) -> tuple:
    """``X, y`` of a built-in dataset (``BUILTIN_DATA``) or of a data file."""
    if name == "digits":
        return load_digits(scale=False)
    if name == "spirals":
        return make_spirals(seed=seed)
    if name == "xor":
        return make_xor()
    return load_file(name, labels)


def load_data(args: argparse.Namespace, loss: str | None = None) -> tuple[np.ndarray, ...]:
    """``X_train, X_test, y_train, y_test`` for the ``--data`` choice (xor's 4 points are
    both parts); classes are split stratified unless the loss (``args.loss``) is mse."""
    X, y = load_dataset(args.data, args.labels, args.seed)
    if args.data == "xor":
        return X, X, y, y
    classes = (loss or args.loss) != "mse"
    return train_test_split(X, y, test_size=args.test_size, stratify=classes, seed=args.seed)


def validation_share(args: argparse.Namespace) -> float:
    """The share of the training part held out for validation (0: none)."""
    share = args.validation_size
    if share is None:
        return 0.1 if args.patience is not None else 0.0
    if not 0 <= share < 1:
        raise ValueError(f"--validation-size must be in [0, 1), got {share}")
    return share


def split_validation(
    args: argparse.Namespace, X_train: np.ndarray, y_train: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """``X_train, y_train, validation_data``: the validation part taken from the
    training part (never from the test part), or None."""
    share = validation_share(args)
    if share == 0 or args.data == "xor":  # xor's 4 points are all there is
        return X_train, y_train, None
    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=share, stratify=args.loss != "mse", seed=args.seed
    )
    return X_fit, y_fit, (X_val, y_val)


def preprocessing(kind: str, X_train: np.ndarray) -> Any:
    """The model's first layer, fitted on the training part only (train and validation,
    never the test part): it is saved with the model, which then takes raw data."""
    if kind == "none":
        return None
    return (Standardize if kind == "standard" else Rescale).fit(X_train)


def n_outputs(args: argparse.Namespace, y: np.ndarray) -> int:
    """Output units: the number of classes for cross_entropy, else the target width."""
    if args.loss == "cross_entropy":
        if y.ndim == 1:
            return max(int(np.max(y)) + 1, 2)
        return y.shape[1]
    return 1 if y.ndim == 1 else y.shape[1]


def plot_cost_curve(history: dict, path: Path, title: str) -> None:
    """Draw the loss per epoch (and the test loss) like the lecture's cost plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = range(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training loss")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], label="validation loss")
    ax.grid(True)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PLOT_HINT = "pip install 'fastnn[plot]'"


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def train_backend(args: argparse.Namespace) -> str | Auto:
    """``--backend``, else ``$FASTNN_BACKEND``, else ``auto`` for this batch size."""
    name = args.backend or os.environ.get("FASTNN_BACKEND", "").strip() or AUTO
    return Auto(batch_size=args.batch_size) if name == AUTO else name


def train(args: argparse.Namespace) -> int:
    """Run ``fastnn train``; returns the exit code."""
    rank = 0
    if args.distributed:
        from .distributed import Communicator, use_local_gpu

        comm = Communicator()
        rank = comm.rank
        if args.backend == "cupy":
            use_local_gpu(comm)  # one GPU per rank, before the model is made
    say = print if rank == 0 else _quiet  # only rank 0 reports and writes files
    X_train, X_test, y_train, y_test = load_data(args)
    X_train, X_test = np.asarray(X_train, np.float64), np.asarray(X_test, np.float64)
    X_fit, y_fit, validation = split_validation(args, X_train, y_train)
    if args.resume is not None:
        from .checkpoint import load_checkpoint
        from .io import build_model

        model = build_model(load_checkpoint(args.resume).contents, train_backend(args))
    else:
        sizes = [X_train.shape[1], *args.hidden, n_outputs(args, np.asarray(y_train))]
        model = MLP(
            sizes,
            activation=args.activation,
            loss=args.loss,
            backend=train_backend(args),
            dtype=args.dtype,
            seed=args.seed,
            dropout=args.dropout,
            batch_norm=args.batch_norm,
            preprocess=preprocessing(args.scale, X_train),
        )
    lr = args.lr if args.lr is not None else (0.001 if args.optimizer == "adam" else 0.05)
    parts = f"{X_fit.shape[0]} training, "
    if validation is not None:
        parts += f"{validation[0].shape[0]} validation, "
    say(f"data: {args.data} ({parts}{X_test.shape[0]} test samples)")
    say(f"model: {model}")
    if model.backend_choice is not None:
        say(f"backend: {model.backend_choice}")
    start = time.perf_counter()
    history = model.fit(
        X_fit,
        y_fit,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=None if args.resume else args.optimizer,
        lr=None if args.resume else lr,
        weight_decay=None if args.resume else args.weight_decay or None,
        validation_data=validation,
        patience=args.patience,
        progress=args.progress,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        distributed=args.distributed,
    )
    seconds = time.perf_counter() - start
    scores = model.evaluate(X_test, y_test)  # the test part's one use
    summary = f"test loss {scores['loss']:.4f}"
    if "accuracy" in scores:
        summary = f"test accuracy {scores['accuracy']:.4f}, " + summary
    say(f"trained {len(history['loss'])} epochs in {seconds:.2f} s: {summary}")
    held = model.backend.memory_in_use()
    if held:  # workspaces (numba), CuPy's memory pool (cupy)
        say(f"memory held for reuse by the {model.backend.name} backend: {held / 2**20:.2f} MiB")
    if rank != 0:
        return 0
    model.save(args.model_out)
    say(f"model written to {args.model_out}")
    if args.no_plot:
        pass
    elif not _have_matplotlib():
        say(f"cost curve not drawn: matplotlib is not installed ({PLOT_HINT})")
    else:
        plot_cost_curve(history, args.plot_out, f"Cost function ({args.data}, {args.optimizer})")
        say(f"cost curve written to {args.plot_out}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Run ``fastnn predict``."""
    import csv

    from .datasets import load_features
    from .io import load_model

    model = load_model(args.model, backend=args.backend)
    if args.data in BUILTIN_DATA:
        X, _ = load_dataset(args.data)
    else:
        X = load_features(args.data, model.n_features)
    if args.proba and not model.is_classifier:
        raise ValueError(f"--proba needs a classifier; {args.model} is a {model.loss.name} model")
    predictions = model.predict(X)
    columns = [predictions.reshape(len(X), -1)]
    names = (
        ["prediction"]
        if columns[0].shape[1] == 1
        else [f"prediction_{j}" for j in range(columns[0].shape[1])]
    )
    if args.proba:
        columns.append(model.predict_proba(X))
        names += [f"probability_{j}" for j in range(model.n_outputs)]
    labels = len(names) - (model.n_outputs if args.proba else 0)  # class columns first
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in np.column_stack(columns):
            cells = [
                int(v) if model.is_classifier and k < labels else repr(float(v))
                for k, v in enumerate(row)
            ]
            writer.writerow(cells)
    print(f"{len(X)} predictions written to {args.out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Run ``fastnn evaluate``."""
    from .io import load_model

    model = load_model(args.model, backend=args.backend)
    if args.test_part:
        _, X, _, y = load_data(args, model.loss.name)
    else:
        X, y = load_dataset(args.data, args.labels, args.seed)
    scores = model.evaluate(X, y)
    summary = f"loss {scores['loss']:.4f}"
    if "accuracy" in scores:
        summary = f"accuracy {scores['accuracy']:.4f}, " + summary
    part = "test part of " if args.test_part else ""
    print(f"{part}{args.data} ({len(X)} samples): {summary}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Run ``fastnn export``."""
    from .io import load_model

    model = load_model(args.model, backend="numpy")
    model.to_onnx(args.out)
    print(f"{args.model} exported to {args.out} (ONNX opset 17)")
    return 0


def info(args: argparse.Namespace) -> int:
    """Run ``fastnn info``: architecture, parameters, dtype, preprocessing, checksum, and
    for a checkpoint its position and history."""
    from .checkpoint import load_checkpoint
    from .io import FORMAT, build_model, read_file

    path = args.model
    try:
        contents, saved = read_file(path, FORMAT), None
    except ModelFileError as exc:
        if "not a fastnn model" not in str(exc):
            raise
        saved = load_checkpoint(path)
        contents = saved.contents
    model = build_model(contents, "numpy")
    version = contents.metadata.get("format_version")
    kind = "checkpoint" if saved is not None else "model"
    checksum = "verified" if version != "1" else "none (format 1, fastnn 0.1)"
    print(f"{path}: fastnn {kind}, format {version}, checksum {checksum}")
    print(f"model: {model}")
    print(f"parameters: {model.n_parameters():,}; dtype {model.dtype}; loss {model.loss.name}")
    head = model.layers[0]
    scaling = head.kind if head.buffer_names == ("shift", "scale") else "none"
    print(f"preprocessing: {scaling}")
    if saved is not None:
        p, history = saved.position, saved.history
        print(f"position: epoch {p.epoch} of {p.epochs}, batch {p.batch}")
        print(f"optimizer: {saved.optimizer!r}")
        for key, values in history.items():
            if values:
                first, last = values[0], values[-1]
                print(f"history {key}: {len(values)} epochs, first {first:.4g}, last {last:.4g}")
    else:
        print(f"layers: {', '.join(layer.kind for layer in model.layers)}")
    return 0


def lecture(args: argparse.Namespace) -> int:
    """Run ``fastnn lecture``; returns the exit code."""
    from . import lecture as steps

    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    steps.run(args.out, args.iterations, args.backend)
    return 0


def trace(args: argparse.Namespace) -> int:
    """Run ``fastnn trace``; returns the exit code."""
    from .io import load_model

    if args.rows < 1:
        raise ValueError(f"--rows must be at least 1, got {args.rows}")
    model = load_model(args.model, backend=args.backend)
    X, y = load_dataset(args.data, args.labels)
    print(model.trace(X[: args.rows], y[: args.rows]))
    return 0


def _quiet(*args: Any, **kwargs: Any) -> None:
    """``print`` for the ranks other than 0 of a distributed run."""


def bench(args: argparse.Namespace) -> int:
    """Run ``fastnn bench``; returns the exit code."""
    from .benchmarking import report
    from .benchmarking.suite import default_backends

    if args.distributed:
        import json

        from .benchmarking import distributed
        from .benchmarking.workloads import CPU_ARCHITECTURES

        archs = ["M", "L"] if args.arch == list(CPU_ARCHITECTURES) else args.arch
        rows = [distributed.measure(a, (args.backend or ["numba"])[0]) for a in archs]
        print(distributed.format_table(rows))
        args.json.write_text(json.dumps(rows, indent=1))
        print(f"\nresults written to {args.json}")
        return 0
    backends = args.backend or default_backends()
    if args.auto_table is not None:
        from .benchmarking.auto_table import measure_table, write_table

        write_table(measure_table(backends, args.dtype[0], min_time=args.min_time), args.auto_table)
        print(
            f"table written to {args.auto_table}; use it with FASTNN_AUTO_TABLE={args.auto_table}"
        )
        return 0
    old = report.load(args.compare) if args.compare else None
    results = report.run(
        args.arch, args.kind, args.dtype, backends, tuple(args.peers), min_time=args.min_time
    )
    print(report.format_ceilings(results))
    print()
    print(report.format_table(report.table_rows(results), markdown=args.markdown))
    report.save(results, args.json)
    print(f"\nresults written to {args.json}")
    if old is not None:
        print()
        print(report.compare(results, old))
    if args.no_plot:
        pass
    elif not _have_matplotlib():
        print(f"chart not drawn: matplotlib is not installed ({PLOT_HINT})")
    else:
        report.chart(results, args.png)
        print(f"chart written to {args.png}")
    if args.readme:
        command = " ".join(["fastnn", *sys.argv[1:]])
        report.update_readme(args.readme, results, command)
        print(f"performance section of {args.readme} updated")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastnn`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        commands = {"train": train, "predict": predict, "evaluate": evaluate, "info": info}
        commands.update(export=export, bench=bench, lecture=lecture, trace=trace)
        return commands[args.command](args)
    except KeyboardInterrupt as exc:
        hint = (
            f"; continue with --resume {args.checkpoint}"
            if getattr(args, "checkpoint", None)
            else ""
        )
        print(f"\nfastnn {args.command}: {exc or 'interrupted'}{hint}", file=sys.stderr)
        return 130
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        OSError,
        ImportError,
        TrainingDivergedError,
    ) as exc:
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
