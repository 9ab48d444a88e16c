"""Models: ``Sequential`` stacks dense layers under a loss; ``MLP`` builds one from sizes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .activations import check_activation
from .backends import Backend, get_backend
from .init import initial_weights, make_rng
from .layers import Dense
from .losses import DEFAULT_OUTPUT, Loss, get_loss
from .random import derive_key, fresh_entropy
from .validation import check_features, check_targets, positive_int

DTYPES = ("float32", "float64")
_EVAL_BATCH = 4096


def check_dtype(dtype: object) -> str:
    """``"float32"`` or ``"float64"`` from a name or dtype-like object."""
    name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return str(name)


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of ``batch_size`` rows; the last may be shorter."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def check_layers(layers: Sequence[Dense], loss: Loss) -> None:
    """That ``layers`` chain (each takes what the one before gives) and end in the output
    activation ``loss`` needs; ``TypeError`` or ``ValueError`` naming the layer if not."""
    if not layers:
        raise ValueError("Sequential needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            raise TypeError(f"layer {i} is {layer!r}; Sequential takes fastnn.Dense layers")
        if i and layer.n_in != layers[i - 1].n_out:
            raise ValueError(
                f"layer {i} {layer!r} expects {layer.n_in} inputs but layer {i - 1} "
                f"{layers[i - 1]!r} gives {layers[i - 1].n_out}"
            )
    last = layers[-1]
    want = loss.output_activation
    if want is not None and last.activation != want:
        raise ValueError(f"loss {loss.name!r} needs a {want!r} output layer, got {last!r}")
    if loss.name == "cross_entropy" and last.n_out < 2:
        raise ValueError(
            f"cross_entropy over {last!r} is constant (softmax of one output is 1); use "
            "2 outputs, or 1 sigmoid output with loss='binary_cross_entropy'"
        )


class Sequential:
    """Dense layers applied in order, trained to minimize a loss.

    Parameters
    ----------
    layers : sequence of Dense
        ``layers[l]`` maps ``h^l`` to ``h^(l+1)``; sizes must chain.
    loss : str
        ``"mse"``, ``"cross_entropy"`` (needs a softmax output layer) or
        ``"binary_cross_entropy"`` (needs a sigmoid output layer).
    backend : str or Backend, optional
        ``"numpy"`` and any other registered name; default from ``FASTNN_BACKEND``.
    dtype : str
        ``"float32"`` (default) or ``"float64"``: weights and computations.
    seed : int, optional
        Seeds the initial weights and the batch orders of :meth:`fit`.
    """

    def __init__(
        self,
        layers: Sequence[Dense],
        loss: str = "mse",
        backend: str | Backend | None = None,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        self.layers = list(layers)
        self.loss: Loss = get_loss(loss)
        self._check_layers()
        self.dtype = check_dtype(dtype)
        self.backend = get_backend(backend)
        self.seed = seed
        self._rng = make_rng(seed)  # initial weights
        # Batch orders: epoch e of the model's training (counted over all its fit calls)
        # is visited in an order that depends on this key, from the seed, and e alone.
        self._order_key = derive_key(seed if seed is not None else fresh_entropy())
        self._epochs_trained = 0
        for layer in self.layers:
            W, b = initial_weights(self._rng, layer.n_in, layer.n_out, layer.activation)
            layer.set_weights(self.backend, W, b, self.dtype)
        self.history: dict[str, list[float]] = {}
        self.optimizer: Any = None

    def _check_layers(self) -> None:
        check_layers(self.layers, self.loss)

    # -- description --------------------------------------------------------------

    @property
    def n_features(self) -> int:
        """Inputs the model expects."""
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        """Outputs of the last layer (classes, for ``cross_entropy``)."""
        return self.layers[-1].n_out

    @property
    def is_classifier(self) -> bool:
        """Whether :meth:`predict` returns classes."""
        return self.loss.classifier

    def n_parameters(self) -> int:
        """Number of weights and biases."""
        return sum(layer.n_out * (layer.n_in + 1) for layer in self.layers)

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return (
            f"{type(self).__name__}([{layers}], loss={self.loss.name!r}, "
            f"backend={self.backend.name!r}, dtype={self.dtype!r}, "
            f"parameters={self.n_parameters()})"
        )

    def parameters(self) -> list:
        """``[W^1, b^1, W^2, b^2, ...]`` as backend arrays (updated in place by training)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def parameter_gradients(self) -> list:
        """``[dW^1, db^1, ...]`` from the last backward pass, aligned with :meth:`parameters`."""
        return [g for layer in self.layers for g in layer.gradients()]

    # -- forward and backward ------------------------------------------------------

    def forward(self, X: Any, train: bool = False) -> Any:
        """Output ``h^L`` of the last layer for a backend array ``X`` of shape (n, n_features)."""
        for layer in self.layers:
            X = layer.forward(X, train)
        return X

    def train_batch(self, X: Any, T: Any) -> tuple[Any, Any]:
        """Forward, loss and backward on one batch; sets every layer's ``dW, db``.

        Returns ``(loss, out)``: the mean loss (a backend scalar) and the output layer's
        logits ``Z`` (fused losses) or output ``H``, for accuracy.
        """
        *hidden, last = self.layers
        for layer in hidden:
            X = layer.forward(X, train=True)
        fused = self.loss.output_activation is not None
        out = last.forward_logits(X, train=True) if fused else last.forward(X, train=True)
        loss, grad = self.loss(self.backend, out, T)
        n_layers = len(self.layers)
        grad = (last.backward_logits if fused else last.backward)(grad, need_dX=n_layers > 1)
        for i in range(n_layers - 2, -1, -1):
            grad = self.layers[i].backward(grad, need_dX=i > 0)
        return loss, out

    def count_correct(self, out: Any, T: Any, logits: bool) -> tuple[Any, int]:
        """``(correct, total)`` predictions in a batch output (``Z`` if ``logits`` else ``H``)."""
        if self.loss.name == "cross_entropy":
            labels = T if T.ndim == 1 else T.argmax(axis=1)
            return (out.argmax(axis=1) == labels).sum(), out.shape[0]
        positive = out > 0 if logits else out > 0.5
        return (positive == (T > 0.5)).sum(), out.size

    # -- inference -----------------------------------------------------------------

    def _features(self, X: Any, name: str = "X") -> Any:
        return check_features(
            X,
            self.n_features,
            where=f"{self.layers[0]!r} (layer 0)",
            name=name,
            backend=self.backend.name,
            dtype=self.dtype,
        )

    def _targets(self, y: Any, n: int, name: str = "y") -> Any:
        return check_targets(
            y, self.loss, self.n_outputs, n, name, backend=self.backend.name, dtype=self.dtype
        )

    def _predict_output(self, X: Any, batch_size: int) -> Any:
        host = self._features(X)
        batch_size = positive_int(batch_size, "batch_size")
        out = self.backend.zeros((host.shape[0], self.n_outputs), self.dtype)
        for s in batch_slices(host.shape[0], batch_size):
            out[s] = self.forward(self.backend.asarray(host[s], dtype=self.dtype))
        return self.backend.to_numpy(out)

    def predict_proba(self, X: Any, batch_size: int = _EVAL_BATCH) -> Any:
        """Class probabilities, a host array of shape (n, n_outputs) (classifiers only)."""
        if not self.is_classifier:
            raise TypeError(f"predict_proba needs a classifier; loss is {self.loss.name!r}")
        return self._predict_output(X, batch_size)

    def predict(self, X: Any, batch_size: int = _EVAL_BATCH) -> Any:
        """Class ids (n,) for ``cross_entropy``, 0/1 of shape (n,) or (n, k) for
        ``binary_cross_entropy``, the output values for ``mse``; a host array."""
        H = self._predict_output(X, batch_size)
        if self.loss.name == "cross_entropy":
            return H.argmax(axis=1)
        if self.loss.name == "binary_cross_entropy":
            labels = (H > 0.5).astype("int64")
            return labels[:, 0] if labels.shape[1] == 1 else labels
        return H

    def evaluate(self, X: Any, y: Any, batch_size: int = _EVAL_BATCH) -> dict[str, float]:
        """``{"loss": mean loss}`` over all of ``X``, plus ``"accuracy"`` for classifiers."""
        host = self._features(X)
        T_host = self._targets(y, host.shape[0])
        with self.backend.float_errors_ignored():
            return self._evaluate_host(host, T_host, positive_int(batch_size, "batch_size"))

    def _evaluate_host(self, X_host: Any, T_host: Any, batch_size: int) -> dict[str, float]:
        """:meth:`evaluate` on host arrays already checked."""
        backend = self.backend
        fused = self.loss.output_activation is not None
        *hidden, last = self.layers
        total = correct = 0.0
        units = 0
        for s in batch_slices(X_host.shape[0], batch_size):
            H = backend.asarray(X_host[s], dtype=self.dtype)
            for layer in hidden:
                H = layer.forward(H)
            out = last.forward_logits(H) if fused else last.forward(H)
            Tb = self._targets_to_backend(T_host[s])
            loss, _ = self.loss(backend, out, Tb)
            total += float(loss) * (s.stop - s.start)
            if self.is_classifier:
                c, u = self.count_correct(out, Tb, logits=fused)
                correct += float(c)
                units += u
        result = {"loss": total / X_host.shape[0]}
        if self.is_classifier:
            result["accuracy"] = correct / units
        return result

    def _targets_to_backend(self, T_host: Any) -> Any:
        labels = T_host.ndim == 1  # class ids (check_targets made every other target 2-D)
        return self.backend.asarray(T_host, dtype=None if labels else self.dtype)

    def gradients(self, X: Any, y: Any) -> list[tuple[Any, Any]]:
        """``[(dW, db), ...]``, one pair per layer, of the mean loss over all of ``X``
        at the current weights; host arrays shaped like each layer's ``W`` and ``b``."""
        host = self._features(X)
        T_host = self._targets(y, host.shape[0])
        self.train_batch(
            self.backend.asarray(host, dtype=self.dtype), self._targets_to_backend(T_host)
        )
        to_np = self.backend.to_numpy
        grads = [(to_np(layer.dW).copy(), to_np(layer.db).copy()) for layer in self.layers]
        for layer in self.layers:
            layer.release()
        return grads

    # -- training, copying, saving ------------------------------------------------

    def fit(self, X: Any, y: Any, **options: Any) -> dict[str, list[float]]:
        """Train with mini-batch gradient descent; see :func:`fastnn.training.fit`."""
        from .training import fit

        return fit(self, X, y, **options)

    def get_weights(self) -> list[tuple[Any, Any]]:
        """``[(W, b), ...]`` host copies, one pair per layer."""
        to_np = self.backend.to_numpy
        return [(to_np(layer.W).copy(), to_np(layer.b).copy()) for layer in self.layers]

    def set_weights(self, weights: Sequence[tuple[Any, Any]]) -> None:
        """Replace every layer's ``(W, b)``; shapes are checked before anything changes."""
        weights = list(weights)
        if len(weights) != len(self.layers):
            raise ValueError(f"got {len(weights)} (W, b) pairs for {len(self.layers)} layers")
        for i, (layer, (W, b)) in enumerate(zip(self.layers, weights, strict=True)):
            want_W, want_b = (layer.n_out, layer.n_in), (layer.n_out,)
            if tuple(W.shape) != want_W or tuple(b.shape) != want_b:
                raise ValueError(
                    f"layer {i} {layer!r}: expected W {want_W} and b {want_b}, "
                    f"got {tuple(W.shape)} and {tuple(b.shape)}"
                )
        for layer, (W, b) in zip(self.layers, weights, strict=True):
            layer.set_weights(self.backend, W, b, self.dtype)

    def to(self, backend: str | Backend) -> Sequential:
        """Move the weights, and the optimizer's state, to another backend; returns ``self``.

        ``model.to("cupy")`` before training on a GPU, ``model.to("numpy")`` after; later
        ``fit`` calls with the same optimizer continue exactly where they stopped.
        """
        new = get_backend(backend)
        old = self.backend
        weights = self.get_weights()
        self.backend = new
        for layer, (W, b) in zip(self.layers, weights, strict=True):
            layer.set_weights(new, W, b, self.dtype)
        if self.optimizer is not None:
            self.optimizer.move(old, new, self.parameters())
        return self

    def clone(self, backend: str | Backend | None = None, dtype: str | None = None) -> Sequential:
        """A new model with the same layers and weights, optionally on another backend/dtype."""
        new = type(self).__new__(type(self))
        Sequential.__init__(
            new,
            [Dense(layer.n_in, layer.n_out, layer.activation) for layer in self.layers],
            loss=self.loss.name,
            backend=self.backend if backend is None else backend,
            dtype=self.dtype if dtype is None else dtype,
            seed=self.seed,
        )
        new.set_weights(self.get_weights())
        return new

    def save(self, path: Any) -> None:
        """Write the architecture and weights to a ``.safetensors`` file, atomically."""
        from .io import save_model

        save_model(self, path)


class MLP(Sequential):
    """A multilayer perceptron from its layer sizes.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_features, hidden_1, ..., n_outputs]``; at least two entries.
    activation : str
        Activation of every hidden layer (``"relu"``, ``"sigmoid"``, ``"tanh"``, ...).
    output : str, optional
        Activation of the output layer; by default the one the loss pairs with
        (softmax for cross_entropy, sigmoid for binary_cross_entropy, identity for mse).
    loss, backend, dtype, seed
        As for :class:`Sequential`.

    Examples
    --------
    >>> model = MLP([64, 32, 10], activation="relu", loss="cross_entropy", seed=0)
    >>> model.layers[0].W.shape
    (32, 64)
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        output: str | None = None,
        loss: str = "mse",
        backend: str | Backend | None = None,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least [n_features, n_outputs], got sizes={sizes!r}")
        check_activation(activation)
        output = DEFAULT_OUTPUT[get_loss(loss).name] if output is None else output
        check_activation(output, "output activation")
        layers = [
            Dense(n_in, n_out, activation if i < len(sizes) - 2 else output)
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        ]
        super().__init__(layers, loss=loss, backend=backend, dtype=dtype, seed=seed)

    @property
    def sizes(self) -> list[int]:
        """``[n_features, hidden_1, ..., n_outputs]``."""
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]
