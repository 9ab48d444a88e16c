"""The Numba backend: BLAS matrix products with fused, JIT-compiled epilogues, no temporaries.

Each layer's results (``Z``/``H``, ``dZ``, ``dW``, ``db``, ``dX``) go to workspace arrays
owned by the backend, keyed by the layer's weight array and reallocated only when the
batch shape changes, so a training step allocates nothing. A returned array is therefore
valid until the next call for the same layer: copy what you keep (fastnn's own
``predict``, ``gradients`` and ``get_weights`` do).

Matrix products call NumPy's ``matmul`` with ``out=`` (the machine's BLAS, with its own
threads) from Python, not ``np.dot`` inside jitted code, which would need SciPy and gives
no speed-up; the kernels in ``fastnn.kernels`` run serially beside it.
"""

from __future__ import annotations

from typing import Any

import numpy

from fastnn.kernels import batchnorm, dense, optim, perceptron, small

from .numpy_backend import NumpyBackend
from .workspaces import Workspaces

# Largest (weights x batch size) for which a whole run in one compiled call beats BLAS
# products driven from Python: it won up to 50,000 and lost from about 100,000 on the
# development machine (bench/small_networks.py has the table).
SMALL_NETWORK_WORK = 32768

# Most (weights x samples) one call of that kernel takes: Ctrl-C and the progress bar wait
# for the call, and this is about 0.7 s here (784-5-10 at batch 1 over 60,000 samples, 0.89
# of it, took 0.62 s). A call runs as many whole epochs as fit, and a network whose one
# epoch does not fit (784-40-10 on 60,000 samples: 5.7 s) trains layer by layer instead.
SMALL_NETWORK_CALL_WORK = 1 << 28

_LOSS_CODES = {"mse": small.MSE, "binary_cross_entropy": small.BINARY_CROSS_ENTROPY}

# Activations whose forward runs as in-place NumPy ufuncs after the fused bias add: NumPy's
# SIMD exp and tanh beat the kernel's scalar libm calls (256 x 512 float32, measured:
# sigmoid 592 -> 137 us, tanh 2150 -> 81 us; Numba vectorizes neither without Intel's SVML).
_UFUNC_FORWARD = ("sigmoid", "tanh")


def _contiguous(a: Any) -> Any:
    """``a`` itself when C-contiguous (the kernels walk its flat view), else a copy: a
    gradient a layer of one's own left as a transposed view is read, never written."""
    return a if a.flags.c_contiguous else numpy.ascontiguousarray(a)


class NumbaBackend(NumpyBackend):
    """Fused Numba CPU kernels around the BLAS; the NumPy reference for everything else."""

    name = "numba"

    def __init__(self) -> None:
        self._work = Workspaces(numpy.empty)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return numpy.asarray(a, dtype=dtype, order="C")

    def memory_in_use(self) -> int:
        return self._work.nbytes()

    def take_rows(self, X: Any, idx: Any) -> Any:
        out = self._work.get(X, "rows", (len(idx), *X.shape[1:]), X.dtype)
        # mode="clip": with the default "raise", NumPy buffers ``out`` (the gather then
        # writes twice: 49 -> 24 us for 128 random rows of 784 float32). The rows are a
        # batch of the epoch's order, a permutation of range(n), so none is out of range.
        return numpy.take(X, idx, axis=0, out=out, mode="clip")

    def finite_flag(self, arrays: list[Any]) -> Any:
        return numpy.bool_(self.all_finite([numpy.asarray(a) for a in arrays]))

    def all_finite(self, arrays: list[Any]) -> bool:
        # (errstate: run as plain Python, NUMBA_DISABLE_JIT, the kernel's inf * 0 warns)
        with numpy.errstate(invalid="ignore"):
            return all(optim.all_finite(_contiguous(a)) for a in arrays)

    # -- dense layer -----------------------------------------------------------------

    def affine(self, X: Any, W: Any, b: Any) -> Any:
        Z = self._work.get(W, "Z", (X.shape[0], W.shape[0]), W.dtype)
        numpy.matmul(X, W.T, out=Z)
        dense.bias_activation(Z, b, dense.IDENTITY)
        return Z

    def affine_backward(self, dZ: Any, X: Any, W: Any, need_dX: bool = True) -> tuple:
        db = self._work.get(W, "db", (W.shape[0],), W.dtype)
        dense.column_sums(dZ, db)
        return self._products(dZ, X, W, need_dX) + (db,)

    def _products(self, dZ: Any, X: Any, W: Any, need_dX: bool) -> tuple:
        dW = numpy.matmul(dZ.T, X, out=self._work.get(W, "dW", W.shape, W.dtype))
        dX = None
        if need_dX:
            dX = numpy.matmul(
                dZ, W, out=self._work.get(W, "dX", (dZ.shape[0], W.shape[1]), W.dtype)
            )
        return dX, dW

    def dense_forward(self, X: Any, W: Any, b: Any, activation: str) -> Any:
        if activation not in dense.CODES:  # no kernel for it (yet): the base's composition
            return super().dense_forward(X, W, b, activation)
        if activation in _UFUNC_FORWARD:
            Z = self.affine(X, W, b)
            if activation == "tanh":
                return numpy.tanh(Z, out=Z)
            return self._sigmoid_in_place(Z, W)
        H = self._work.get(W, "Z", (X.shape[0], W.shape[0]), W.dtype)
        numpy.matmul(X, W.T, out=H)
        dense.bias_activation(H, b, dense.CODES[activation])
        return H

    def _sigmoid_in_place(self, Z: Any, W: Any) -> Any:
        """``Z = 1 / (1 + e)`` where ``Z >= 0``, else ``e / (1 + e)``, with ``e = exp(-|Z|)``:
        the base's arithmetic (bit for bit), into workspaces owned by ``W``."""
        e = self._work.get(W, "sigmoid_e", Z.shape, Z.dtype)
        negative = self._work.get(W, "sigmoid_negative", Z.shape, numpy.bool_)
        numpy.abs(Z, out=e)
        numpy.negative(e, out=e)
        numpy.exp(e, out=e)
        numpy.less(Z, 0, out=negative)
        Z.fill(1)
        numpy.copyto(Z, e, where=negative)
        e += 1
        Z /= e
        return Z

    def dense_backward(
        self, dH: Any, X: Any, W: Any, H: Any, activation: str, need_dX: bool = True
    ) -> tuple:
        if activation not in dense.CODES:
            return super().dense_backward(dH, X, W, H, activation, need_dX)
        dZ = self._work.get(W, "dZ", H.shape, W.dtype)
        db = self._work.get(W, "db", (W.shape[0],), W.dtype)
        dense.activation_backward_bias(dH, H, dense.CODES[activation], dZ, db)
        return self._products(dZ, X, W, need_dX) + (db,)

    # -- batch normalization: fused passes (kernels/batchnorm.py) -----------------------

    def batchnorm_train(self, X: Any, gamma: Any, beta: Any, eps: float) -> tuple:
        n, m = X.shape
        work, dtype = self._work, gamma.dtype
        H = work.get(gamma, "bn_H", (n, m), dtype)
        X_hat = work.get(gamma, "bn_X_hat", (n, m), dtype)
        mean, var, inv_std = (work.get(gamma, role, (m,), dtype) for role in ("mu", "var", "is"))
        batchnorm.train_forward(X, gamma, beta, eps, H, X_hat, mean, var, inv_std)
        return H, mean, var, (X_hat, inv_std)

    def batchnorm_eval(
        self, X: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float
    ) -> Any:
        H = self._work.get(gamma, "bn_eval", X.shape, gamma.dtype)
        batchnorm.eval_forward(X, gamma, beta, running_mean, running_var, eps, H)
        return H

    def batchnorm_backward(self, dH: Any, cache: Any, gamma: Any, need_dX: bool = True) -> tuple:
        X_hat, inv_std = cache
        work, dtype = self._work, gamma.dtype
        dX = work.get(gamma, "bn_dX", dH.shape, dtype)
        dgamma = work.get(gamma, "dgamma", gamma.shape, dtype)
        dbeta = work.get(gamma, "dbeta", gamma.shape, dtype)
        batchnorm.backward(dH, X_hat, inv_std, gamma, need_dX, dX, dgamma, dbeta)
        return (dX if need_dX else None), dgamma, dbeta

    # -- fused loss and gradient -------------------------------------------------------

    def mse(self, H: Any, T: Any) -> tuple:
        dH = self._work.get(H, "dloss", H.shape, H.dtype)
        return dense.mean_squared_error(H, T, dH), dH

    def softmax_cross_entropy(self, Z: Any, T: Any) -> tuple:
        dZ = self._work.get(Z, "dloss", Z.shape, Z.dtype)
        if T.ndim == 1:
            return dense.softmax_cross_entropy_labels(Z, T, dZ), dZ
        return dense.softmax_cross_entropy_dense(Z, T, dZ), dZ

    def sigmoid_binary_cross_entropy(self, Z: Any, T: Any) -> tuple:
        dZ = self._work.get(Z, "dloss", Z.shape, Z.dtype)
        return dense.sigmoid_binary_cross_entropy(Z, T, dZ), dZ

    # -- in-place optimizer updates ----------------------------------------------------

    def sgd_step(
        self,
        params: list,
        grads: list,
        velocities: list | None,
        lr: float,
        momentum: float,
        nesterov: bool,
        decays: list[float],
    ) -> None:
        for i, (P, G, wd) in enumerate(zip(params, grads, decays, strict=True)):
            s = P.dtype.type  # scalars in the parameter's dtype, as NumPy would use them
            if velocities is None:
                optim.sgd(P, _contiguous(G), s(lr), s(wd))
            else:
                V = velocities[i]
                optim.momentum(P, _contiguous(G), V, s(lr), s(momentum), nesterov, s(wd))

    def adam_step(
        self,
        params: list,
        grads: list,
        m: list,
        v: list,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        t: int,
        decays: list[float],
    ) -> None:
        c1, c2 = 1 - beta1**t, 1 - beta2**t
        for P, G, M, V, wd in zip(params, grads, m, v, decays, strict=True):
            s = P.dtype.type
            optim.adam(
                P,
                _contiguous(G),
                M,
                V,
                s(lr / c1),
                s(beta1),
                s(1 - beta1),
                s(beta2),
                s(1 - beta2),
                s(eps),
                s(c2),
                s(wd),
            )

    def sgd_epochs(
        self,
        params: list,
        activations: list[str],
        loss: str,
        X: Any,
        T: Any,
        orders: Any,
        batch_size: int,
        lr: float,
    ) -> tuple | None:
        weights = sum(p.size for p in params[::2])
        n = X.shape[0]
        if weights * min(batch_size, n) > SMALL_NETWORK_WORK:
            return None
        epochs = min(len(orders), SMALL_NETWORK_CALL_WORK // (weights * n))
        if epochs == 0:
            return None  # one epoch would hold the call too long
        orders = orders[:epochs]
        if not set(activations) <= set(dense.CODES) or (
            loss not in _LOSS_CODES and loss != "cross_entropy"
        ):
            return None  # the kernel knows these names only
        flat = numpy.concatenate([p.reshape(-1) for p in params])
        sizes = numpy.array([params[0].shape[1]] + [W.shape[0] for W in params[::2]])
        codes = numpy.array([dense.CODES[a] for a in activations])
        if loss == "cross_entropy":
            code = small.CROSS_ENTROPY_LABELS if T.ndim == 1 else small.CROSS_ENTROPY_DENSE
        else:
            code = _LOSS_CODES[loss]
        labels = T if T.ndim == 1 else numpy.zeros(n, dtype=numpy.intp)
        dense_T = T if T.ndim == 2 else numpy.zeros((n, 0), dtype=X.dtype)
        losses = numpy.zeros(len(orders))
        correct = numpy.zeros(len(orders), dtype=numpy.int64)
        epoch, batch = small.sgd_epochs(
            flat,
            sizes,
            codes,
            code,
            X,
            dense_T,
            labels,
            numpy.ascontiguousarray(orders),
            batch_size,
            lr,
            losses,
            correct,
        )
        start = 0
        for p in params:
            p[...] = flat[start : start + p.size].reshape(p.shape)
            start += p.size
        return losses, correct, None if epoch < 0 else (int(epoch), int(batch))

    def perceptron_epoch(self, X: Any, y: Any, w: Any, b: float, lr: float) -> tuple:
        mistakes, b = perceptron.perceptron_epoch(X, y, w, float(b), float(lr))
        return int(mistakes), float(b)
