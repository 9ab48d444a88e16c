"""The layer protocol: what a layer is to the model, the files and the training loop.

A layer is a step ``h' = f(h)`` of the network, for a mini-batch stored as rows. It owns
its state as named collections, which everything above it iterates over without knowing
the layer's class:

* **parameters**, trained: ``parameter_names``, each an attribute holding a backend array,
  with its gradient in the attribute ``"d" + name`` after :meth:`backward`;
* **buffers**, saved but not trained (BatchNorm's running statistics): ``buffer_names``;
* a **config** of plain values (:meth:`config`) that the file format stores, and from
  which :meth:`from_config` makes the same layer again (the registry :data:`LAYERS` maps
  each class's ``kind`` to it);
* a **build** step (:meth:`build`) that gets the backend, dtype, generator and input width
  and returns the output width; parameters exist from then on.

``forward(X, train, batch)`` computes the output; with ``train`` it also caches what
backward needs and uses training behaviour (batch statistics, dropout masks), and
``batch`` (a :class:`Batch`) says which samples the rows are and what the step may
change. ``backward(dH)`` sets the parameters' gradients and returns ``dX``. Both are
written against backend ops, so a layer runs on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Batch:
    """What a training forward pass knows beyond the rows themselves.

    Attributes
    ----------
    rows : backend int array or None
        Each row's sample index in the training data (None: ``0 .. n-1``). Dropout masks
        are drawn per sample index, so a sample gets the same mask in any batch.
    epoch : int
        The model's epoch number (dropout masks differ between epochs).
    key : tuple of two int
        The model's 64-bit key for counter-based randomness (dropout masks).
    layer : int
        The position of the layer being run (set by the model for each layer).
    draw_masks : bool
        False: dropout is the identity (``model.gradients``).
    update_statistics : bool
        False: running statistics stay as they are (``model.gradients``).
    comm : Communicator or None
        Distributed training: the ranks (:mod:`fastnn.distributed`); each rank's rows are
        its share of a global batch of ``global_rows`` rows.
    global_rows : int
        Rows of the global batch (distributed), else 0.
    """

    rows: Any = None
    epoch: int = 0
    key: tuple[int, int] = (0, 0)
    layer: int = 0
    draw_masks: bool = True
    update_statistics: bool = True
    comm: Any = None
    global_rows: int = 0
    #: called with each layer's position once its backward has set its gradients
    after_layer: Any = None

    def at(self, layer: int) -> Batch:
        """The same batch, for the layer at position ``layer``."""
        return Batch(
            self.rows,
            self.epoch,
            self.key,
            layer,
            self.draw_masks,
            self.update_statistics,
            self.comm,
            self.global_rows,
            self.after_layer,
        )


#: layer kind (as stored in files) -> class
LAYERS: dict[str, type[Layer]] = {}


class Layer:
    """Base class of every layer; subclasses set ``kind`` and the names they own."""

    kind: ClassVar[str] = ""
    parameter_names: ClassVar[tuple[str, ...]] = ()
    buffer_names: ClassVar[tuple[str, ...]] = ()
    #: the activation a layer ends with, which a loss may fuse with (see :meth:`forward_logits`)
    output_activation: ClassVar[str | None] = None
    #: rows a training batch needs at least (BatchNorm: 2, for a variance)
    min_batch_rows: ClassVar[int] = 1
    #: whether training forward passes need :attr:`Batch.rows` (dropout masks)
    uses_sample_index: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            LAYERS[cls.kind] = cls

    backend: Any = None
    n_in: int | None = None  # input width, once known
    n_out: int | None = None  # output width, once built

    # -- description and configuration ------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The constructor's arguments as plain values: ``from_config(config())`` is a twin."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """The layer a :meth:`config` describes."""
        return cls(**config)

    def declared_input(self) -> int | None:
        """The input width the layer was given (a ``Dense``'s ``n_in``), or None."""
        return None

    def output_width(self, n_in: int) -> int:
        """The output width for input width ``n_in`` (without building anything)."""
        return n_in

    def shapes(self, n_in: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameters and buffers, by name, for input width ``n_in``."""
        return {}

    # -- state --------------------------------------------------------------------------

    def build(self, backend: Any, dtype: str, rng: Any, n_in: int) -> int:
        """Create the parameters and buffers on ``backend`` for inputs of width ``n_in``
        (initial values drawn from ``rng``, on the host); returns the output width."""
        self.backend, self.n_in = backend, n_in
        self.n_out = self.output_width(n_in)
        self.load({name: value for name, value in self.initial_state(rng, n_in).items()}, dtype)
        return self.n_out

    def initial_state(self, rng: Any, n_in: int) -> dict[str, Any]:
        """Initial host values of the parameters and buffers, by name."""
        return {}

    def load(self, arrays: dict[str, Any], dtype: str) -> None:
        """Place parameters and buffers (host or backend arrays, by name) on the backend."""
        for name, value in arrays.items():
            setattr(self, name, self.backend.asarray(value, dtype=dtype))
        for name in self.parameter_names:
            setattr(self, "d" + name, None)
        self.release()

    def parameters(self) -> dict[str, Any]:
        """The trained arrays, by name, in a fixed order."""
        return {name: getattr(self, name) for name in self.parameter_names}

    def gradients(self) -> dict[str, Any]:
        """``d<name>`` for each parameter, from the last backward pass."""
        return {name: getattr(self, "d" + name) for name in self.parameter_names}

    def buffers(self) -> dict[str, Any]:
        """The saved but untrained arrays, by name."""
        return {name: getattr(self, name) for name in self.buffer_names}

    def state(self) -> dict[str, Any]:
        """Parameters and buffers, by name."""
        return {**self.parameters(), **self.buffers()}

    # -- computation ----------------------------------------------------------------------

    def forward(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        """Output for a backend array ``X`` of shape (n, n_in); ``train``: training
        behaviour, and cache what :meth:`backward` needs; ``batch``: see :class:`Batch`."""
        raise NotImplementedError

    def backward(self, dH: Any, need_dX: bool = True) -> Any:
        """From ``dH = dL/dH`` set the gradients; return ``dX`` (None unless ``need_dX``)."""
        raise NotImplementedError

    def forward_logits(self, X: Any, train: bool = False, batch: Batch | None = None) -> Any:
        """The output before ``output_activation``, for a loss fused with it."""
        raise NotImplementedError(f"{self!r} ends with no activation a loss can fuse with")

    def backward_logits(self, dZ: Any, need_dX: bool = True) -> Any:
        """:meth:`backward` from the gradient before ``output_activation``."""
        raise NotImplementedError(f"{self!r} ends with no activation a loss can fuse with")

    def release(self) -> None:
        """Drop what the last training forward pass cached."""

    def small_network_activation(self) -> str | None:
        """The activation, if this layer is exactly ``H = act(X @ W.T + b)`` with parameters
        ``W, b``; else None. A backend that runs whole small networks in one call relies on
        it, and ``model.trace`` records such a layer term by term (``z^l``, then ``h^l``)."""
        return None

    def trace_equation(self, ell: int) -> str:
        """This layer's output as ``model.trace`` prints it, for layer number ``ell``."""
        return f"h^{ell} = {self!r}(h^{ell - 1})"

    def _require_built(self) -> None:
        if self.backend is None:
            raise RuntimeError(f"{self!r} has no weights yet: put it in a fastnn.Sequential model")


def layer_from_config(kind: str, config: dict[str, Any]) -> Layer:
    """A layer from its kind and config, as files store them; ``ValueError`` if unknown."""
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; known: {', '.join(LAYERS)}")
    return LAYERS[kind].from_config(config)
