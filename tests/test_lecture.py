"""fastnn lecture, fastnn trace and examples/: the lecture reproduced, checked against the
lecture's loop written here independently in column notation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import lecture
from fastnn.cli import main
from fastnn.datasets import make_lecture_toy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _lecture_loop(W1, b1, W2, b2, x, y, alpha, iterations):
    """The lecture's training loop (its slides' code with dh1 = W2.T dz2 and biases
    updated too), samples as columns; returns the cost of every iteration."""

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    def sigmoid_derivative(z):
        return np.exp(-z) / ((1 + np.exp(-z)) ** 2)

    n = x.shape[1]
    cost = []
    for _ in range(iterations):
        z1 = np.dot(W1, x) + b1
        h1 = sigmoid(z1)
        z2 = np.dot(W2, h1) + b2
        y_hat = sigmoid(z2)
        dz2 = np.multiply(2 * (y_hat - y) / n, sigmoid_derivative(z2))
        dw2 = np.dot(dz2, h1.T)
        dh1 = np.dot(W2.T, dz2)
        dz1 = np.multiply(dh1, sigmoid_derivative(z1))
        dw1 = np.dot(dz1, x.T)
        W1, b1 = W1 - alpha * dw1, b1 - alpha * dz1.sum(axis=1, keepdims=True)
        W2, b2 = W2 - alpha * dw2, b2 - alpha * dz2.sum(axis=1, keepdims=True)
        cost.append(np.mean((y_hat - y) ** 2))
    return cost


def test_the_lecture_network_follows_the_lectures_loop():
    model = lecture.lecture_network()
    (W1, b1), (W2, b2) = model.get_weights()
    X, y = make_lecture_toy()
    want = _lecture_loop(W1, b1[:, None], W2, b2[:, None], X.T, y[None, :], 0.01, 300)
    _, cost = lecture.train_network(model, iterations=300)
    np.testing.assert_allclose(cost, want, rtol=1e-10)
    assert cost[-1] < cost[0]


def test_fastnn_lecture_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["lecture", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "AND: converged in 5 epochs" in printed  # as the README says
    assert "XOR: not converged after 20 epochs" in printed
    assert "z^1 = W^1 h^0 + b^1   (5 x 2)" in printed  # the first iteration's trace
    assert "np.dot(dw2.T, dz2)" in printed
    costs = [float(c) for c in re.findall(r"cost at iteration +\d+: ([0-9.]+)", printed)]
    assert len(costs) == 6 and costs == sorted(costs, reverse=True)
    assert "cost at iteration  5000:" in printed
    for name in ("perceptron.png", "cost.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name


def test_the_cost_curve_is_titled_as_in_the_lecture():
    figure = lecture.cost_figure([0.3, 0.2, 0.1])
    (axes,) = figure.axes
    assert axes.get_title() == "Cost Function"
    assert axes.get_xlabel() == "Training Iterations" and axes.get_ylabel() == "Cost"
    np.testing.assert_array_equal(axes.lines[0].get_ydata(), [0.3, 0.2, 0.1])


def test_the_perceptron_picture_shows_why_xor_fails():
    figure = lecture.perceptron_figure(lecture.train_perceptrons())
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].startswith("AND: converged")
    assert titles[1].startswith("XOR: ") and "no line separates XOR" in titles[1]


def test_lecture_without_matplotlib_prints_the_numbers_and_the_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    out = tmp_path / "pictures"
    assert main(["lecture", "--out", str(out), "--iterations", "50"]) == 0
    printed = capsys.readouterr().out
    assert "pip install 'fastnn[plot]'" in printed and "cost at iteration    50:" in printed
    assert not out.exists()


def test_lecture_refuses_zero_iterations(capsys):
    assert main(["lecture", "--iterations", "0"]) == 1
    assert "--iterations must be at least 1" in capsys.readouterr().err


@pytest.mark.files
def test_fastnn_trace_prints_a_saved_models_pass(tmp_path, capsys):
    model = fastnn.MLP([2, 3, 2], activation="tanh", loss="cross_entropy", seed=0)
    path = tmp_path / "xor.safetensors"
    model.save(path)
    assert main(["trace", str(path), "xor", "--rows", "3"]) == 0
    printed = capsys.readouterr().out
    assert "on 3 samples" in printed
    assert "z^1 = W^1 h^0 + b^1   (3 x 3)" in printed
    assert "dz^2 = dL/dz^2 = (softmax(z^2) - y) / n" in printed
    expected = model.gradients(*(a[:3] for a in fastnn.datasets.make_xor()))
    dW1 = np.array2string(expected[0][0], precision=5, max_line_width=100)
    assert " ".join(dW1.split()) in " ".join(printed.split())


#: what each example must print: the step it shows
EXAMPLE_OUTPUT = {
    "01_perceptron.py": ["AND: W = [1. 1.], b = -1.0", "converged: True", "converged: False"],
    "02_network_trace.py": ["dh^1 = (W^2)^T dz^2", "np.dot(dw2.T, dz2)", "dW^1 = dz^1 (h^0)^T"],
    "03_gradient_descent.py": [
        "cost: 0.20151 at the first iteration, 0.08409 at the last",  # fastnn lecture's too
        "cost curve: cost.png",
    ],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_run_top_to_bottom(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for expected in EXAMPLE_OUTPUT[script.name]:
        assert expected in result.stdout, expected


def test_there_are_examples_for_each_step():
    assert [p.name for p in EXAMPLES] == list(EXAMPLE_OUTPUT)
