"""Bad input: a clear error naming what is wrong, raised before any state changes."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn

X_OK = np.random.default_rng(0).normal(size=(12, 4))
Y_OK = np.arange(12) % 3


@pytest.fixture
def model(backend):
    m = fastnn.MLP([4, 5, 3], activation="relu", loss="cross_entropy", backend=backend, seed=0)
    m.fit(X_OK, Y_OK, epochs=2, batch_size=4, lr=0.1)  # a model with history worth keeping
    return m


def with_nan(a):
    a = a.astype(float).copy()
    a[3, 1] = np.nan
    return a


FIT_CASES = {
    "wrong number of features": (
        (X_OK[:, :3], Y_OK),
        {},
        ValueError,
        r"Dense\(4 -> 5.*\(layer 0\): expected X with 4 features, got shape \(12, 3\)",
    ),
    "different lengths": ((X_OK, Y_OK[:11]), {}, ValueError, "12 samples in X, 11 in y"),
    "NaN in X": ((with_nan(X_OK), Y_OK), {}, ValueError, "X contains nan at row 3, column 1"),
    "Inf in X": ((np.where(X_OK > 1.5, np.inf, X_OK), Y_OK), {}, ValueError, "X contains inf"),
    "NaN in y": ((X_OK, np.where(Y_OK == 2, np.nan, Y_OK)), {}, ValueError, "y contains nan"),
    "label out of range": (
        (X_OK, np.where(Y_OK == 2, 3, Y_OK)),
        {},
        ValueError,
        r"y\[2\] = 3 is out of range.*0\.\.2",
    ),
    "negative label": ((X_OK, -Y_OK), {}, ValueError, "out of range"),
    "non-integer label": ((X_OK, Y_OK + 0.5), {}, ValueError, "is not a class id"),
    "string X": ((X_OK.astype(str), Y_OK), {}, TypeError, "dtype <U"),
    "object y": ((X_OK, np.array([object()] * 12)), {}, TypeError, "dtype object"),
    "empty X": ((np.zeros((0, 4)), np.zeros(0)), {}, ValueError, "X is empty"),
    "1-D X": ((X_OK[:, 0], Y_OK), {}, ValueError, "must be 2-D.*reshape"),
    "batch_size 0": ((X_OK, Y_OK), {"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
    "epochs -1": ((X_OK, Y_OK), {"epochs": -1}, ValueError, "epochs must be an int >= 1"),
    "epochs float": ((X_OK, Y_OK), {"epochs": 2.5}, ValueError, "epochs"),
    "lr 0": ((X_OK, Y_OK), {"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
    "lr negative": ((X_OK, Y_OK), {"lr": -0.1}, ValueError, "lr must be"),
    "lr nan": ((X_OK, Y_OK), {"lr": float("nan")}, ValueError, "lr must be"),
    "unknown optimizer": ((X_OK, Y_OK), {"optimizer": "lbfgs"}, ValueError, "unknown optimizer"),
    "momentum 1": (
        (X_OK, Y_OK),
        {"optimizer": "momentum", "momentum": 1.0},
        ValueError,
        "momentum",
    ),
    "bad validation pair": ((X_OK, Y_OK), {"validation_data": (X_OK,)}, ValueError, "pair"),
    "bad validation X": (
        (X_OK, Y_OK),
        {"validation_data": (X_OK[:, :2], Y_OK)},
        ValueError,
        "expected X_val with 4 features",
    ),
    "patience 0": ((X_OK, Y_OK), {"patience": 0}, ValueError, "patience"),
    "one-hot wrong width": ((X_OK, np.eye(4)[Y_OK]), {}, ValueError, r"shape \(12, 4\)"),
    "soft targets not summing to 1": ((X_OK, np.full((12, 3), 0.5)), {}, ValueError, "sums to 1.5"),
    "X beyond float32": (
        (np.where(np.arange(48).reshape(12, 4) == 22, 1e39, X_OK), Y_OK),
        {},
        ValueError,
        r"X contains 1e\+39 at row 5, column 2, beyond the model's dtype float32",
    ),
}


def _state(model):
    """Everything fit could change: weights, history, the optimizer and its arrays, and the
    model's generator."""
    opt = model.optimizer
    arrays = [
        model.backend.to_numpy(a).copy()
        for name in opt.state_names
        for a in (getattr(opt, name) or [])
    ]
    return (
        model.get_weights(),
        {k: list(v) for k, v in model.history.items()},
        opt,
        opt.t,
        arrays,
        model._rng.bit_generator.state,
    )


def _assert_same_state(before, after):
    (weights, history, opt, t, arrays, rng), (weights2, history2, opt2, t2, arrays2, rng2) = (
        before,
        after,
    )
    for (W, b), (W2, b2) in zip(weights, weights2, strict=True):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    for a, a2 in zip(arrays, arrays2, strict=True):
        np.testing.assert_array_equal(a, a2)
    assert history == history2 and opt is opt2 and t == t2 and rng == rng2


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_rejects_bad_input_before_changing_anything(model, case):
    args, kwargs, error, message = FIT_CASES[case]
    model.fit(X_OK, Y_OK, epochs=1, batch_size=4, optimizer="adam", lr=0.01)  # optimizer state
    before = _state(model)
    with pytest.raises(error, match=message):
        model.fit(*args, **{"epochs": 1, **kwargs})
    _assert_same_state(before, _state(model))


@pytest.mark.parametrize("method", ["fit", "predict", "predict_proba", "evaluate", "gradients"])
def test_inputs_beyond_the_model_dtype_are_bad_input(model, method):
    """1e39 is finite in float64 but infinite in float32: refused, naming value and dtype."""
    X = X_OK.copy()
    X[3, 1] = -1e39
    before = model.get_weights()
    args = (X,) if method.startswith("predict") else (X, Y_OK)
    with pytest.raises(
        ValueError, match=r"X contains -1e\+39 at row 3, column 1, beyond the model's dtype float32"
    ):
        getattr(model, method)(*args)
    for (W, b), (W2, b2) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    wide = model.clone(dtype="float64")
    assert np.isfinite(wide.predict_proba(X)).all()  # within float64's range: accepted


@pytest.mark.parametrize("method", ["fit", "evaluate", "gradients"])
def test_targets_beyond_the_model_dtype_are_bad_input(backend, method):
    y = np.zeros((12, 2))
    y[7, 0] = 1e39
    model = fastnn.MLP([4, 5, 2], loss="mse", backend=backend, seed=0)
    before = model.get_weights()
    with pytest.raises(
        ValueError, match=r"y contains 1e\+39 at index \(7, 0\), beyond the model's dtype float32"
    ):
        getattr(model, method)(X_OK, y)
    for (W, b), (W2, b2) in zip(before, model.get_weights()):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "evaluate", "gradients"])
def test_inference_rejects_wrong_features(model, method):
    args = (X_OK[:, :3],) if method.startswith("predict") else (X_OK[:, :3], Y_OK)
    with pytest.raises(ValueError, match="expected X with 4 features"):
        getattr(model, method)(*args)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda: fastnn.MLP([4, 3], activation="gelu"),
            ValueError,
            "unknown activation 'gelu'; choose one of: identity, sigmoid, tanh, relu, softmax",
        ),
        (
            lambda: fastnn.MLP([4, 3], loss="hinge"),
            ValueError,
            "unknown loss 'hinge'; choose one of: mse, cross_entropy, binary_cross_entropy",
        ),
        (
            lambda: fastnn.MLP([4, 3], output="relu", loss="cross_entropy"),
            ValueError,
            "needs a 'softmax' output layer",
        ),
        (lambda: fastnn.MLP([4, 1], loss="cross_entropy"), ValueError, "constant"),
        (lambda: fastnn.MLP([4]), ValueError, "at least"),
        (lambda: fastnn.MLP([4, 0, 2]), ValueError, "n_out must be a positive int"),
        (lambda: fastnn.MLP([4, 2], dtype="float16"), ValueError, "dtype must be one of"),
        (lambda: fastnn.MLP([4, 2], backend="jax"), ValueError, "unknown backend 'jax'"),
        (lambda: fastnn.MLP([4, 2], seed=-1), ValueError, "seed"),
        (
            lambda: fastnn.Sequential([fastnn.Dense(4, 3), fastnn.Dense(2, 1)]),
            ValueError,
            r"layer 1 Dense\(2 -> 1.*expects 2 inputs but layer 0 .* gives 3",
        ),
        (lambda: fastnn.Sequential([]), ValueError, "at least one layer"),
        (lambda: fastnn.Sequential(["dense"]), TypeError, "takes fastnn layers .*Dense"),
    ],
)
def test_bad_model_definitions(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_single_class_warns():
    m = fastnn.MLP([4, 3], loss="cross_entropy", seed=0)
    with pytest.warns(UserWarning, match="single class"):
        m.fit(X_OK, np.zeros(12, dtype=int), epochs=1)


def test_set_weights_checks_shapes_first(model):
    weights = model.get_weights()
    bad = [weights[0], (np.zeros((3, 4)), np.zeros(3))]
    with pytest.raises(ValueError, match=r"layer 1 .* expected W \(3, 5\)"):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()[0][0], weights[0][0])


def test_dense_without_model_has_no_weights():
    with pytest.raises(RuntimeError, match="no weights yet"):
        fastnn.Dense(3, 2).forward(np.ones((1, 3)))
