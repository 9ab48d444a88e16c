"""What is particular to the Numba backend: workspaces instead of allocations."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import need_module

import fastnn

# a visible skip, or a failure where $FASTNN_REQUIRE lists numba (as CI's does)
numba = need_module("numba", "pip install 'fastnn[numba]'", module_level=True)


def _step_allocations(backend: str, steps: int = 20) -> int:
    """Peak bytes newly allocated while running ``steps`` training steps after warm-up."""
    rng = np.random.default_rng(0)
    model = fastnn.MLP(
        [64, 32, 10], activation="relu", loss="cross_entropy", backend=backend, seed=0
    )
    X = model.backend.asarray(rng.random((32, 64)), dtype="float32")
    T = model.backend.asarray(rng.integers(0, 10, 32))
    opt = fastnn.SGD(lr=0.01)
    for _ in range(3):
        model.train_batch(X, T)
        opt.step(model)
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in range(steps):
        model.train_batch(X, T)
        opt.step(model)
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    return peak


def test_a_training_step_allocates_no_arrays():
    # the NumPy backend allocates every intermediate (about 30 kB per step here); the
    # Numba backend writes into workspaces, leaving only Python's small objects
    assert _step_allocations("numpy") > 20_000
    assert _step_allocations("numba") < 4_000


def test_workspaces_stay_bounded_over_many_batch_sizes():
    rng = np.random.default_rng(0)
    model = fastnn.MLP([16, 8, 3], loss="cross_entropy", backend="numba", seed=0)
    X, y = rng.random((300, 16)), rng.integers(0, 3, 300)
    model.fit(X, y, epochs=1, batch_size=64)
    work = model.backend._work
    after_one = work.nbytes()
    for batch_size in range(5, 200, 7):
        model.fit(X, y, epochs=1, batch_size=batch_size)
    # two shapes per layer and role at most, each no larger than the largest batch
    assert work.nbytes() <= 2 * after_one * 200 / 64 + 2 * 300 * 16 * 4 * 4


def test_workspaces_are_freed_with_their_model():
    import gc

    rng = np.random.default_rng(0)
    work = fastnn.get_backend("numba")._work
    before = work.nbytes()
    model = fastnn.MLP([128, 256, 10], loss="cross_entropy", backend="numba", seed=0)
    model.fit(rng.random((512, 128)), rng.integers(0, 10, 512), epochs=1, batch_size=256)
    assert work.nbytes() > before
    del model
    gc.collect()
    assert work.nbytes() <= before + 512 * 128 * 4  # only the data's row buffer may linger


# -- float32 kernels compute in float32 --------------------------------------------------

from fastnn.kernels import dense, optim  # noqa: E402

F32 = np.float32
_v, _m = np.ones(8, F32), np.ones((4, 8), F32)
# (kernel, float32 arguments) for every elementwise kernel
ELEMENTWISE_KERNELS = {
    "bias_activation": (dense.bias_activation, (_m.copy(), _v, dense.SIGMOID)),
    "activation_backward_bias": (
        dense.activation_backward_bias,
        (_m, _m, dense.SIGMOID, _m.copy(), _v.copy()),
    ),
    "column_sums": (dense.column_sums, (_m, _v.copy())),
    "sgd": (optim.sgd, (_v.copy(), _v, F32(0.1), F32(0.01))),
    "momentum": (optim.momentum, (_v.copy(), _v, _v.copy(), F32(0.1), F32(0.9), False, F32(0))),
    "nesterov": (optim.momentum, (_v.copy(), _v, _v.copy(), F32(0.1), F32(0.9), True, F32(0))),
    "adam": (
        optim.adam,
        (_v.copy(), _v, _v.copy(), _v.copy(), F32(1e-3), F32(0.9), F32(0.1), F32(0.999))
        + (F32(1e-3), F32(1e-8), F32(0.5), F32(0.01)),
    ),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE_KERNELS))
def test_float32_kernels_never_widen_to_float64(name):
    """The float32 specialization of each elementwise kernel has no float -> double
    conversion: a float64 literal (``1.0 - h``) would compute in float64, round
    differently from NumPy's float32 and keep the loop from vectorizing."""
    kernel, args = ELEMENTWISE_KERNELS[name]
    fresh = numba.njit(error_model="numpy")(kernel.py_func)  # not from the disk cache
    fresh(*args)
    ir = fresh.inspect_llvm(fresh.signatures[0])
    assert "fpext float" not in ir, f"{name} converts float32 to float64"


@pytest.mark.parametrize("activation", ["identity", "relu", "sigmoid", "tanh"])
def test_numba_dense_layer_is_numpys_float32_arithmetic(activation):
    """Forward and backward of a float32 dense layer: bit for bit the NumPy backend's,
    but the bias gradient (a column sum, whose order of additions differs)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(33, 17)).astype(F32)
    X[3, 4] = np.nan  # propagates the same way
    W = rng.normal(size=(9, 17)).astype(F32)
    b = rng.normal(size=9).astype(F32)
    dH = rng.normal(size=(33, 9)).astype(F32)
    ours, reference = fastnn.backends.get_backend("numba"), fastnn.backends.get_backend("numpy")
    H = ours.dense_forward(X, W, b, activation).copy()
    np.testing.assert_array_equal(H, reference.dense_forward(X, W, b, activation))
    got = ours.dense_backward(dH, X, W, H, activation)
    want = reference.dense_backward(dH, X, W, H, activation)
    np.testing.assert_array_equal(got[0], want[0])  # dX
    np.testing.assert_array_equal(got[1], want[1])  # dW
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5)  # db


@pytest.mark.parametrize("over", [0, 1], ids=["at the threshold", "one row over"])
def test_networks_up_to_the_whole_run_threshold_take_it_with_the_same_results(over, monkeypatch):
    """``fit`` hands a network whose weights x batch size is at most SMALL_NETWORK_WORK to the
    one-call kernel (and one a row over to the layer-by-layer path), and both give the NumPy
    backend's float64 training."""
    from fastnn.backends import numba_backend

    weights = 16 * 32 + 32 * 2
    batch = numba_backend.SMALL_NETWORK_WORK // weights + over
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * batch + 5, 16))
    y = rng.integers(0, 2, size=len(X))
    kwargs = dict(activation="sigmoid", loss="cross_entropy", dtype="float64", seed=1)
    model = fastnn.MLP([16, 32, 2], backend="numba", **kwargs)
    reference = fastnn.MLP([16, 32, 2], backend="numpy", **kwargs)
    calls = []
    original = numba_backend.NumbaBackend.sgd_epochs

    def spy(self, *args):
        result = original(self, *args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(numba_backend.NumbaBackend, "sgd_epochs", spy)
    fit = dict(epochs=3, batch_size=batch, optimizer="sgd", lr=0.5, progress=False)
    history = model.fit(X, y, **fit)
    assert calls == [not over]
    np.testing.assert_allclose(history["loss"], reference.fit(X, y, **fit)["loss"], rtol=1e-10)
    for (W, b), (rW, rb) in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(W, rW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_optimizer_kernels_read_gradients_of_any_layout(optimizer):
    """A layer of one's own may leave a gradient as a transposed view: the Numba update
    reads it as it is (the NumPy backend's float32 arithmetic, bit for bit), and the
    finiteness check sees a NaN in it."""
    rng = np.random.default_rng(0)
    P0 = rng.random((3, 4), dtype=np.float32)
    G = rng.random((4, 3), dtype=np.float32).T  # not C-contiguous
    results = []
    for name in ("numpy", "numba"):
        backend, P = fastnn.get_backend(name), P0.copy()
        state = [np.zeros_like(P)]
        if optimizer == "adam":
            backend.adam_step([P], [G], state, [np.zeros_like(P)], 0.1, 0.9, 0.999, 1e-8, 1, [0.01])
        else:
            velocities = state if optimizer == "momentum" else None
            backend.sgd_step([P], [G], velocities, 0.1, 0.9, False, [0.01])
        results.append(P)
    np.testing.assert_array_equal(results[1], results[0])
    assert not np.array_equal(results[1], P0)
    bad = G.copy(order="F")  # column-major: not C-contiguous either
    bad[1, 2] = np.nan
    assert not bad.flags.c_contiguous
    assert not fastnn.get_backend("numba").all_finite([bad])


def test_each_whole_run_call_takes_as_many_epochs_as_its_work_budget(monkeypatch):
    """Ctrl-C and the progress bar wait for a call of the kernel: each call runs as many
    whole epochs as SMALL_NETWORK_CALL_WORK allows (5 epochs: calls of 2, 2 and 1), with the
    same bits as one call for all; a network whose one epoch exceeds it trains layer by
    layer, equal to the NumPy backend's float64 training."""
    from fastnn.backends import numba_backend

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    y = rng.integers(0, 3, size=40)
    weights = 6 * 8 + 8 * 3

    def fit(budget, backend="numba"):
        monkeypatch.setattr(numba_backend, "SMALL_NETWORK_CALL_WORK", budget)
        model = fastnn.MLP(
            [6, 8, 3],
            activation="tanh",
            loss="cross_entropy",
            backend=backend,
            seed=2,
            dtype="float64",
        )
        history = model.fit(X, y, epochs=5, batch_size=8, lr=0.3, progress=False)
        return history["loss"], model.get_weights()

    calls = []
    original = numba_backend.NumbaBackend.sgd_epochs

    def spy(self, *args):
        result = original(self, *args)
        calls.append(None if result is None else len(result[0]))
        return result

    monkeypatch.setattr(numba_backend.NumbaBackend, "sgd_epochs", spy)
    one_call = fit(2**40)
    assert calls == [5]
    calls.clear()
    chunked = fit(2 * weights * len(X) + 1)
    assert calls == [2, 2, 1]
    assert chunked[0] == one_call[0]
    for got, expected in zip(chunked[1], one_call[1], strict=True):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    calls.clear()
    layered = fit(weights * len(X) - 1)
    assert calls == [None]
    reference = fit(2**40, backend="numpy")
    np.testing.assert_allclose(layered[0], reference[0], rtol=1e-10)
    for got, expected in zip(layered[1], reference[1], strict=True):
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-10, atol=1e-12)
