"""The layer protocol and the layers beyond Dense: Activation, Dropout, BatchNorm."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need_module, tolerance

import fastnn
from fastnn import Activation, BatchNorm, Dense, Dropout
from fastnn.activations import ACTIVATIONS
from fastnn.backends import get_backend
from fastnn.backends.base import Backend


def data(n=40, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, size=n)


# -- the protocol ---------------------------------------------------------------------


def test_sequential_takes_any_mix_of_layers_and_keeps_the_objects(backend):
    layers = [Dense(5, 8), BatchNorm(8), Activation("tanh"), Dropout(0.2), Dense(8, 2)]
    model = fastnn.Sequential(layers, loss="mse", backend=backend, seed=0)
    assert model.layers == layers and all(a is b for a, b in zip(model.layers, layers))
    assert Dense(3, 4).activation == "identity"
    last = fastnn.Sequential([Dense(5, 3), Dropout(0.5)], loss="mse", seed=0)  # Dropout last
    X, _ = data()
    last.fit(X, np.zeros((40, 3)), epochs=1, batch_size=8)
    assert last.predict(X).shape == (40, 3)


def test_gradients_give_one_tuple_per_layer_in_layer_order():
    X, y = data()
    model = fastnn.MLP([5, 6, 3], loss="cross_entropy", dropout=0.5, batch_norm=True, seed=0)
    grads = model.gradients(X, y)
    shapes = [tuple(g.shape for g in layer) for layer in grads]
    assert shapes == [((6, 5), (6,)), ((6,), (6,)), (), (), ((3, 6), (3,))]
    assert [len(w) for w in model.get_weights()] == [2, 2, 0, 0, 2]


def test_gradients_change_nothing_and_draw_no_dropout_mask():
    """gradients() is training mode (batch statistics) without masks or statistic updates:
    with the same weights, a network with dropout has the gradients of one without."""
    X, y = data()
    with_dropout = fastnn.Sequential(
        [Dense(5, 6, "tanh"), BatchNorm(6), Dropout(0.5), Dense(6, 3, "softmax")],
        loss="cross_entropy",
        dtype="float64",
        seed=0,
    )
    without = fastnn.Sequential(
        [Dense(5, 6, "tanh"), BatchNorm(6), Dense(6, 3, "softmax")],
        loss="cross_entropy",
        dtype="float64",
        seed=0,
    )
    without.set_weights([w for w in with_dropout.get_weights() if w])
    before = with_dropout.state_dict()
    got = [g for g in with_dropout.gradients(X, y) if g]
    for layer, ref in zip(got, without.gradients(X, y), strict=True):
        for a, b in zip(layer, ref, strict=True):
            np.testing.assert_array_equal(a, b)
    for name, value in with_dropout.state_dict().items():
        np.testing.assert_array_equal(value, before[name])  # running statistics unchanged


def test_a_new_activation_works_on_every_backend_before_it_has_a_kernel(monkeypatch, backend):
    """Fused overrides fall back to the base for names they do not know."""
    monkeypatch.setitem(ACTIVATIONS, "softplus", "glorot")
    monkeypatch.setattr(Backend, "softplus", lambda self, Z: self.xp.logaddexp(0, Z), raising=False)
    monkeypatch.setattr(
        Backend,
        "backprop_softplus",
        lambda self, dH, H: dH * (1 - self.xp.exp(-H)),
        raising=False,
    )
    X, y = data()
    kwargs = dict(activation="softplus", loss="cross_entropy", seed=1)
    model = fastnn.MLP([5, 7, 3], backend=backend, dtype="float64", **kwargs)
    reference = fastnn.MLP([5, 7, 3], backend="numpy", dtype="float64", **kwargs)
    fit = dict(epochs=3, batch_size=8, optimizer="sgd", lr=0.1)
    np.testing.assert_allclose(
        model.fit(X, y, **fit)["loss"], reference.fit(X, y, **fit)["loss"], rtol=1e-10
    )
    assert max(fastnn.gradcheck(reference, X[:8], y[:8])) < 1e-6


# -- Dropout --------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan"), "0.5", True])
def test_dropout_probability_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be a number in \[0, 1\)"):
        Dropout(p)


@pytest.mark.parametrize(
    ("counter", "key", "words"),
    [  # Random123's known-answer vectors for Philox4x32-10
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_matches_the_known_answers_on_every_backend(backend, counter, key, words):
    b = get_backend(backend)
    got = b.philox4x32(b.asarray(np.array([counter], dtype=np.uint32)), key)
    assert b.to_numpy(got)[0].tolist() == list(words)


def test_dropout_zeroes_about_p_and_scales_the_rest(backend):
    model = fastnn.Sequential([Dense(4, 400), Dropout(0.3)], loss="mse", backend=backend, seed=0)
    b = model.backend
    model.set_weights([(np.ones((400, 4)) * 0.25, np.zeros(400)), ()])
    H = b.to_numpy(model.forward(b.asarray(np.ones((50, 4)), dtype="float32"), train=True))
    np.testing.assert_allclose(np.unique(H), [0.0, 1 / 0.7], rtol=1e-6)
    dropped = (H == 0).mean()
    assert abs(dropped - 0.3) < 4 * np.sqrt(0.3 * 0.7 / H.size)  # 4 standard deviations
    np.testing.assert_array_equal(
        b.to_numpy(model.forward(b.asarray(np.ones((50, 4)), dtype="float32"))), 1.0
    )


def test_dropout_masks_are_the_same_on_every_backend_and_dtype(candidate):
    backend, dtype = candidate
    X, _ = data(n=30, d=6)

    def masks(name, dt):
        model = fastnn.MLP([6, 40, 40, 2], loss="mse", dropout=0.5, backend=name, dtype=dt, seed=7)
        b = model.backend
        H = model.forward(b.asarray(X, dtype=dt), train=True, batch=model.batch(epoch=3))
        return b.to_numpy(H)

    got, want = masks(backend, dtype), masks("numpy", "float64")
    np.testing.assert_array_equal(got == 0, want == 0)
    np.testing.assert_allclose(got, want, **tolerance(backend, dtype))


def test_a_sample_gets_the_same_mask_in_any_batch_and_other_masks_in_other_epochs(backend):
    b = get_backend(backend)
    key = (12345, 678)
    one = b.to_numpy(b.dropout_mask(b.asarray(np.array([5, 9])), 33, 0.5, key, 2, 1))
    other = b.to_numpy(b.dropout_mask(b.asarray(np.array([9, 5, 7])), 33, 0.5, key, 2, 1))
    np.testing.assert_array_equal(one[1], other[0])
    np.testing.assert_array_equal(one[0], other[1])
    later = b.to_numpy(b.dropout_mask(b.asarray(np.array([5, 9])), 33, 0.5, key, 3, 1))
    assert (later != one).any()
    elsewhere = b.to_numpy(b.dropout_mask(b.asarray(np.array([5, 9])), 33, 0.5, key, 2, 4))
    assert (elsewhere != one).any()


def test_dropout_is_the_identity_in_predict_evaluate_and_validation(backend):
    X, y = data()
    with_dropout = fastnn.Sequential(
        [Dense(5, 8, "relu"), Dropout(0.5), Dense(8, 3, "softmax")],
        loss="cross_entropy",
        backend=backend,
        seed=0,
    )
    without = fastnn.Sequential(
        [Dense(5, 8, "relu"), Dense(8, 3, "softmax")], loss="cross_entropy", backend=backend
    )
    without.set_weights([w for w in with_dropout.get_weights() if w])
    np.testing.assert_array_equal(with_dropout.predict_proba(X), without.predict_proba(X))
    assert with_dropout.evaluate(X, y) == without.evaluate(X, y)


# -- BatchNorm ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_features": 0}, "n_features must be a positive int"),
        ({"n_features": 3, "momentum": 1.5}, r"momentum must be a number in \[0, 1\]"),
        ({"n_features": 3, "eps": 0.0}, "eps must be a number > 0"),
    ],
)
def test_batchnorm_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm(**kwargs)


def test_batchnorm_matches_pytorch_batchnorm1d(backend):
    """Forward in training and evaluation, running statistics over three steps, and
    the gradients of gamma, beta and the input, against torch autograd in float64."""
    torch = need_module("torch", "pip install torch")
    rng = np.random.default_rng(3)
    bn = BatchNorm(4, momentum=0.2, eps=1e-3)
    model = fastnn.Sequential([bn], loss="mse", backend=backend, dtype="float64", seed=0)
    ref = torch.nn.BatchNorm1d(4, momentum=0.2, eps=1e-3).double()
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    model.set_weights([(gamma, beta)])
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    b = model.backend
    for step in range(3):
        X = rng.normal(size=(7, 4)) * (step + 1) + step
        H = b.to_numpy(model.forward(b.asarray(X), train=True))
        np.testing.assert_allclose(H, ref(torch.from_numpy(X)).detach().numpy(), rtol=1e-7)
    state = model.state_dict()
    np.testing.assert_allclose(state["layers.0.running_mean"], ref.running_mean.numpy(), rtol=1e-7)
    np.testing.assert_allclose(state["layers.0.running_var"], ref.running_var.numpy(), rtol=1e-7)

    X = rng.normal(size=(9, 4))
    T = rng.normal(size=(9, 4))
    ref.eval()
    np.testing.assert_allclose(
        model.predict(X), ref(torch.from_numpy(X)).detach().numpy(), rtol=1e-7
    )
    ref.train()
    Xt = torch.from_numpy(X).requires_grad_(True)
    ref.weight.grad = ref.bias.grad = None
    torch.nn.functional.mse_loss(ref(Xt), torch.from_numpy(T)).backward()
    ((dgamma, dbeta),) = model.gradients(X, T)
    np.testing.assert_allclose(dgamma, ref.weight.grad.numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(dbeta, ref.bias.grad.numpy(), rtol=1e-7, atol=1e-12)
    dX = b.to_numpy(bn.backend.batchnorm_backward(*_dH_and_cache(model, X, T), bn.gamma)[0])
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-7, atol=1e-12)


def _dH_and_cache(model, X, T):
    """dL/dH of the mean squared error and the training forward's cache, for dX."""
    b = model.backend
    bn = model.layers[0]
    H, _, _, cache = b.batchnorm_train(b.asarray(X), bn.gamma, bn.beta, bn.eps)
    return b.asarray(2 * (b.to_numpy(H) - T) / T.size), cache


def test_gradcheck_covers_batchnorm():
    X, y = data(n=12)
    model = fastnn.MLP(
        [5, 6, 6, 3], activation="tanh", loss="cross_entropy", batch_norm=True, seed=2
    )
    errors = fastnn.gradcheck(model, X, y)
    assert len(errors) == len(model.layers) and max(errors) < 1e-6, errors


def test_a_training_batch_of_one_row_is_refused(backend):
    X, y = data(n=41)
    model = fastnn.MLP([5, 6, 3], loss="cross_entropy", batch_norm=True, backend=backend, seed=0)
    before = model.state_dict()
    with pytest.raises(
        ValueError,
        match=r"BatchNorm\(6.*\(layer 1\) needs at least 2 rows .* last batch of 1; use batch_size=7",
    ):
        model.fit(X, y, epochs=1, batch_size=8)  # 41 = 5 * 8 + 1
    with pytest.raises(ValueError, match="needs at least 2 rows"):
        model.fit(X, y, epochs=1, batch_size=1)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(ValueError, match="a training batch needs at least 2 rows"):
        model.forward(model.backend.asarray(X[:1], dtype="float32"), train=True)
    assert model.predict(X[:1]).shape == (1,)  # evaluation takes one row
    model.fit(X, y, epochs=1, batch_size=9)


def test_batchnorm_and_dropout_models_save_load_clone_and_move_exactly(backend, tmp_path):
    need_module("safetensors", "pip install safetensors")
    X, y = data()
    model = fastnn.MLP(
        [5, 8, 8, 3], loss="cross_entropy", dropout=0.25, batch_norm=True, backend=backend, seed=4
    )
    model.fit(X, y, epochs=3, batch_size=8, optimizer="adam", lr=0.01)
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = fastnn.load(path, backend=backend)
    assert type(loaded) is fastnn.MLP and repr(loaded) == repr(model)
    for other in (loaded, model.clone(), model.clone(backend="numpy").to(backend)):
        np.testing.assert_array_equal(other.predict_proba(X), model.predict_proba(X))
        for name, value in other.state_dict().items():
            np.testing.assert_array_equal(value, model.state_dict()[name])


def test_weight_decay_spares_gamma_beta_and_biases():
    X, y = data()
    model = fastnn.MLP([5, 6, 3], loss="cross_entropy", batch_norm=True, dtype="float64", seed=0)
    before = model.get_weights()
    grads = model.gradients(X, y)
    model.fit(
        X, y, epochs=1, batch_size=40, optimizer="sgd", lr=0.1, weight_decay=0.5, shuffle=False
    )
    after = model.get_weights()
    np.testing.assert_allclose(after[1][0], before[1][0] - 0.1 * grads[1][0], rtol=1e-12)  # gamma
    np.testing.assert_allclose(after[1][1], before[1][1] - 0.1 * grads[1][1], rtol=1e-12)  # beta
    W = before[0][0]
    np.testing.assert_allclose(after[0][0], W - 0.1 * (grads[0][0] + 0.5 * W), rtol=1e-12)


# -- every backend agrees, and resumes exactly ---------------------------------------------


def test_backends_agree_on_batchnorm_and_dropout_networks(candidate):
    """Forward in training and evaluation, gradients, the update and running statistics
    (check_backends), and a 3-epoch trajectory, against NumPy float64."""
    backend, dtype = candidate
    X, y = data(n=45)
    kwargs = dict(loss="cross_entropy", dropout=0.3, batch_norm=True, seed=5)
    model = fastnn.MLP([5, 9, 7, 3], dtype=dtype, **kwargs)
    report = fastnn.check_backends(model, X[:16], y[:16], steps=3, backends=[backend])
    assert report.ok, str(report)
    assert {row.op for row in report.rows} == {"forward", "loss", "backward", "update", "eval"}
    trained = fastnn.MLP([5, 9, 7, 3], backend=backend, dtype=dtype, **kwargs)
    reference = fastnn.MLP([5, 9, 7, 3], backend="numpy", dtype="float64", **kwargs)
    fit = dict(epochs=3, batch_size=8, optimizer="momentum", lr=0.05)
    tol = tolerance(backend, dtype)
    np.testing.assert_allclose(
        trained.fit(X, y, **fit)["loss"], reference.fit(X, y, **fit)["loss"], **tol
    )
    for name, value in trained.state_dict().items():
        np.testing.assert_allclose(value, reference.state_dict()[name], **tol)


def test_the_loss_fuses_with_a_separate_final_activation_layer(backend):
    """Sequential decides the fusion from the loss and the last layer: Dense then
    Activation("softmax") trains exactly as Dense(..., "softmax")."""
    X, y = data()
    split = fastnn.Sequential(
        [Dense(5, 4, "tanh"), Dense(4, 3), Activation("softmax")],
        loss="cross_entropy",
        backend=backend,
        dtype="float64",
        seed=0,
    )
    fused = fastnn.Sequential(
        [Dense(5, 4, "tanh"), Dense(4, 3, "softmax")],
        loss="cross_entropy",
        backend=backend,
        dtype="float64",
        seed=0,
    )
    fit = dict(epochs=3, batch_size=8, optimizer="sgd", lr=0.1)
    assert split.fit(X, y, **fit) == fused.fit(X, y, **fit)
    with pytest.raises(ValueError, match="needs a 'softmax' output layer"):
        fastnn.Sequential([Dense(5, 3), Activation("tanh")], loss="cross_entropy")


# -- preprocessing --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Standardize", "Rescale"])
def test_preprocessing_layers_scale_raw_data_and_travel_with_the_model(backend, kind, tmp_path):
    need_module("safetensors", "pip install safetensors")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) * [1, 10, 100, 0] + [0, 5, -50, 3]  # one constant feature
    y = rng.integers(0, 3, size=60)
    layer = getattr(fastnn, kind).fit(X)
    model = fastnn.MLP(
        [4, 8, 3], loss="cross_entropy", backend=backend, dtype="float64", seed=0, preprocess=layer
    )
    H = model.backend.to_numpy(model.layers[0].forward(model.backend.asarray(X)))
    if kind == "Standardize":
        np.testing.assert_allclose(H[:, :3].mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(H[:, :3].std(axis=0), 1, rtol=1e-12)
    else:
        np.testing.assert_allclose(H[:, :3].min(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(H[:, :3].max(axis=0), 1, rtol=1e-12)
    assert (H[:, 3] == 0).all()  # constant: shifted, not divided by 0
    model.fit(X, y, epochs=3, batch_size=16, optimizer="adam", lr=0.01)
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = fastnn.load(path, backend=backend)
    assert type(loaded) is fastnn.MLP and loaded.layers[0].kind == kind
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert max(fastnn.gradcheck(model, X[:12], y[:12])) < 1e-6


def test_preprocessing_values_are_checked():
    with pytest.raises(ValueError, match="scale > 0"):
        fastnn.Standardize(2, [0.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        fastnn.Rescale(2, [0.0], [1.0])
