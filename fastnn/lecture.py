"""``fastnn lecture``: the lecture's own examples, end to end.

1. Rosenblatt's perceptron ``y = sign(W . x + b)`` on AND, which it learns, and on XOR,
   which no line separates, so it never stops making mistakes;
2. the 2-5-1 sigmoid network on the lecture's two samples: ``alpha = 0.01``, 5,000
   iterations of full-batch gradient descent on ``L = (1/n) sum (y_hat - y)^2``, with the
   trace of the first iteration (every ``z``, ``h``, ``dz``, ``dW`` and ``dh``);
3. the cost curve, titled as in the lecture ("Cost Function" over "Training Iterations").

The lecture leaves the initial weights unstated and updates only ``W``; here they come
from fastnn's seeded initialization, and the biases are updated too ("similar for biases").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import make_lecture_toy, make_xor
from .model import MLP, Sequential
from .perceptron import Perceptron
from .trace import Trace

ALPHA = 0.01
ITERATIONS = 5000
PERCEPTRON_EPOCHS = 20
PLOT_HINT = "pip install 'fastnn[plot]'"


def logic_gates() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """AND and XOR on the four corners of the unit square: ``name -> (X, y)``."""
    X, xor = make_xor()
    return {"AND": (X, (X[:, 0] * X[:, 1]).astype(np.int64)), "XOR": (X, xor)}


def train_perceptrons(seed: int = 0) -> dict[str, Perceptron]:
    """A perceptron trained on each gate for up to :data:`PERCEPTRON_EPOCHS` epochs."""
    return {
        name: Perceptron(2, max_epochs=PERCEPTRON_EPOCHS, seed=seed).fit(X, y)
        for name, (X, y) in logic_gates().items()
    }


def lecture_network(
    seed: int = 0, backend: str | None = None, dtype: str = "float64"
) -> Sequential:
    """The lecture's 2-5-1 network: sigmoid everywhere, mean squared error."""
    return MLP(
        [2, 5, 1],
        activation="sigmoid",
        output="sigmoid",
        loss="mse",
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


def train_network(
    model: Sequential, iterations: int = ITERATIONS, alpha: float = ALPHA
) -> tuple[Trace, list[float]]:
    """The trace of the first iteration, then ``iterations`` full-batch steps
    ``W = W - alpha dW``; returns the trace and the cost of every iteration."""
    X, y = make_lecture_toy()
    first = model.trace(X, y)
    history = model.fit(
        X,
        y,
        epochs=iterations,
        batch_size=X.shape[0],
        optimizer="sgd",
        lr=alpha,
        shuffle=False,
        progress=False,
    )
    return first, history["loss"]


def perceptron_figure(perceptrons: dict[str, Perceptron]) -> Any:
    """One panel per gate: its points and the line ``W . x + b = 0`` the perceptron found."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gates = logic_gates()
    fig, axes = plt.subplots(1, len(perceptrons), figsize=(4.5 * len(perceptrons), 4), dpi=100)
    for ax, (name, p) in zip(axes, perceptrons.items(), strict=True):
        X, y = gates[name]
        W, b = p.backend.to_numpy(p.W), p.b
        xs = np.linspace(-0.5, 1.5, 200)
        grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
        score = (grid @ W + b).reshape(len(xs), len(xs))
        ax.contourf(xs, xs, score > 0, levels=[-0.5, 0.5, 1.5], colors=["#f3d9d9", "#d9e4f3"])
        if score.min() < 0 < score.max():
            ax.contour(xs, xs, score, levels=[0], colors="k", linewidths=1)
        for label, marker, color in ((0, "o", "tab:red"), (1, "s", "tab:blue")):
            ax.scatter(*X[y == label].T, marker=marker, s=90, c=color, label=f"y = {label}")
        wrong = np.asarray(p.predict(X)) != y
        ax.scatter(*X[wrong].T, s=320, facecolors="none", edgecolors="k", label="misclassified")
        outcome = (
            "converged: the line separates the classes"
            if p.converged_
            else f"{int(wrong.sum())} of 4 wrong after {len(p.mistakes_)} epochs: "
            "no line separates XOR"
        )
        ax.set_title(f"{name}: {outcome}", fontsize=9)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylim(-0.5, 1.5)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Perceptron: y = sign(W . x + b), the shaded sides of W . x + b = 0")
    fig.tight_layout()
    return fig


def cost_figure(cost: list[float]) -> Any:
    """The lecture's cost plot: ``cost`` per iteration, "Cost Function" over
    "Training Iterations"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.grid()
    ax.plot(range(len(cost)), cost)
    ax.set_title("Cost Function")
    ax.set_xlabel("Training Iterations")
    ax.set_ylabel("Cost")
    fig.tight_layout()
    return fig


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path)
    plt.close(figure)


def run(
    out: Path,
    iterations: int = ITERATIONS,
    backend: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Run the lecture's examples, print what they show, and draw the pictures in ``out``
    (when matplotlib is installed; otherwise say how to get them)."""
    plots = _have_matplotlib()
    if plots:
        out.mkdir(parents=True, exist_ok=True)

    say("1. The perceptron: y = sign(W . x + b), trained by W += lr y x, b += lr y")
    perceptrons = train_perceptrons()
    for name, p in perceptrons.items():
        W = ", ".join(f"{w:g}" for w in p.backend.to_numpy(p.W))
        mistakes = " ".join(map(str, p.mistakes_))
        if p.converged_:
            say(f"   {name}: converged in {len(p.mistakes_)} epochs: W = [{W}], b = {p.b:g}")
        else:
            say(f"   {name}: not converged after {len(p.mistakes_)} epochs (no line separates it)")
        say(f"        mistakes per epoch: {mistakes}")
    if plots:
        _save(perceptron_figure(perceptrons), out / "perceptron.png")
        say(f"   decision boundaries: {out / 'perceptron.png'}")

    say("")
    say("2. The 2-5-1 sigmoid network on the lecture's two samples:")
    say(f"   alpha = {ALPHA:g}, {iterations} iterations, full batch, L = (1/n) sum (y_hat - y)^2")
    model = lecture_network(backend=backend)
    first, cost = train_network(model, iterations)
    say("   The first iteration, traced:")
    say("")
    say(str(first))
    say("")
    marks = sorted({0, *range(999, len(cost), 1000), len(cost) - 1})
    for i in marks:
        say(f"   cost at iteration {i + 1:>5}: {cost[i]:.5f}")

    say("")
    say("3. The cost curve")
    if plots:
        _save(cost_figure(cost), out / "cost.png")
        say(f"   {out / 'cost.png'}")
    else:
        say(f"   pictures not drawn: matplotlib is not installed ({PLOT_HINT})")
