"""The fastnn command line."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.cli import main

pytestmark = pytest.mark.files  # every test here reads or writes model files


def test_train_with_no_options_uses_the_bundled_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out).group(1))
    assert accuracy >= 0.95, out
    model = fastnn.load(tmp_path / "model.safetensors")
    assert model.sizes == [64, 64, 10]
    assert (tmp_path / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_options(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            "xor",
            "--hidden",
            "8",
            "--activation",
            "tanh",
            "--epochs",
            "300",
            "--batch-size",
            "4",
            "--lr",
            "0.1",
            "--optimizer",
            "nesterov",
            "--dtype",
            "float64",
            "--seed",
            "3",
            "--backend",
            "numpy",
            "--model-out",
            str(tmp_path / "xor.safetensors"),
            "--no-plot",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "test accuracy 1.0000" in capsys.readouterr().out
    model = fastnn.load(tmp_path / "xor.safetensors")
    assert model.dtype == "float64" and model.sizes == [2, 8, 2]


def test_train_on_a_csv_file_for_regression(tmp_path, capsys, rng):
    X = rng.normal(size=(80, 2))
    y = X @ [1.0, -1.0]
    np.savetxt(tmp_path / "r.csv", np.column_stack([X, y]), delimiter=",", header="a,b,y")
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "r.csv"),
            "--loss",
            "mse",
            "--hidden",
            "--scale",
            "standard",
            "--plot-out",
            str(tmp_path / "c.png"),
            "--model-out",
            str(tmp_path / "r.safetensors"),
        ]
    )
    assert code == 0
    assert "test loss" in capsys.readouterr().out and (tmp_path / "c.png").exists()


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.npz"), "--no-plot"]) == 1
    assert "no data file" in capsys.readouterr().err
    assert (
        main(
            ["train", "--epochs", "0", "--no-plot", "--model-out", str(tmp_path / "m.safetensors")]
        )
        == 1
    )
    assert "epochs must be an int >= 1" in capsys.readouterr().err


def test_help_explains_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "fastnn", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (
        "--data",
        "--hidden",
        "--activation",
        "--loss",
        "--optimizer",
        "--lr",
        "--epochs",
        "--batch-size",
        "--backend",
        "--dtype",
        "--seed",
        "--model-out",
        "--plot-out",
    ):
        assert option in out
    assert main([]) == 2


def test_train_without_matplotlib_trains_and_says_how_to_get_the_plot(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code = main(
        [
            "train",
            "--epochs",
            "2",
            "--model-out",
            str(tmp_path / "m.safetensors"),
            "--plot-out",
            str(tmp_path / "cost.png"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and (tmp_path / "m.safetensors").exists()
    assert not (tmp_path / "cost.png").exists()
    hints = [line for line in out.splitlines() if "pip install 'fastnn[plot]'" in line]
    assert len(hints) == 1 and "cost curve not drawn" in hints[0], out


def test_divergence_is_one_line_with_the_advice(tmp_path, capsys):
    model_out = tmp_path / "m.safetensors"
    args = ["train", "--data", "spirals", "--lr", "1e12", "--optimizer", "sgd"]
    code = main([*args, "--no-plot", "--scale", "none", "--model-out", str(model_out)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fastnn train: error: training diverged at epoch")
    assert "lower learning rate" in err
    assert not model_out.exists()


def test_early_stopping_watches_a_validation_split_and_the_test_set_is_used_once(
    tmp_path, monkeypatch, capsys
):
    seen = {"fit": [], "evaluate": []}
    real_fit, real_evaluate = fastnn.Sequential.fit, fastnn.Sequential.evaluate

    def fit(self, X, y, **options):
        seen["fit"].append((np.asarray(X), options))
        return real_fit(self, X, y, **options)

    def evaluate(self, X, y, **options):
        seen["evaluate"].append(np.asarray(X))
        return real_evaluate(self, X, y, **options)

    monkeypatch.setattr(fastnn.Sequential, "fit", fit)
    monkeypatch.setattr(fastnn.Sequential, "evaluate", evaluate)
    args = ["train", "--data", "spirals", "--patience", "3", "--epochs", "30", "--no-plot"]
    assert main([*args, "--model-out", str(tmp_path / "m.safetensors")]) == 0
    ((X_train, options),) = seen["fit"]
    X_val = options["validation_data"][0]
    (X_test,) = seen["evaluate"]
    # spirals: 400 points, 80 held out for test; of the other 320, 10% validate
    assert (X_train.shape[0], X_val.shape[0], X_test.shape[0]) == (288, 32, 80)
    rows = lambda A: {tuple(r) for r in A.round(12)}
    assert not rows(X_val) & rows(X_test) and not rows(X_val) & rows(X_train)
    assert "validation" in capsys.readouterr().out


def test_validation_size_needs_a_share_of_the_training_part(tmp_path, capsys):
    args = ["train", "--validation-size", "1.5", "--no-plot"]
    assert main([*args, "--model-out", str(tmp_path / "m.safetensors")]) == 1
    assert "--validation-size" in capsys.readouterr().err


def test_train_reports_the_memory_a_backend_holds(backend, tmp_path, capsys):
    args = ["train", "--backend", backend, "--epochs", "2", "--no-plot"]
    assert main([*args, "--model-out", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    held = re.search(rf"memory held for reuse by the {backend} backend: ([0-9.]+) MiB", out)
    if backend == "numpy":  # allocates per call, holds nothing
        assert held is None, out
    else:
        assert held is not None and float(held.group(1)) > 0, out


def test_train_with_dropout_and_batch_norm(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    args = ["train", "--dropout", "0.2", "--batch-norm", "--epochs", "3", "--no-plot"]
    assert main([*args, "--model-out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    kinds = [layer.kind for layer in fastnn.load(out).layers]
    assert kinds == ["Rescale", "Dense", "BatchNorm", "Activation", "Dropout", "Dense"]


def test_the_saved_model_takes_raw_data_and_reproduces_the_test_accuracy(tmp_path, capsys):
    """The scaling fitted on the training part is the model's first layer: loaded, the
    model evaluated on the raw test part gives the accuracy train printed."""
    from fastnn.cli import build_parser, load_data

    out = tmp_path / "m.safetensors"
    argv = ["train", "--epochs", "5", "--scale", "standard", "--no-plot"]
    assert main([*argv, "--model-out", str(out)]) == 0
    printed = float(re.search(r"test accuracy ([0-9.]+)", capsys.readouterr().out).group(1))
    _, X_test, _, y_test = load_data(build_parser().parse_args(argv))
    model = fastnn.load(out)
    assert model.layers[0].kind == "Standardize"
    assert round(model.evaluate(X_test, y_test)["accuracy"], 4) == printed


def test_predict_evaluate_and_info_use_a_saved_model(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["train", "--epochs", "5", "--no-plot", "--model-out", str(out)]) == 0
    printed = re.search(r"test accuracy ([0-9.]+)", capsys.readouterr().out).group(1)
    assert main(["evaluate", str(out), "digits", "--test-part"]) == 0
    assert f"(359 samples): accuracy {printed}" in capsys.readouterr().out

    from fastnn.datasets import load_digits

    X, y = load_digits(scale=False)  # raw pixels: the model scales them itself
    data = tmp_path / "d.csv"
    np.savetxt(data, np.column_stack([X[:20], y[:20]]), delimiter=",")  # a label column too
    predictions = tmp_path / "p.csv"
    assert main(["predict", str(out), str(data), "--proba", "--out", str(predictions)]) == 0
    rows = predictions.read_text().splitlines()
    assert rows[0].split(",")[:2] == ["prediction", "probability_0"] and len(rows) == 21
    model = fastnn.load(out)
    got = np.loadtxt(predictions, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(got[:, 0], model.predict(X[:20]))
    np.testing.assert_allclose(got[:, 1:], model.predict_proba(X[:20]), rtol=1e-6)

    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "checksum verified" in text and "preprocessing: Rescale" in text
    assert f"parameters: {model.n_parameters():,}" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "MODEL", "missing.csv"], "no data file"),
        (["info", "JUNK"], "not a readable safetensors file|truncated|header"),
        (["evaluate", "MODEL", "xor"], "expected X with 64 features"),
    ],
)
def test_model_commands_refuse_bad_input_in_one_line(tmp_path, capsys, argv, message):
    model = tmp_path / "m.safetensors"
    fastnn.MLP([64, 8, 10], loss="cross_entropy", seed=0).save(model)
    (tmp_path / "junk").write_bytes(b"\x00" * 64)
    places = {"MODEL": str(model), "JUNK": str(tmp_path / "junk")}
    argv = [places.get(a, str(tmp_path / a) if a == "missing.csv" else a) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
