"""scikit-learn estimators: fastnn's MLP behind the names and methods sklearn users know.

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's own MLP parameters
(``hidden_layer_sizes``, ``activation``, ``alpha`` as weight decay, ``batch_size``,
``learning_rate_init``, ``max_iter`` epochs, ``random_state``, ``early_stopping``,
``validation_fraction``, ``n_iter_no_change``) and fastnn's (``optimizer``, ``backend``,
``dtype``, ``dropout``, ``batch_norm``, and ``preprocess``: ``"standard"`` or ``"minmax"``
scaling fitted on the training data and kept as the network's first layer), and work in
``Pipeline``, ``GridSearchCV`` and
``clone``. Pickled, an estimator holds its parameters and fitted state as plain values
and NumPy arrays: no fastnn object. Needs ``pip install "fastnn[sklearn]"``; ``import
fastnn`` never imports scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .layers import Rescale, Standardize, layer_from_config
from .model import MLP, Sequential

_FITTED = ("_layers", "_state", "_loss", "_dtype")


class _FastnnMLP(BaseEstimator):
    """The parameters, fitting and pickling the two estimators share."""

    _loss = "mse"

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        random_state: Any = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        optimizer: str = "adam",
        backend: Any = None,
        dtype: str = "float64",
        dropout: float = 0.0,
        batch_norm: bool = False,
        preprocess: str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.optimizer = optimizer
        self.backend = backend
        self.dtype = dtype
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.preprocess = preprocess

    def _fit_model(self, X: Any, T: Any, n_outputs: int, stratify: Any) -> None:
        """Train a fresh fastnn MLP on ``X`` and targets ``T``; keep its state as arrays."""
        sizes: Any = self.hidden_layer_sizes
        hidden = [int(sizes)] if isinstance(sizes, int | np.integer) else [int(n) for n in sizes]
        seed = _seed(self.random_state)
        model = MLP(
            [X.shape[1], *hidden, n_outputs],
            activation=self.activation,
            loss=self._loss,
            backend=self.backend,
            dtype=self.dtype,
            seed=seed,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            preprocess=_preprocessing(self.preprocess, X),
        )
        validation = None
        if self.early_stopping:
            X, X_val, T, T_val = train_test_split(
                X, T, test_size=self.validation_fraction, random_state=seed, stratify=stratify
            )
            validation = (X_val, T_val)
        batch = min(200, len(X)) if self.batch_size == "auto" else int(self.batch_size)
        history = model.fit(
            X,
            T,
            epochs=self.max_iter,
            batch_size=min(batch, len(X)),
            optimizer=self.optimizer,
            lr=self.learning_rate_init,
            weight_decay=self.alpha or None,
            validation_data=validation,
            patience=self.n_iter_no_change if self.early_stopping else None,
            progress=False,
        )
        self.loss_curve_ = list(history["loss"])
        self.n_iter_ = len(self.loss_curve_)
        self._layers = [(layer.kind, layer.config()) for layer in model.layers]
        self._state = model.state_dict()
        self._dtype = model.dtype
        self._model_cache: Sequential | None = model

    def _model(self) -> Sequential:
        """The fitted network (made again from the plain fitted state after unpickling)."""
        check_is_fitted(self, _FITTED[:2])
        model = getattr(self, "_model_cache", None)
        if model is None:
            layers = [layer_from_config(kind, config) for kind, config in self._layers]
            model = Sequential(layers, loss=self._loss, backend=self.backend, dtype=self._dtype)
            model.load_state_dict(self._state)
            self._model_cache = model
        return model

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_model_cache", None)  # plain values and arrays only: no fastnn object
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._model_cache = None


class MLPClassifier(ClassifierMixin, _FastnnMLP):
    """A multilayer perceptron classifier trained by fastnn (softmax and cross-entropy).

    The parameters are scikit-learn's ``MLPClassifier``'s where they share a name, and
    fastnn's ``optimizer`` (``"adam"``, ``"sgd"``, ``"momentum"``, ``"nesterov"``),
    ``backend``, ``dtype``, ``dropout`` and ``batch_norm``. Fitted attributes:
    ``classes_``, ``n_features_in_``, ``feature_names_in_`` (for named columns),
    ``loss_curve_`` and ``n_iter_``.
    """

    _loss = "cross_entropy"

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        n_outputs = max(len(self.classes_), 2)
        stratify = labels if self.early_stopping and len(self.classes_) > 1 else None
        import warnings

        with warnings.catch_warnings():  # one class: sklearn's own answer is that class
            warnings.filterwarnings("ignore", message=".*holds a single class")
            self._fit_model(X, labels, n_outputs, stratify)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class in ``classes_``, shape (n_samples, n_classes)."""
        model = self._model()
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return model.predict_proba(X)[:, : len(self.classes_)]

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample."""
        probabilities = self.predict_proba(X)  # (checks first that the estimator is fitted)
        return self.classes_[probabilities.argmax(axis=1)]


class MLPRegressor(RegressorMixin, _FastnnMLP):
    """A multilayer perceptron regressor trained by fastnn (identity output, mean squared
    error). Parameters and fitted attributes as :class:`MLPClassifier` (no ``classes_``)."""

    _loss = "mse"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of shape (n, k) trains k outputs
        return tags

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        self._one_output = y.ndim == 1
        T = y.reshape(len(y), -1)
        self._fit_model(X, T, T.shape[1], None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted targets: shape (n_samples,) or (n_samples, n_targets) as fitted."""
        model = self._model()
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = model.predict(X)
        return out[:, 0] if self._one_output else out


def _preprocessing(kind: str | None, X: Any) -> Any:
    """The network's first layer for ``preprocess``: fitted on the training data and kept
    with the model (and in its ONNX export), as ``fastnn train --scale`` does."""
    if kind is None:
        return None
    if kind not in ("standard", "minmax"):
        raise ValueError(f"preprocess must be None, 'standard' or 'minmax', got {kind!r}")
    return (Standardize if kind == "standard" else Rescale).fit(X)


def _seed(random_state: Any) -> int | None:
    """An int seed for fastnn from sklearn's ``random_state`` (None, an int or a
    RandomState, which is drawn from, as sklearn's own estimators do)."""
    if random_state is None:
        return None
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    return int(random_state.randint(0, 2**31 - 1))
