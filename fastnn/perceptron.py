"""Rosenblatt's perceptron (1957), the lecture's first model."""

from __future__ import annotations

from typing import Any

from .backends import Backend, get_backend
from .init import make_rng
from .model import check_dtype
from .validation import check_features, check_vector, positive_float, positive_int


class Perceptron:
    """``y = sign(W . x + b)``, trained by the perceptron learning rule.

    ``sign(z) = 1`` if ``z > 0`` else ``-1``. Each misclassified sample moves the
    decision boundary towards it: ``W += lr y x``, ``b += lr y``. On linearly separable
    data this stops making mistakes after finitely many updates (Novikoff, 1962).

    Parameters
    ----------
    n_features : int
    lr : float
        Learning rate (any positive value finds a separator on separable data).
    max_epochs : int
        Passes over the data before giving up on data that is not separable.
    shuffle : bool
        Visit samples in a new seeded random order every epoch.
    backend, dtype, seed
        As for :class:`fastnn.Sequential`.

    Attributes
    ----------
    W : array of shape (n_features,)
    b : float
    classes_ : (negative, positive) labels, the two values seen in ``y`` (sorted)
    mistakes_ : list of int
        Misclassified samples in each epoch; ends in 0 when training converged.
    converged_ : bool
    """

    def __init__(
        self,
        n_features: int,
        lr: float = 1.0,
        max_epochs: int = 100,
        shuffle: bool = True,
        backend: str | Backend | None = None,
        dtype: str = "float64",
        seed: int | None = None,
    ) -> None:
        self.n_features = positive_int(n_features, "Perceptron: n_features")
        self.lr = positive_float(lr, "Perceptron: lr")
        self.max_epochs = positive_int(max_epochs, "Perceptron: max_epochs")
        self.shuffle = bool(shuffle)
        self.dtype = check_dtype(dtype)
        self.backend = get_backend(backend)
        self._rng = make_rng(seed)
        self.W = self.backend.zeros((self.n_features,), self.dtype)
        self.b = 0.0
        self.classes_: tuple[Any, Any] | None = None
        self.mistakes_: list[int] = []
        self.converged_ = False

    def __repr__(self) -> str:
        return f"Perceptron(n_features={self.n_features}, lr={self.lr})"

    def fit(self, X: Any, y: Any) -> Perceptron:
        """Apply the learning rule until an epoch makes no mistake (or ``max_epochs``).

        ``y`` holds exactly two distinct labels, e.g. -1/1 or 0/1; the larger is the
        positive class.
        """
        host = check_features(X, self.n_features, where=repr(self))
        labels = check_vector(y, host.shape[0])
        classes = sorted(set(labels.tolist()))
        if len(classes) != 2:
            raise ValueError(f"Perceptron needs exactly two classes in y, found {classes[:5]}")
        signs = (labels == classes[1]) * 2.0 - 1.0
        backend = self.backend
        Xd = backend.asarray(host, dtype=self.dtype)
        yd = backend.asarray(signs, dtype=self.dtype)
        self.classes_ = (classes[0], classes[1])
        self.mistakes_ = []
        self.converged_ = False
        for _ in range(self.max_epochs):
            if self.shuffle:
                order = backend.asarray(self._rng.permutation(host.shape[0]))
                Xe, ye = backend.take_rows(Xd, order), backend.take_rows(yd, order)
            else:
                Xe, ye = Xd, yd
            mistakes, self.b = backend.perceptron_epoch(Xe, ye, self.W, self.b, self.lr)
            self.mistakes_.append(mistakes)
            if mistakes == 0:
                self.converged_ = True
                break
        return self

    def decision_function(self, X: Any) -> Any:
        """``W . x + b`` for each row of ``X``: a host array of shape (n,)."""
        host = check_features(X, self.n_features, where=repr(self))
        Xd = self.backend.asarray(host, dtype=self.dtype)
        return self.backend.to_numpy(Xd @ self.W + self.b)

    def predict(self, X: Any) -> Any:
        """The label of ``sign(W . x + b)`` for each row (``classes_[1]`` where positive),
        a host array of shape (n,)."""
        if self.classes_ is None:
            raise RuntimeError("Perceptron.predict before fit")
        z = self.decision_function(X)
        neg, pos = self.classes_
        positive = z > 0
        return positive * pos + (~positive) * neg
