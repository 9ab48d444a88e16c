"""Models: ``Sequential`` stacks layers under a loss; ``MLP`` builds one from sizes.

Everything here goes through the layer protocol (:mod:`fastnn.layers.base`): layers,
their named parameters and buffers, their configs. No layer class is named, except in
:class:`MLP`, which builds its layers from sizes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from .activations import check_activation
from .backends import Backend, available_backends, get_backend
from .backends.auto import AUTO, Auto, choose
from .init import make_rng
from .layers import LAYERS, Activation, Batch, BatchNorm, Dense, Dropout, Layer, layer_from_config
from .losses import DEFAULT_OUTPUT, Loss, get_loss
from .random import derive_key, fresh_entropy, mask_key
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


def check_layers(layers: Sequence[Layer], loss: Loss) -> list[int]:
    """That ``layers`` chain (each takes the width the one before gives) and end as ``loss``
    needs; returns the widths ``[n_features, out_1, ..., n_outputs]``. ``TypeError`` or
    ``ValueError`` naming the layers at fault if not. Builds nothing."""
    if not layers:
        raise ValueError("Sequential needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layer {i} is {layer!r}; Sequential takes fastnn layers ({', '.join(LAYERS)}, "
                "or a subclass of fastnn.Layer)"
            )
    first = layers[0].declared_input()
    if first is None:
        raise ValueError(
            f"layer 0 {layers[0]!r} does not say its input width; start with a layer that "
            "does, such as Dense(n_in, n_out)"
        )
    widths = [first]
    for i, layer in enumerate(layers):
        declared = layer.declared_input()
        if declared is not None and declared != widths[-1]:
            raise ValueError(
                f"layer {i} {layer!r} expects {declared} inputs but layer {i - 1} "
                f"{layers[i - 1]!r} gives {widths[-1]}"
            )
        widths.append(layer.output_width(widths[-1]))
    last = layers[-1]
    want = loss.output_activation
    if want is not None and last.output_activation != want:
        raise ValueError(f"loss {loss.name!r} needs a {want!r} output layer, got {last!r}")
    if loss.name == "cross_entropy" and widths[-1] < 2:
        raise ValueError(
            f"cross_entropy over {last!r} is constant (softmax of one output is 1); use "
            "2 outputs, or 1 sigmoid output with loss='binary_cross_entropy'"
        )
    return widths


class Sequential:
    """Layers applied in order, trained to minimize a loss.

    Parameters
    ----------
    layers : sequence of Layer
        ``layers[l]`` maps ``h^l`` to ``h^(l+1)``: any mix of ``Dense``, ``Activation``,
        ``BatchNorm``, ``Dropout`` or other :class:`~fastnn.layers.Layer` subclasses; the
        first must give the input width. ``model.layers`` holds these objects.
    loss : str
        ``"mse"``, ``"cross_entropy"`` (the network must end with softmax) or
        ``"binary_cross_entropy"`` (must end with sigmoid). Those two are fused with the
        final activation: the loss takes its input ``Z`` and returns ``dZ``.
    backend : str or Backend, optional
        ``"numpy"`` and any other registered name; default from ``FASTNN_BACKEND``.
        ``"auto"`` (or ``fastnn.backends.auto.Auto(batch_size)``) picks the backend that
        trained fastest in a measured table at this network's size and that batch size
        (32 unless given); ``model.backend_choice`` says which and why.
    dtype : str
        ``"float32"`` (default) or ``"float64"``: weights and computations.
    seed : int, optional
        Seeds the initial weights, the batch orders of :meth:`fit` and dropout masks.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        loss: str = "mse",
        backend: str | Backend | Auto | None = None,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        self.layers = list(layers)
        self.loss: Loss = get_loss(loss)
        self._widths = check_layers(self.layers, self.loss)
        self.dtype = check_dtype(dtype)
        #: why this backend: what ``backend="auto"`` picked and from what, or None
        self.backend_choice: str | None = None
        if isinstance(backend, str) and backend == AUTO:
            backend = Auto()
        if isinstance(backend, Auto):
            n_parameters = sum(
                math.prod(layer.shapes(width)[name])
                for layer, width in zip(self.layers, self._widths, strict=False)
                for name in layer.parameter_names
            )
            choice = choose(n_parameters, backend.batch_size, self.dtype, available_backends())
            backend, self.backend_choice = choice.name, choice.reason
        self.backend = get_backend(backend)
        self.seed = seed
        self._rng = make_rng(seed)  # initial weights
        # Batch orders: epoch e of the model's training (counted over all its fit calls)
        # is visited in an order that depends on this key, from the seed, and e alone.
        self._order_key = derive_key(seed if seed is not None else fresh_entropy())
        self._mask_key: tuple[Any, tuple[int, int]] = (None, (0, 0))
        self._epochs_trained = 0
        for layer, width in zip(self.layers, self._widths, strict=False):
            layer.build(self.backend, self.dtype, self._rng, width)
        self.history: dict[str, list[float]] = {}
        self.optimizer: Any = None

    # -- description --------------------------------------------------------------

    @property
    def n_features(self) -> int:
        """Inputs the model expects."""
        return self._widths[0]

    @property
    def n_outputs(self) -> int:
        """Outputs of the last layer (classes, for ``cross_entropy``)."""
        return self._widths[-1]

    @property
    def is_classifier(self) -> bool:
        """Whether :meth:`predict` returns classes."""
        return self.loss.classifier

    @property
    def _fused(self) -> bool:
        """Whether the loss takes the last layer's pre-activation (softmax + cross-entropy,
        sigmoid + binary cross-entropy: decided by the loss and the last layer)."""
        return (
            self.loss.output_activation is not None
            and self.layers[-1].output_activation == self.loss.output_activation
        )

    def n_parameters(self) -> int:
        """Number of trained values (weights, biases, scales, shifts)."""
        return sum(int(p.size) for p in self.parameters())

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return (
            f"{type(self).__name__}([{layers}], loss={self.loss.name!r}, "
            f"backend={self.backend.name!r}, dtype={self.dtype!r}, "
            f"parameters={self.n_parameters()})"
        )

    @property
    def min_batch_rows(self) -> int:
        """Rows a training batch needs at least (2 with BatchNorm, for a variance)."""
        return max(layer.min_batch_rows for layer in self.layers)

    def batch(self, rows: Any = None, epoch: int | None = None, **flags: bool) -> Batch:
        """The :class:`~fastnn.layers.Batch` of a training step: sample indices ``rows``
        (None: ``0 .. n-1``), the model's epoch (default: epochs trained so far) and key."""
        if self._mask_key[0] != self._order_key:  # derived once per key
            self._mask_key = (self._order_key, mask_key(self._order_key))
        return Batch(
            rows=rows,
            epoch=self._epochs_trained if epoch is None else epoch,
            key=self._mask_key[1],
            **flags,
        )

    def state_arrays(self) -> list:
        """Every parameter and buffer as backend arrays: what a snapshot of the model
        copies (early stopping's best epoch, the start of an epoch)."""
        return [a for layer in self.layers for a in layer.state().values()]

    def parameters(self) -> list:
        """Every layer's parameters in order (``[W^1, b^1, W^2, b^2, ...]`` for dense
        layers), as backend arrays updated in place by training."""
        return [p for layer in self.layers for p in layer.parameters().values()]

    def parameter_gradients(self) -> list:
        """``[dW^1, db^1, ...]`` from the last backward pass, aligned with :meth:`parameters`."""
        return [g for layer in self.layers for g in layer.gradients().values()]

    def state_dict(self) -> dict[str, Any]:
        """``{"layers.<l>.<name>": host array}`` for every parameter and buffer."""
        to_np = self.backend.to_numpy
        return {
            f"layers.{i}.{name}": to_np(value).copy()
            for i, layer in enumerate(self.layers)
            for name, value in layer.state().items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set parameters and buffers from :meth:`state_dict`'s names; every shape is
        checked before anything changes."""
        expected = self._state_shapes()
        if set(state) != set(expected):
            missing = sorted(set(expected) - set(state))
            unexpected = sorted(set(state) - set(expected))
            raise ValueError(f"state names differ: missing {missing}, unexpected {unexpected}")
        for name, shape in expected.items():
            if tuple(state[name].shape) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {tuple(state[name].shape)}")
        for i, layer in enumerate(self.layers):
            layer.load({n: state[f"layers.{i}.{n}"] for n in layer.state()}, self.dtype)

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            f"layers.{i}.{name}": tuple(shape)
            for i, (layer, width) in enumerate(zip(self.layers, self._widths, strict=False))
            for name, shape in layer.shapes(width).items()
        }

    # -- forward and backward ------------------------------------------------------

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        """Output of the last layer for a backend array ``X`` of shape (n, n_features).

        ``train``: training behaviour (batch statistics, dropout masks drawn for ``batch``,
        by default rows ``0 .. n-1`` of the model's current epoch)."""
        if train and batch is None:
            batch = self.batch()
        for i, layer in enumerate(self.layers):
            X = layer.forward(X, train, batch.at(i) if batch is not None else None)
        return X

    def train_batch(self, X: Any, T: Any, batch: Batch | None = None) -> tuple[Any, Any]:
        """Forward, loss and backward on one batch; sets every layer's gradients.

        Returns ``(loss, out)``: the mean loss (a backend scalar) and the last layer's
        pre-activation ``Z`` (fused losses) or output ``H``, for accuracy.
        """
        batch = self.batch() if batch is None else batch
        *hidden, last = self.layers
        for i, layer in enumerate(hidden):
            X = layer.forward(X, True, batch.at(i))
        at = batch.at(len(hidden))
        fused = self._fused
        out = last.forward_logits(X, True, at) if fused else last.forward(X, True, at)
        loss, grad = self.loss(self.backend, out, T)
        n_layers = len(self.layers)
        grad = (last.backward_logits if fused else last.backward)(grad, need_dX=n_layers > 1)
        if batch.after_layer is not None:
            batch.after_layer(n_layers - 1)
        for i in range(n_layers - 2, -1, -1):
            grad = self.layers[i].backward(grad, need_dX=i > 0)
            if batch.after_layer is not None:
                batch.after_layer(i)  # (distributed: its gradients' allreduce can start)
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
        fused = self._fused
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

    def _train_mode_loss(self, X: Any, y: Any) -> float:
        """The mean loss :meth:`gradients` differentiates: training mode, no dropout
        masks, no running-statistics updates (what gradcheck compares against)."""
        host = self._features(X)
        T = self._targets_to_backend(self._targets(y, host.shape[0]))
        batch = self.batch(draw_masks=False, update_statistics=False)
        *hidden, last = self.layers
        H = self.backend.asarray(host, dtype=self.dtype)
        for i, layer in enumerate(hidden):
            H = layer.forward(H, True, batch.at(i))
        at = batch.at(len(hidden))
        out = last.forward_logits(H, True, at) if self._fused else last.forward(H, True, at)
        loss = float(self.loss(self.backend, out, T)[0])
        for layer in self.layers:
            layer.release()
        return loss

    def _targets_to_backend(self, T_host: Any) -> Any:
        labels = T_host.ndim == 1  # class ids (check_targets made every other target 2-D)
        return self.backend.asarray(T_host, dtype=None if labels else self.dtype)

    def gradients(self, X: Any, y: Any) -> list[tuple[Any, ...]]:
        """The gradients of the mean loss over all of ``X`` at the current weights: one
        tuple per layer, in layer order, of host arrays shaped like its parameters
        (``(dW, db)`` for ``Dense``, ``(dgamma, dbeta)`` for ``BatchNorm``, ``()`` for a
        layer without parameters). Computed in training mode (batch statistics), but
        nothing changes: no running statistics move and dropout is the identity."""
        host = self._features(X)
        T_host = self._targets(y, host.shape[0])
        self.train_batch(
            self.backend.asarray(host, dtype=self.dtype),
            self._targets_to_backend(T_host),
            self.batch(draw_masks=False, update_statistics=False),
        )
        to_np = self.backend.to_numpy
        grads = [
            tuple(to_np(g).copy() for g in layer.gradients().values()) for layer in self.layers
        ]
        for layer in self.layers:
            layer.release()
        return grads

    def trace(self, X: Any, y: Any) -> Any:
        """One forward and backward pass on ``(X, y)`` recorded in the lecture's notation
        (``z^l``, ``h^l``, the loss, ``dz^l``, ``dW^l``, ``db^l``, ``dh^(l-1)``), without
        updating anything: a :class:`fastnn.trace.Trace`; ``print`` it to read the pass."""
        from .trace import trace

        return trace(self, X, y)

    # -- training, copying, saving ------------------------------------------------

    def fit(self, X: Any, y: Any, **options: Any) -> dict[str, list[float]]:
        """Train with mini-batch gradient descent; see :func:`fastnn.training.fit`."""
        from .training import fit

        return fit(self, X, y, **options)

    def get_weights(self) -> list[tuple[Any, ...]]:
        """Host copies of the parameters: one tuple per layer (``(W, b)`` for ``Dense``,
        ``()`` for a layer without parameters)."""
        to_np = self.backend.to_numpy
        return [
            tuple(to_np(p).copy() for p in layer.parameters().values()) for layer in self.layers
        ]

    def set_weights(self, weights: Sequence[tuple[Any, ...]]) -> None:
        """Replace every layer's parameters, one tuple per layer as :meth:`get_weights`
        gives them; shapes are checked before anything changes."""
        weights = [tuple(w) for w in weights]
        if len(weights) != len(self.layers):
            raise ValueError(f"got {len(weights)} weight tuples for {len(self.layers)} layers")
        for i, (layer, width, given) in enumerate(
            zip(self.layers, self._widths, weights, strict=False)
        ):
            shapes = {n: s for n, s in layer.shapes(width).items() if n in layer.parameter_names}
            got = [tuple(a.shape) for a in given]
            if got != list(shapes.values()):
                want = " and ".join(f"{n} {s}" for n, s in shapes.items()) or "no parameters"
                raise ValueError(f"layer {i} {layer!r}: expected {want}, got shapes {got}")
        for layer, given in zip(self.layers, weights, strict=True):
            layer.load(dict(zip(layer.parameter_names, given, strict=True)), self.dtype)

    def to(self, backend: str | Backend) -> Sequential:
        """Move the parameters and buffers, and the optimizer's state, to another backend;
        returns ``self``.

        ``model.to("cupy")`` before training on a GPU, ``model.to("numpy")`` after; later
        ``fit`` calls with the same optimizer continue exactly where they stopped.
        """
        new = get_backend(backend)
        old = self.backend
        state = self.state_dict()
        self.backend = new
        self.backend_choice = None  # moved by hand
        for layer in self.layers:
            layer.backend = new
        self.load_state_dict(state)
        if self.optimizer is not None:
            self.optimizer.move(old, new, self.parameters())
        return self

    def clone(self, backend: str | Backend | None = None, dtype: str | None = None) -> Sequential:
        """A new model with the same layers (made again from their configs), parameters and
        buffers, optionally on another backend or dtype."""
        new = type(self).__new__(type(self))
        Sequential.__init__(
            new,
            [layer_from_config(layer.kind, layer.config()) for layer in self.layers],
            loss=self.loss.name,
            backend=self.backend if backend is None else backend,
            dtype=self.dtype if dtype is None else dtype,
            seed=self.seed,
        )
        if isinstance(self, MLP) and isinstance(new, MLP):
            new._mlp = dict(self._mlp)
        new.load_state_dict(self.state_dict())
        return new

    def to_onnx(self, path: Any = None) -> Any:
        """Export to ONNX (``predict_proba``, or ``predict`` for regression, from raw
        inputs); written to ``path`` when given. See :mod:`fastnn.interop.onnx`."""
        from .interop.onnx import to_onnx

        return to_onnx(self, path)

    def save(self, path: Any) -> None:
        """Write the architecture and weights to a ``.safetensors`` file, atomically."""
        from .io import save_model

        save_model(self, path)


class MLP(Sequential):
    """A multilayer perceptron from its layer sizes.

    Each hidden layer is ``Dense`` with the activation, or, with ``batch_norm``,
    ``Dense -> BatchNorm -> Activation``; then ``Dropout`` when ``dropout > 0`` (the usual
    order). The output layer is ``Dense`` with the output activation.

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
    dropout : float
        Dropout probability after each hidden layer, in [0, 1) (0: no Dropout layers).
    batch_norm : bool
        Batch normalization between each hidden layer's product and its activation.
    preprocess : Layer, optional
        A first layer that prepares raw inputs, such as ``Standardize.fit(X_train)``: it
        is saved with the model, so the model predicts on raw data.

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
        backend: str | Backend | Auto | None = None,
        dtype: str = "float32",
        seed: int | None = None,
        dropout: float = 0.0,
        batch_norm: bool = False,
        preprocess: Layer | dict | None = None,
    ) -> None:
        sizes = list(sizes)
        output = DEFAULT_OUTPUT[get_loss(loss).name] if output is None else output
        if isinstance(preprocess, dict):  # as a file stores it: kind and config
            preprocess = layer_from_config(preprocess["kind"], preprocess["config"])
        layers = self.layers_for(sizes, activation, output, dropout, batch_norm)
        if preprocess is not None:
            if not isinstance(preprocess, Layer):
                raise TypeError(f"MLP: preprocess must be a fastnn layer, got {preprocess!r}")
            layers.insert(0, preprocess)
        super().__init__(layers, loss=loss, backend=backend, dtype=dtype, seed=seed)
        #: the arguments that build these layers again (stored in model files)
        self._mlp: dict[str, Any] = {
            "sizes": sizes,
            "activation": activation,
            "output": output,
            "dropout": float(dropout),
            "batch_norm": batch_norm,
            "preprocess": None
            if preprocess is None
            else {"kind": preprocess.kind, "config": preprocess.config()},
        }

    @staticmethod
    def layers_for(
        sizes: Sequence[int],
        activation: str,
        output: str,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> list[Layer]:
        """The layers an MLP of these arguments has, checked and not yet built (nothing
        is allocated: a file's claims can be compared with its layers first)."""
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least [n_features, n_outputs], got sizes={sizes!r}")
        check_activation(activation)
        check_activation(output, "output activation")
        if not isinstance(batch_norm, bool):
            raise ValueError(f"MLP: batch_norm must be True or False, got {batch_norm!r}")
        Dropout(dropout)  # checks p
        layers: list[Layer] = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            if batch_norm:
                layers += [Dense(n_in, n_out), BatchNorm(n_out), Activation(activation)]
            else:
                layers.append(Dense(n_in, n_out, activation))
            if dropout:
                layers.append(Dropout(dropout))
        layers.append(Dense(sizes[-2], sizes[-1], output))
        return layers

    @property
    def sizes(self) -> list[int]:
        """``[n_features, hidden_1, ..., n_outputs]``."""
        return list(self._mlp["sizes"])
