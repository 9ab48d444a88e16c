"""What a user would pick instead of fastnn, set up to do the same work from the same weights.

Each builder raises :class:`PeerUnavailable` with a reason (and the install command)
when its library is missing, so callers can show a visible skip.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .machine import cores
from .workloads import LR, Architecture, Workload, data, deviation, reference_model, reference_step


class PeerUnavailable(RuntimeError):
    """The peer library is not installed (or has no device); the message says how to get it."""


def _import(module: str, hint: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PeerUnavailable(f"{module} not installed ({exc}): {hint}") from None


def _initial_weights(arch: Architecture) -> list[tuple[np.ndarray, np.ndarray]]:
    if arch.dropout or arch.batch_norm:
        raise PeerUnavailable(
            f"no peer here builds the same {arch.name} network: its dropout masks come from "
            "fastnn's own generator (the fastnn backends are compared with each other)"
        )
    return reference_model(arch).get_weights()


# -- PyTorch -------------------------------------------------------------------------


def _torch_setup(arch: Architecture, dtype: str, device: str) -> tuple:
    torch = _import("torch", "pip install torch (on these machines: pip install torch==2.13.0)")
    if device == "cuda" and not torch.cuda.is_available():
        raise PeerUnavailable("PyTorch has no CUDA device here")
    torch.set_num_threads(cores())
    tdtype = getattr(torch, dtype)
    layers: list[Any] = []
    for i, (W, b) in enumerate(_initial_weights(arch)):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=tdtype, device=device)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        last = i == len(arch.sizes) - 2
        activation = arch.output if last else arch.activation
        if activation == "relu":
            layers.append(torch.nn.ReLU())
        elif activation == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        # softmax is folded into CrossEntropyLoss, as PyTorch users write it
    net = torch.nn.Sequential(*layers)
    return torch, net


def _torch_batch(torch: Any, arch: Architecture, n: int, dtype: str, device: str) -> tuple:
    X, y = data(arch, n)
    Xt = torch.from_numpy(X.astype(dtype)).to(device)
    if arch.loss == "cross_entropy":
        return Xt, torch.from_numpy(y).to(device), torch.nn.CrossEntropyLoss()
    return Xt, torch.from_numpy(y.reshape(-1, 1).astype(dtype)).to(device), torch.nn.MSELoss()


def torch_train_step(arch: Architecture, dtype: str, device: str = "cpu") -> Workload:
    """PyTorch eager: ``nn.Sequential`` + ``torch.optim.SGD``, one step on a fixed batch."""
    torch, net = _torch_setup(arch, dtype, device)
    X, T, criterion = _torch_batch(torch, arch, arch.batch, dtype, device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        criterion(net(X), T).backward()
        opt.step()
        sync()

    def check() -> float:
        _, probe = _torch_setup(arch, dtype, device)
        probe_opt = torch.optim.SGD(probe.parameters(), lr=LR)
        k = arch.check_batch
        criterion(probe(X[:k]), T[:k]).backward()
        probe_opt.step()
        got = [p.detach().cpu().numpy() for p in probe.parameters()]
        return deviation(got, reference_step(arch))

    info = {"threads": torch.get_num_threads(), "device": device, "torch": torch.__version__}
    name = "pytorch-cuda" if device == "cuda" else "pytorch"
    return Workload.train_step(name, arch, dtype, step, check, info)


def torch_inference(arch: Architecture, dtype: str, batch: int, device: str = "cpu") -> Workload:
    """PyTorch eager forward under ``torch.inference_mode``, probabilities on the host."""
    torch, net = _torch_setup(arch, dtype, device)
    X, _, _ = _torch_batch(torch, arch, batch, dtype, device)
    classifier = arch.loss == "cross_entropy"

    def predict() -> np.ndarray:
        with torch.inference_mode():
            out = net(X)
            return (torch.softmax(out, dim=1) if classifier else out).cpu().numpy()

    reference = reference_model(arch)
    X_host = data(arch, batch)[0]

    def check() -> float:
        want = reference.predict_proba(X_host) if classifier else reference.predict(X_host)
        return deviation([predict()], [want])

    kind = "infer_batch1" if batch == 1 else "infer_large"
    name = "pytorch-cuda" if device == "cuda" else "pytorch"
    return Workload(
        name,
        arch,
        kind,
        dtype,
        batch,
        arch.infer_flops(batch),
        predict,
        check,
        {"threads": torch.get_num_threads(), "device": device},
    )


def torch_epoch(arch: Architecture, dtype: str, device: str = "cpu") -> Workload:
    """One epoch the way a PyTorch user writes it: ``randperm``, index, step, per batch."""
    step = torch_train_step(arch, dtype, device)  # reuses the checked setup
    torch, net = _torch_setup(arch, dtype, device)
    X, T, criterion = _torch_batch(torch, arch, arch.epoch_samples, dtype, device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def epoch() -> None:
        for _ in range(arch.epochs_per_call):
            order = torch.randperm(X.shape[0], device=device)
            for start in range(0, X.shape[0], arch.batch):
                idx = order[start : start + arch.batch]
                opt.zero_grad(set_to_none=True)
                criterion(net(X[idx]), T[idx]).backward()
                opt.step()
        sync()

    return Workload.epochs(step.implementation, arch, dtype, epoch, step.check, step.info)


# -- JAX ------------------------------------------------------------------------------


def _jax_setup(arch: Architecture, dtype: str) -> tuple:
    """JAX, the network's initial parameters as JAX arrays, and a ``jit``-compiled SGD step
    ``params, X, T -> params`` (the whole step fused by XLA; the old parameters donated,
    as a performance-minded JAX user writes it)."""
    jax = _import("jax", "pip install jax")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    hidden = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}.get(arch.activation)
    if hidden is None or (arch.output, arch.loss) not in (
        ("softmax", "cross_entropy"),
        ("sigmoid", "mse"),
    ):
        raise PeerUnavailable(f"no JAX network written here for {arch.name}")
    params = [(jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in _initial_weights(arch)]

    def loss(params: list, X: Any, T: Any) -> Any:
        h = X
        for W, b in params[:-1]:
            h = hidden(h @ W.T + b)
        W, b = params[-1]
        z = h @ W.T + b
        if arch.loss == "cross_entropy":
            log_p = jax.nn.log_softmax(z)
            return -jnp.mean(jnp.take_along_axis(log_p, T[:, None], axis=1))
        return jnp.mean(jnp.sum((jax.nn.sigmoid(z) - T) ** 2, axis=1))

    def sgd(params: list, X: Any, T: Any) -> list:
        grads = jax.grad(loss)(params, X, T)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)

    return jax, params, jax.jit(sgd, donate_argnums=0)


def _jax_targets(arch: Architecture, y: np.ndarray, dtype: str) -> np.ndarray:
    if arch.loss == "cross_entropy":
        return y.astype(np.int32)
    return y.reshape(-1, 1).astype(dtype)


def jax_train_step(arch: Architecture, dtype: str, host: bool = False) -> Workload:
    """JAX's ``jit`` step on a fixed batch: already on the device (``jax-jit``), or handed
    over as NumPy arrays every call (``jax-jit-host``, the transfer timed too)."""
    jax, params, step = _jax_setup(arch, dtype)
    X, y = data(arch, arch.batch)
    X_host, T_host = X.astype(dtype), _jax_targets(arch, y, dtype)
    X_dev, T_dev = jax.device_put(X_host), jax.device_put(T_host)
    state = {"params": params}

    def run() -> None:
        if host:
            state["params"] = step(state["params"], X_host, T_host)
        else:
            state["params"] = step(state["params"], X_dev, T_dev)
        jax.block_until_ready(state["params"])

    def check() -> float:
        _, probe, probe_step = _jax_setup(arch, dtype)
        k = arch.check_batch
        got = probe_step(probe, X_host[:k], T_host[:k])
        return deviation([np.asarray(a) for pair in got for a in pair], reference_step(arch))

    name = "jax-jit-host" if host else "jax-jit"
    info = {"jax": jax.__version__, "device": str(jax.devices()[0])}
    return Workload.train_step(name, arch, dtype, run, check, info)


def jax_epoch(arch: Architecture, dtype: str) -> Workload:
    """One epoch the way a JAX user writes it on the CPU: a NumPy permutation, host batches
    indexed and fed to the ``jit`` step."""
    reference = jax_train_step(arch, dtype, host=True)  # reuses the checked step
    jax, params, step = _jax_setup(arch, dtype)
    X, y = data(arch, arch.epoch_samples)
    X, T = X.astype(dtype), _jax_targets(arch, y, dtype)
    rng = np.random.default_rng(0)
    state = {"params": params}

    def epoch() -> None:
        for _ in range(arch.epochs_per_call):
            order = rng.permutation(X.shape[0])
            for start in range(0, X.shape[0], arch.batch):
                idx = order[start : start + arch.batch]
                state["params"] = step(state["params"], X[idx], T[idx])
        jax.block_until_ready(state["params"])

    return Workload.epochs("jax-jit", arch, dtype, epoch, reference.check, reference.info)


# -- scikit-learn --------------------------------------------------------------------


def _sklearn_classifier(arch: Architecture, batch: int, shuffle: bool) -> Any:
    nn = _import("sklearn.neural_network", "pip install scikit-learn")
    if arch.loss != "cross_entropy" or arch.activation != "relu":
        raise PeerUnavailable(
            f"scikit-learn's MLPClassifier has no {arch.describe()} "
            f"{arch.activation}/{arch.loss} network to match"
        )
    return nn.MLPClassifier(
        hidden_layer_sizes=arch.sizes[1:-1],
        activation="relu",
        solver="sgd",
        batch_size=batch,
        learning_rate_init=LR,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        shuffle=shuffle,
        random_state=0,
    )


def _sklearn_with_weights(
    arch: Architecture, X: np.ndarray, y: np.ndarray, batch: int, shuffle: bool
) -> Any:
    """An initialized MLPClassifier holding fastnn's initial weights (written in place:
    its optimizer keeps references to the arrays)."""
    clf = _sklearn_classifier(arch, batch, shuffle)
    clf.partial_fit(X[:batch], y[:batch], classes=np.arange(arch.sizes[-1]))
    for i, (W, b) in enumerate(_initial_weights(arch)):
        clf.coefs_[i][...] = W.T
        clf.intercepts_[i][...] = b
    return clf


def sklearn_epoch(arch: Architecture, dtype: str) -> Workload:
    """``MLPClassifier(solver="sgd").partial_fit`` over ``arch.epoch_samples``: one epoch."""
    X, y = data(arch, arch.epoch_samples)
    X = X.astype(dtype)
    classes = np.arange(arch.sizes[-1])
    clf = _sklearn_with_weights(arch, X, y, arch.batch, shuffle=True)

    def check() -> float:
        Xb, yb = data(arch, arch.batch)
        probe = _sklearn_with_weights(arch, Xb.astype(dtype), yb, arch.batch, shuffle=False)
        probe.partial_fit(Xb.astype(dtype), yb)
        got = [a for pair in zip(probe.coefs_, probe.intercepts_, strict=True) for a in pair]
        return deviation([g.T if g.ndim == 2 else g for g in got], reference_step(arch))

    sklearn = importlib.import_module("sklearn")
    return Workload.epochs(
        "scikit-learn",
        arch,
        dtype,
        lambda: clf.partial_fit(X, y, classes=classes),
        check,
        {"sklearn": sklearn.__version__},
    )


# -- the plain NumPy a tutorial would write --------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def tutorial_train_step(arch: Architecture, dtype: str) -> Workload:
    """The lecture's style: samples as columns, ``np.dot``, new arrays for every result,
    ``W = W - alpha * dW``."""
    weights = [(W.astype(dtype), b.astype(dtype)[:, None]) for W, b in _initial_weights(arch)]
    X, y = data(arch, arch.batch)
    x = X.T.astype(dtype)
    if arch.loss == "cross_entropy":
        Y = np.eye(arch.sizes[-1], dtype=dtype)[y].T
    else:
        Y = y[None, :].astype(dtype)
    n = x.shape[1]
    hidden_sigmoid = arch.activation == "sigmoid"

    def train(params: list) -> list:
        hs, zs = [x], []
        for i, (W, b) in enumerate(params):
            z = np.dot(W, hs[-1]) + b
            zs.append(z)
            if i < len(params) - 1:
                hs.append(_sigmoid(z) if hidden_sigmoid else np.maximum(z, 0))
        z = zs[-1]
        if arch.loss == "cross_entropy":
            e = np.exp(z - z.max(axis=0))
            dz = (e / e.sum(axis=0) - Y) / n
        else:
            y_hat = _sigmoid(z)
            dz = 2 * (y_hat - Y) / n * y_hat * (1 - y_hat)
        new: list[Any] = [None] * len(params)
        for i in range(len(params) - 1, -1, -1):
            W, b = params[i]
            dW = np.dot(dz, hs[i].T)
            db = dz.sum(axis=1, keepdims=True)
            if i > 0:
                dh = np.dot(W.T, dz)
                h = hs[i]
                dz = dh * h * (1 - h) if hidden_sigmoid else dh * (zs[i - 1] > 0)
            new[i] = (W - LR * dW, b - LR * db)
        return new

    state = {"params": weights}

    def step() -> None:
        state["params"] = train(state["params"])

    def check() -> float:
        got = [a for W, b in train(weights) for a in (W, b.reshape(-1))]
        return deviation(got, reference_step(arch))

    return Workload.train_step("numpy-tutorial", arch, dtype, step, check, {})
