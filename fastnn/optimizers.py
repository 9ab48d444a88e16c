"""Optimizers: gradient descent and its refinements, each one fused backend call per step.

Weight decay is L2 regularization, ``(wd / 2) ||W||^2`` added to the loss, applied as
``dW + wd W`` to weight matrices only (not to biases, as in scikit-learn). The losses
``fit`` reports do not include it.
"""

from __future__ import annotations

import math
from typing import Any


def _positive(value: object, what: str, upper: float | None = None) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if (
        number is None
        or not math.isfinite(number)
        or number <= 0
        or (upper is not None and number >= upper)
    ):
        bound = f" and < {upper}" if upper is not None else ""
        raise ValueError(f"{what} must be a finite number > 0{bound}, got {value!r}")
    return float(number)


def _non_negative(value: object, what: str, upper: float | None = None) -> float:
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return _positive(value, what, upper)


class Optimizer:
    """Base class: holds per-parameter state, created on the first :meth:`step`."""

    name = "optimizer"

    def __init__(self, lr: float, weight_decay: float) -> None:
        self.lr = _positive(lr, f"{type(self).__name__}: lr")
        self.weight_decay = _non_negative(weight_decay, f"{type(self).__name__}: weight_decay")
        self.t = 0  # steps taken
        self._params: list | None = None
        self._pending: dict[str, list] | None = None  # state read from a checkpoint

    def config(self) -> dict[str, Any]:
        """The constructor's arguments: ``type(opt)(**opt.config())`` is a fresh twin."""
        raise NotImplementedError

    def restore_state(self, state: dict[str, list]) -> None:
        """State arrays (host) from a checkpoint, bound to the model at the next step."""
        self._pending = state

    def _bind(self, model: Any) -> list:
        """``model``'s parameters, with this optimizer's state created or moved for them."""
        params = model.parameters()
        if self._pending is not None:
            t = self.t
            self._init_state(model.backend, params)  # zeros where the checkpoint has none
            self.t = t
            for name, arrays in self._pending.items():
                if arrays:
                    setattr(self, name, [model.backend.asarray(a) for a in arrays])
            self._pending = None
            self._params = params
        elif (
            self._params is None
            or len(self._params) != len(params)
            or any(a is not b for a, b in zip(self._params, params, strict=True))
        ):
            self._params = params
            self._init_state(model.backend, params)
        # weight matrices (2-D) decay, biases do not
        self._decays = [self.weight_decay if p.ndim == 2 else 0.0 for p in params]
        return params

    def _init_state(self, backend: Any, params: list) -> None:
        self.t = 0

    #: names of the attributes holding per-parameter state (lists of arrays)
    state_names: tuple[str, ...] = ()

    def move(self, old: Any, new: Any, params: list) -> None:
        """Carry the state over to backend ``new`` for the model's moved ``params``."""
        for name in self.state_names:
            arrays = getattr(self, name)
            if arrays:
                setattr(self, name, [new.asarray(old.to_numpy(a)) for a in arrays])
        if self._params is not None:
            self._params = params

    def step(self, model: Any) -> None:
        """Update ``model``'s parameters in place from the gradients of its last backward pass."""
        params = self._bind(model)
        self.t += 1
        self._update(model.backend, params, model.parameter_gradients())

    def _update(self, backend: Any, params: list, grads: list) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Gradient descent, the lecture's ``W = W - alpha dW``, optionally with momentum.

    Parameters
    ----------
    lr : float
        Learning rate ``alpha``.
    momentum : float
        ``mu`` in ``v = mu v + dW``, ``W = W - alpha v`` (0 turns momentum off).
    nesterov : bool
        Nesterov's variant: ``W = W - alpha (dW + mu v)``.
    weight_decay : float
        L2 penalty on weight matrices.
    """

    name = "sgd"
    state_names = ("velocities",)

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = _non_negative(momentum, "SGD: momentum", upper=1.0)
        if nesterov and not self.momentum:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.velocities: list | None = None

    def config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay})"
        )

    def _init_state(self, backend: Any, params: list) -> None:
        super()._init_state(backend, params)
        self.velocities = (
            [backend.zeros(p.shape, p.dtype) for p in params] if self.momentum else None
        )

    def _update(self, backend: Any, params: list, grads: list) -> None:
        backend.sgd_step(
            params, grads, self.velocities, self.lr, self.momentum, self.nesterov, self._decays
        )


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), with bias-corrected first and second moments.

    Parameters
    ----------
    lr : float
        Step size.
    beta1, beta2 : float
        Decay rates of the moment estimates, in [0, 1).
    eps : float
        Added to ``sqrt(v_hat)`` so the step stays bounded.
    weight_decay : float
        L2 penalty on weight matrices (added to the gradient, as PyTorch's ``Adam``).
    """

    name = "adam"
    state_names = ("m", "v")

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.beta1 = _non_negative(beta1, "Adam: beta1", upper=1.0)
        self.beta2 = _non_negative(beta2, "Adam: beta2", upper=1.0)
        self.eps = _positive(eps, "Adam: eps")
        self.m: list = []
        self.v: list = []

    def config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )

    def _init_state(self, backend: Any, params: list) -> None:
        super()._init_state(backend, params)
        self.m = [backend.zeros(p.shape, p.dtype) for p in params]
        self.v = [backend.zeros(p.shape, p.dtype) for p in params]

    def _update(self, backend: Any, params: list, grads: list) -> None:
        backend.adam_step(
            params,
            grads,
            self.m,
            self.v,
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.t,
            self._decays,
        )


#: optimizer name -> (class, default keyword arguments)
OPTIMIZERS: dict[str, tuple[type[Optimizer], dict[str, Any]]] = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "adam": (Adam, {}),
}


def make_optimizer(spec: object, lr: float | None = None, **options: Any) -> Optimizer:
    """An optimizer from a name in :data:`OPTIMIZERS` (with ``lr`` and options) or an instance."""
    if isinstance(spec, Optimizer):
        given = {k: v for k, v in options.items() if v is not None}
        extra = (["lr"] if lr is not None else []) + list(given)
        if extra:
            raise ValueError(
                f"got an optimizer instance {spec!r} and also {', '.join(extra)}: set them on "
                "the instance, or pass the optimizer's name"
            )
        return spec
    if not isinstance(spec, str) or spec not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; choose one of: {', '.join(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[spec]
    kwargs = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    if lr is not None:
        kwargs["lr"] = lr
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"optimizer {spec!r}: {exc}") from None
