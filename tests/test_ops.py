"""Every backend op against plain float64 formulas, including extreme inputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import skip_unless_required, tolerance

import fastnn
from fastnn.backends import get_backend, unavailable_reason


def ref_sigmoid(z):
    return np.where(
        z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z)))
    )


def ref_log_softmax(Z):
    S = Z - Z.max(axis=1, keepdims=True)
    return S - np.log(np.exp(S).sum(axis=1, keepdims=True))


REFERENCE_ACTIVATIONS = {
    "identity": (lambda Z: Z, lambda dH, H: dH),
    "sigmoid": (ref_sigmoid, lambda dH, H: dH * H * (1 - H)),
    "tanh": (np.tanh, lambda dH, H: dH * (1 - H**2)),
    "relu": (lambda Z: np.maximum(Z, 0), lambda dH, H: dH * (H > 0)),
    "softmax": (
        lambda Z: np.exp(ref_log_softmax(Z)),
        lambda dH, H: np.einsum(
            "ni,nij->nj",
            dH,
            np.einsum("ni,ij->nij", H, np.eye(H.shape[1])) - np.einsum("ni,nj->nij", H, H),
        ),
    ),
}


def to(backend, a, dtype):
    return get_backend(backend).asarray(a, dtype=dtype)


def back(backend, a):
    return np.asarray(get_backend(backend).to_numpy(a), dtype=np.float64)


@pytest.fixture
def data(rng):
    return {
        "X": rng.normal(size=(7, 5)),
        "W": rng.normal(size=(3, 5)),
        "b": rng.normal(size=3),
        "dZ": rng.normal(size=(7, 3)),
        "Z": rng.normal(scale=3, size=(7, 3)),
    }


def test_affine_and_backward(backend, dtype, data):
    X, W, b, dZ = data["X"], data["W"], data["b"], data["dZ"]
    tol = tolerance(backend, dtype)
    Z = get_backend(backend).affine(
        to(backend, X, dtype), to(backend, W, dtype), to(backend, b, dtype)
    )
    np.testing.assert_allclose(back(backend, Z), X @ W.T + b, **tol)
    dX, dW, db = get_backend(backend).affine_backward(
        to(backend, dZ, dtype), to(backend, X, dtype), to(backend, W, dtype), need_dX=True
    )
    np.testing.assert_allclose(back(backend, dX), dZ @ W, **tol)
    np.testing.assert_allclose(back(backend, dW), dZ.T @ X, **tol)
    np.testing.assert_allclose(back(backend, db), dZ.sum(axis=0), **tol)
    assert (
        get_backend(backend).affine_backward(
            to(backend, dZ, dtype), to(backend, X, dtype), to(backend, W, dtype), need_dX=False
        )[0]
        is None
    )


def test_affine_accepts_non_contiguous_input(backend, dtype, data):
    X = np.asfortranarray(data["X"])[::2]
    Z = get_backend(backend).affine(
        to(backend, X, dtype), to(backend, data["W"], dtype), to(backend, data["b"], dtype)
    )
    np.testing.assert_allclose(
        back(backend, Z), X @ data["W"].T + data["b"], **tolerance(backend, dtype)
    )


@pytest.mark.parametrize("activation", list(REFERENCE_ACTIVATIONS))
def test_activation_and_backprop(backend, dtype, data, activation):
    forward, backward = REFERENCE_ACTIVATIONS[activation]
    b = get_backend(backend)
    tol = tolerance(backend, dtype)
    H = getattr(b, activation)(to(backend, data["Z"], dtype))
    H_ref = forward(data["Z"])
    np.testing.assert_allclose(back(backend, H), H_ref, **tol)
    dZ = getattr(b, "backprop_" + activation)(to(backend, data["dZ"], dtype), H)
    np.testing.assert_allclose(back(backend, dZ), backward(data["dZ"], H_ref), **tol)


@pytest.mark.parametrize("activation", list(REFERENCE_ACTIVATIONS))
def test_dense_forward_backward_compose_the_ops(backend, dtype, data, activation):
    forward, backward = REFERENCE_ACTIVATIONS[activation]
    X, W, bias = data["X"], data["W"], data["b"]
    b = get_backend(backend)
    tol = tolerance(backend, dtype)
    H = b.dense_forward(
        to(backend, X, dtype), to(backend, W, dtype), to(backend, bias, dtype), activation
    )
    H_ref = forward(X @ W.T + bias)
    np.testing.assert_allclose(back(backend, H), H_ref, **tol)
    dX, dW, db = b.dense_backward(
        to(backend, data["dZ"], dtype), to(backend, X, dtype), to(backend, W, dtype), H, activation
    )
    dZ_ref = backward(data["dZ"], H_ref)
    np.testing.assert_allclose(back(backend, dW), dZ_ref.T @ X, **tol)
    np.testing.assert_allclose(back(backend, db), dZ_ref.sum(axis=0), **tol)
    np.testing.assert_allclose(back(backend, dX), dZ_ref @ W, **tol)


@pytest.mark.parametrize("max_grid_y", [None, 2])
def test_dense_backward_across_block_and_chunk_boundaries(
    backend, dtype, rng, monkeypatch, max_grid_y
):
    """600 rows x 70 columns: several row chunks and column blocks of the fused bias-gradient
    reduction; with ``max_grid_y=2`` the cupy kernel must lengthen its chunks to fit."""
    if max_grid_y is not None:
        if backend != "cupy":
            pytest.skip("the grid limit is the cupy kernel's")
        import fastnn.backends.cupy_backend as cupy_backend

        monkeypatch.setattr(cupy_backend, "_MAX_GRID_Y", max_grid_y)
        assert cupy_backend._row_chunks(600) == (300, 2)
    X, W = rng.normal(size=(600, 9)), rng.normal(size=(70, 9))
    dH, H = rng.normal(size=(600, 70)), np.tanh(rng.normal(size=(600, 70)))
    dX, dW, db = get_backend(backend).dense_backward(
        *(to(backend, a, dtype) for a in (dH, X, W, H)), "tanh"
    )
    dZ = dH * (1 - H**2)
    tol = tolerance(backend, dtype)
    np.testing.assert_allclose(back(backend, db), dZ.sum(axis=0), **tol)
    np.testing.assert_allclose(back(backend, dW), dZ.T @ X, **tol)
    np.testing.assert_allclose(back(backend, dX), dZ @ W, **tol)


@pytest.mark.parametrize("n", [1, 256, 257, 65535 * 256, 65535 * 256 + 1, 10**10])
def test_cupy_bias_gradient_chunks_cover_every_row_within_the_grid_limit(n):
    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    from fastnn.backends.cupy_backend import _row_chunks

    chunk, chunks = _row_chunks(n)
    assert chunk >= 256 and chunks <= 65535 and (chunks - 1) * chunk < n <= chunks * chunk


@pytest.mark.parametrize("z", [-1e30, -1000.0, -50.0, 0.0, 50.0, 1000.0, 1e30])
def test_sigmoid_is_finite_and_exact_for_extreme_inputs(backend, dtype, z):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        h = back(backend, get_backend(backend).sigmoid(to(backend, np.array([[z]]), dtype)))
    assert np.isfinite(h).all() and 0 <= h[0, 0] <= 1
    if abs(z) < 80:  # in range of exp for both dtypes: compare with the closed form
        np.testing.assert_allclose(h[0, 0], 1 / (1 + np.exp(-z)), rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e30])
def test_softmax_cross_entropy_is_stable(backend, dtype, rng, scale):
    if dtype == "float32" and scale > 1e30:
        pytest.skip("beyond float32 range")
    Z = rng.normal(size=(6, 4)) * scale
    y = np.array([0, 1, 2, 3, 0, 1])
    b = get_backend(backend)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dZ = b.softmax_cross_entropy(to(backend, Z, dtype), b.asarray(y))
    loss_ref = -ref_log_softmax(Z)[np.arange(6), y].mean()
    P = np.exp(ref_log_softmax(Z))
    P[np.arange(6), y] -= 1
    np.testing.assert_allclose(float(loss), loss_ref, rtol=1e-5)
    np.testing.assert_allclose(back(backend, dZ), P / 6, **tolerance(backend, dtype))


def test_cross_entropy_one_hot_equals_labels(backend, dtype, data):
    b = get_backend(backend)
    y = np.array([2, 0, 1, 1, 0, 2, 2])
    loss_ids, dZ_ids = b.softmax_cross_entropy(to(backend, data["Z"], dtype), b.asarray(y))
    loss_hot, dZ_hot = b.softmax_cross_entropy(
        to(backend, data["Z"], dtype), to(backend, np.eye(3)[y], dtype)
    )
    np.testing.assert_allclose(float(loss_ids), float(loss_hot), rtol=1e-6)
    np.testing.assert_allclose(
        back(backend, dZ_ids), back(backend, dZ_hot), **tolerance(backend, dtype)
    )


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e30])
def test_sigmoid_binary_cross_entropy_is_stable(backend, dtype, rng, scale):
    Z = rng.normal(size=(5, 2)) * scale
    T = rng.integers(0, 2, size=(5, 2)).astype(float)
    b = get_backend(backend)
    loss, dZ = b.sigmoid_binary_cross_entropy(to(backend, Z, dtype), to(backend, T, dtype))
    loss_ref = np.mean(np.maximum(Z, 0) - Z * T + np.log1p(np.exp(-np.abs(Z))))
    np.testing.assert_allclose(float(loss), loss_ref, rtol=1e-5)
    np.testing.assert_allclose(
        back(backend, dZ), (ref_sigmoid(Z) - T) / Z.size, **tolerance(backend, dtype)
    )


def test_mse_matches_pytorch_convention(backend, dtype, data):
    H, T = data["Z"], data["dZ"]
    b = get_backend(backend)
    loss, dH = b.mse(to(backend, H, dtype), to(backend, T, dtype))
    np.testing.assert_allclose(float(loss), np.mean((H - T) ** 2), rtol=1e-5)
    np.testing.assert_allclose(back(backend, dH), 2 * (H - T) / H.size, **tolerance(backend, dtype))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("position", [0, 499, 1000])
def test_all_finite_finds_every_non_finite(backend, dtype, value, position):
    b = get_backend(backend)
    a = np.random.default_rng(0).normal(size=1001).astype(dtype)
    assert b.all_finite([b.asarray(a)])
    a[position] = value
    # With NUMBA_DISABLE_JIT=1 the kernel's ``inf * 0`` is NumPy scalar math, which warns.
    with np.errstate(invalid="ignore"):
        assert not b.all_finite([b.asarray(np.ones(3, dtype)), b.asarray(a)])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, ()), (1, (0, 0)), (1, (299, 256)), (2, (256,))])
def test_finite_flag_finds_a_non_finite_loss_or_gradient_anywhere(backend, dtype, value, where):
    """The device-side check the GPU training loop reads once per epoch: a 0-d loss, a
    300 x 257 gradient (more elements than the cupy kernel has threads) and a vector."""
    b = get_backend(backend)
    rng = np.random.default_rng(0)
    arrays = [np.array(0.5), rng.normal(size=(300, 257)), rng.normal(size=257)]
    assert bool(b.finite_flag([b.asarray(a, dtype=dtype) for a in arrays]))
    which, index = where
    arrays[which][index] = value
    assert not bool(b.finite_flag([b.asarray(a, dtype=dtype) for a in arrays]))


def test_all_finite_does_not_overflow_on_huge_finite_values(backend, dtype):
    b = get_backend(backend)
    assert b.all_finite([b.asarray(np.full(1000, np.finfo(dtype).max, dtype=dtype))])


def _cupy_backend():
    reason = unavailable_reason("cupy")
    if reason is not None:
        skip_unless_required("cupy", f"[cupy] {reason}")
    return fastnn.get_backend("cupy")


def test_cupy_pointer_tables_do_not_outlive_an_address_reused_at_another_size():
    """CuPy's pool gives a freed block to the next array of the same rounded size (512
    bytes), so a new array can have a dead one's address, and even its Python id, with
    another size. A table cached for the old array must not be used for the new one."""
    backend = _cupy_backend()
    import cupy

    for _ in range(100):
        old = cupy.empty(10, cupy.float32)
        old.fill(1.0)
        assert bool(backend.finite_flag([old]))  # builds and caches old's table
        key = (id(old), old.data.ptr)
        del old
        new = cupy.empty(12, cupy.float32)  # 48 bytes: the same 512-byte bin
        if (id(new), new.data.ptr) == key:
            break
    else:
        pytest.fail("the pool never handed the freed block to the next array")
    new.fill(1.0)
    new[11] = np.nan  # past the old array's 10 elements
    assert not bool(backend.finite_flag([new]))


def test_cupy_kernels_are_looked_up_once_per_name_and_dtype(monkeypatch, rng):
    backend = _cupy_backend()
    import cupy

    looked_up = []
    original = cupy.RawModule.get_function
    monkeypatch.setattr(
        cupy.RawModule,
        "get_function",
        lambda self, name: looked_up.append(name) or original(self, name),
    )
    cupy_backend = sys.modules[type(backend).__module__]  # the module the backend runs
    for module in (cupy_backend._DENSE, cupy_backend._OPTIM):
        monkeypatch.setattr(module, "_functions", {})
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, size=64)
    model = fastnn.MLP([5, 8, 3], activation="relu", loss="cross_entropy", backend="cupy", seed=0)
    model.fit(X, y, epochs=3, batch_size=8, optimizer="adam")  # 24 steps
    assert looked_up and len(looked_up) == len(set(looked_up)), looked_up


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_float32_optimizer_updates_stay_in_float32(name, wd):
    """Every optimizer kernel computes in the parameters' dtype: bit for bit the NumPy
    backend's float32 arithmetic (a float64 literal in a kernel changes the last bits and
    keeps the loop from vectorizing)."""
    if unavailable_reason("numba") is not None:
        skip_unless_required("numba", f"[numba] {unavailable_reason('numba')}")
    rng = np.random.default_rng(0)
    shapes = [(37, 11), (37,)]
    results = []
    for backend in (get_backend("numpy"), get_backend("numba")):
        params = [rng.normal(size=s).astype(np.float32) for s in shapes]
        grads = [rng.normal(size=s).astype(np.float32) for s in shapes]
        rng = np.random.default_rng(0)  # the same arrays for both backends
        m = [np.full(s, 0.1, np.float32) for s in shapes]
        v = [np.full(s, 0.2, np.float32) for s in shapes]
        decays = [wd, 0.0]
        for t in (1, 2, 3):
            if name == "adam":
                backend.adam_step(params, grads, m, v, 1e-3, 0.9, 0.999, 1e-8, t, decays)
            else:
                mu = 0.0 if name == "sgd" else 0.9
                velocities = None if name == "sgd" else m
                backend.sgd_step(params, grads, velocities, 0.05, mu, name == "nesterov", decays)
        results.append([p.copy() for p in params])
    for a, b in zip(*results):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(b, a)
