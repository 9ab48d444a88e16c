"""The backend interface: the only code in fastnn that touches an array library.

Notation follows the lecture. For one sample the lecture writes a dense layer as
``z = W h + b`` and ``h' = sigma(z)`` with ``W`` of shape (out, in). fastnn stores a
mini-batch as rows, one sample per row, so the same layer reads ``Z = X @ W.T + b``
with ``X`` of shape (n, in), ``W`` of shape (out, in), ``b`` of shape (out,) and
``Z`` of shape (n, out). Backpropagation, with ``dZ = dL/dZ``:

    dW = dZ.T @ X      (the lecture's dz h^T, summed over the batch)
    db = sum_rows(dZ)
    dX = dZ @ W        (the lecture's dh = W^T dz: it needs W, not dW)

Every method is written once here against ``self.xp``; a backend overrides only what
it makes faster and must keep the signatures (a test checks that). Methods never modify
their inputs (except the optimizer steps, ``sgd_epochs`` and
``batchnorm_update_running``, which update parameters, state and running statistics in
place), but a backend may return workspace arrays that its next call for the same layer
overwrites: callers copy what they keep.
"""

from __future__ import annotations

import contextlib
from typing import Any


class Backend:
    """Array math for layers, losses and optimizers, written against ``self.xp``.

    Attributes
    ----------
    name : str
        The registry name (``"numpy"``, ...).
    xp : module
        The array module (``numpy`` or a NumPy-compatible one).
    """

    name = "base"
    xp: Any = None

    def __repr__(self) -> str:
        return f"<fastnn backend {self.name!r}>"

    # -- conversion ---------------------------------------------------------------

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Array ``a`` on this backend with ``dtype`` (no copy when already so)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> Any:
        """Host NumPy copy or view of a backend array."""
        return a

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """New array of zeros."""
        return self.xp.zeros(shape, dtype=dtype)

    def copy(self, a: Any) -> Any:
        """New array equal to ``a``."""
        return self.xp.array(a, copy=True)

    def take_rows(self, X: Any, idx: Any) -> Any:
        """``X[idx]``: the rows of ``X`` listed by the integer array ``idx``."""
        return X[idx]

    def upload_limit(self) -> int:
        """Bytes of training data ``fit`` puts on the backend whole; larger data is streamed."""
        return 1 << 30

    def stream_rows(self, X_host: Any, rows: Any, dtype: Any) -> tuple[Any, Any]:
        """``(X_host[rows] as dtype, rows)`` on the backend: one batch of host-side data."""
        return self.asarray(X_host[rows], dtype=dtype), self.asarray(rows)

    def synchronize(self) -> None:
        """Wait until queued device work is done (nothing to wait for on a CPU)."""

    def memory_in_use(self) -> int:
        """Bytes the backend holds for reuse (workspaces, memory pools)."""
        return 0

    def finite_flag(self, arrays: list[Any]) -> Any:
        """``all(isfinite(a) for a in arrays)`` as a backend boolean, read without a host sync."""
        xp = self.xp
        return xp.stack([xp.isfinite(a).all() for a in arrays]).all()

    def float_errors_ignored(self) -> Any:
        """Context in which overflow/invalid warnings stay silent (fastnn checks finiteness)."""
        return contextlib.nullcontext()

    def all_finite(self, arrays: list[Any]) -> bool:
        """True when no element of any array is NaN or infinite."""
        xp = self.xp
        return all(bool(xp.isfinite(a).all()) for a in arrays)

    # -- dense layer: affine map --------------------------------------------------

    def affine(self, X: Any, W: Any, b: Any) -> Any:
        """``Z = X @ W.T + b``: (n, in), (out, in), (out,) -> (n, out)."""
        Z = X @ W.T
        Z += b
        return Z

    def affine_backward(self, dZ: Any, X: Any, W: Any, need_dX: bool = True) -> tuple:
        """``dX = dZ @ W`` (None unless ``need_dX``), ``dW = dZ.T @ X``, ``db = sum_rows(dZ)``."""
        dX = dZ @ W if need_dX else None
        return dX, dZ.T @ X, dZ.sum(axis=0)

    def dense_forward(self, X: Any, W: Any, b: Any, activation: str) -> Any:
        """``H = act(X @ W.T + b)``; a backend may fuse the bias add and activation."""
        return getattr(self, activation)(self.affine(X, W, b))

    def dense_backward(
        self, dH: Any, X: Any, W: Any, H: Any, activation: str, need_dX: bool = True
    ) -> tuple:
        """``dZ = backprop_act(dH, H)``, then :meth:`affine_backward`: ``(dX, dW, db)``."""
        dZ = getattr(self, "backprop_" + activation)(dH, H)
        return self.affine_backward(dZ, X, W, need_dX)

    # -- activations, each with its derivative in terms of the output H ----------

    def identity(self, Z: Any) -> Any:
        """``H = Z``."""
        return Z

    def backprop_identity(self, dH: Any, H: Any) -> Any:
        """``dZ = dH``."""
        return dH

    def sigmoid(self, Z: Any) -> Any:
        """``H = 1 / (1 + exp(-Z))``, via ``exp(-|Z|)`` so no ``exp`` overflows."""
        xp = self.xp
        e = xp.exp(-xp.abs(Z))
        return xp.where(Z >= 0, 1 / (1 + e), e / (1 + e))

    def backprop_sigmoid(self, dH: Any, H: Any) -> Any:
        """``dZ = dH * H * (1 - H)``: sigma'(z) from the output, no second ``exp``."""
        return dH * H * (1 - H)

    def tanh(self, Z: Any) -> Any:
        """``H = tanh(Z)``."""
        return self.xp.tanh(Z)

    def backprop_tanh(self, dH: Any, H: Any) -> Any:
        """``dZ = dH * (1 - H**2)``."""
        return dH * (1 - H * H)

    def relu(self, Z: Any) -> Any:
        """``H = max(Z, 0)``."""
        return self.xp.maximum(Z, 0)

    def backprop_relu(self, dH: Any, H: Any) -> Any:
        """``dZ = dH * (H > 0)`` (the subgradient at 0 is taken as 0)."""
        return dH * (H > 0)

    def softmax(self, Z: Any) -> Any:
        """``H[i] = exp(Z[i] - max Z[i]) / sum_j exp(Z[i, j] - max Z[i])`` per row."""
        xp = self.xp
        E = xp.exp(Z - Z.max(axis=1, keepdims=True))
        E /= E.sum(axis=1, keepdims=True)
        return E

    def backprop_softmax(self, dH: Any, H: Any) -> Any:
        """``dZ = H * (dH - sum_j dH * H)`` per row (the softmax Jacobian product)."""
        return H * (dH - (dH * H).sum(axis=1, keepdims=True))

    # -- fused loss and gradient ---------------------------------------------------

    def mse(self, H: Any, T: Any) -> tuple:
        """``L = mean((H - T)**2)`` over all elements, ``dH = 2 (H - T) / H.size``."""
        D = H - T
        loss = (D * D).mean()
        D *= 2 / D.size
        return loss, D

    def softmax_cross_entropy(self, Z: Any, T: Any) -> tuple:
        """From logits: ``L = mean_i(logsumexp(Z[i]) - sum_j T[i,j] Z[i,j])``, ``dZ = (P - T)/n``.

        ``T`` is either integer class ids of shape (n,) or targets of shape (n, k)
        (one-hot or probabilities).
        """
        xp = self.xp
        n = Z.shape[0]
        S = Z - Z.max(axis=1, keepdims=True)
        logsum = xp.log(xp.exp(S).sum(axis=1, keepdims=True))
        log_p = S - logsum
        P = xp.exp(log_p)
        if T.ndim == 1:
            rows = xp.arange(n)
            loss = -log_p[rows, T].mean()
            P[rows, T] -= 1
        else:
            loss = -(T * log_p).sum() / n
            P -= T
        P /= n
        return loss, P

    def sigmoid_binary_cross_entropy(self, Z: Any, T: Any) -> tuple:
        """From logits: ``L = mean(max(Z,0) - Z T + log1p(exp(-|Z|)))``, ``dZ = (sig(Z)-T)/size``.

        The mean runs over all elements (as PyTorch's ``BCEWithLogitsLoss``).
        """
        xp = self.xp
        loss = (xp.maximum(Z, 0) - Z * T + xp.log1p(xp.exp(-xp.abs(Z)))).mean()
        dZ = self.sigmoid(Z)
        dZ -= T
        dZ /= dZ.size
        return loss, dZ

    # -- batch normalization ------------------------------------------------------

    def batchnorm_train(self, X: Any, gamma: Any, beta: Any, eps: float) -> tuple:
        """Per feature, over the rows: ``mu = mean(X)``, ``var = mean((X - mu)**2)``,
        ``X_hat = (X - mu) / sqrt(var + eps)``, ``H = gamma X_hat + beta``.
        Returns ``(H, mu, var, cache)``; ``cache`` is what the backward needs."""
        mean = X.mean(axis=0)
        centered = X - mean
        var = (centered * centered).mean(axis=0)
        H, cache = self.batchnorm_normalize(X, mean, var, gamma, beta, eps)
        return H, mean, var, cache

    def batchnorm_normalize(
        self, X: Any, mean: Any, var: Any, gamma: Any, beta: Any, eps: float
    ) -> tuple:
        """``X_hat = (X - mean) / sqrt(var + eps)``, ``H = gamma X_hat + beta`` for given
        statistics: ``(H, cache)`` (statistics over more than these rows: synced BatchNorm)."""
        inv_std = 1 / self.xp.sqrt(var + eps)
        X_hat = (X - mean) * inv_std
        return X_hat * gamma + beta, (X_hat, inv_std)

    def batchnorm_eval(
        self, X: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float
    ) -> Any:
        """``H = gamma (X - running_mean) / sqrt(running_var + eps) + beta``."""
        return (X - running_mean) * (gamma / self.xp.sqrt(running_var + eps)) + beta

    def batchnorm_update_running(
        self, running_mean: Any, running_var: Any, mean: Any, var: Any, n: int, momentum: float
    ) -> None:
        """In place: ``running = (1 - momentum) running + momentum batch``, with the
        unbiased variance ``var n / (n - 1)`` of the ``n`` rows."""
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += (momentum * n / (n - 1)) * var

    def batchnorm_backward(self, dH: Any, cache: Any, gamma: Any, need_dX: bool = True) -> tuple:
        """``dbeta = sum(dH)``, ``dgamma = sum(dH X_hat)`` over the rows, and
        ``dX = gamma / (n sqrt(var + eps)) (n dH - dbeta - X_hat dgamma)``: ``(dX, dgamma,
        dbeta)``, ``dX`` None unless ``need_dX``."""
        X_hat, inv_std = cache
        n = dH.shape[0]
        dbeta = dH.sum(axis=0)
        dgamma = (dH * X_hat).sum(axis=0)
        dX = (gamma * inv_std / n) * (n * dH - dbeta - X_hat * dgamma) if need_dX else None
        return dX, dgamma, dbeta

    # -- dropout: counter-based masks, the same bits on every backend --------------

    def arange(self, start: int, stop: int) -> Any:
        """``[start, start + 1, ..., stop - 1]`` (integers)."""
        return self.xp.arange(start, stop)

    def philox4x32(self, counters: Any, key: tuple[int, int]) -> Any:
        """Philox4x32-10 (Salmon et al., SC 2011): uint32 counters of shape (..., 4) and a
        key of two uint32 words -> as many uint32 random words. Each of the 10 rounds
        multiplies words 0 and 2 by fixed constants into 64-bit products and mixes their
        halves with words 1 and 3 and the key, bumped by a Weyl step between rounds."""
        xp = self.xp
        c = counters.astype(xp.uint64)
        c0, c1, c2, c3 = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
        low, shift = xp.uint64(0xFFFFFFFF), xp.uint64(32)
        m0, m1 = xp.uint64(0xD2511F53), xp.uint64(0xCD9E8D57)
        k0, k1 = int(key[0]), int(key[1])
        for _ in range(10):
            p0, p1 = m0 * c0, m1 * c2
            c0, c1, c2, c3 = (
                (p1 >> shift) ^ c1 ^ xp.uint64(k0),
                p1 & low,
                (p0 >> shift) ^ c3 ^ xp.uint64(k1),
                p0 & low,
            )
            k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
        return xp.stack([c0, c1, c2, c3], axis=-1).astype(xp.uint32)

    def dropout_mask(
        self, rows: Any, width: int, p: float, key: tuple[int, int], epoch: int, layer: int
    ) -> Any:
        """Which units to keep, shape (len(rows), width): unit ``j`` of sample ``rows[r]``
        is dropped when Philox word ``j mod 4`` at counter ``(j div 4, rows[r], epoch,
        2^24 + layer)`` is below ``round(p 2^32)``, an integer test, so every backend and
        dtype keep the same units."""
        xp = self.xp
        blocks = -(-width // 4)
        counters = xp.empty((rows.shape[0], blocks, 4), dtype=xp.uint32)
        counters[..., 0] = xp.arange(blocks, dtype=xp.uint32)[None, :]
        counters[..., 1] = rows.astype(xp.uint32)[:, None]
        counters[..., 2] = epoch
        counters[..., 3] = (1 << 24) + layer
        words = self.philox4x32(counters, key).reshape(rows.shape[0], blocks * 4)[:, :width]
        return words >= xp.uint32(min(round(p * 2**32), 2**32 - 1))

    def dropout(self, X: Any, keep: Any, p: float) -> Any:
        """``X * keep / (1 - p)``: the kept units, scaled so the expected sum is unchanged."""
        return X * keep * X.dtype.type(1 / (1 - p))

    # -- in-place optimizer updates over all parameters ---------------------------

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
        """``g = dP + wd P``; ``v = mu v + g``; ``P -= lr (g + mu v if nesterov else v)``.

        With ``velocities=None`` this is the lecture's ``W = W - alpha dW`` (plus decay).
        """
        for i, (P, dP, wd) in enumerate(zip(params, grads, decays, strict=True)):
            g = dP + wd * P if wd else dP
            if velocities is not None:
                V = velocities[i]
                V *= momentum
                V += g
                g = g + momentum * V if nesterov else V
            P -= lr * g

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
        """Adam step ``t`` (from 1): ``m, v`` moving moments of ``g = dP + wd P``;
        ``P -= lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected moments."""
        xp = self.xp
        c1 = 1 - beta1**t
        c2 = 1 - beta2**t
        for P, dP, M, V, wd in zip(params, grads, m, v, decays, strict=True):
            g = dP + wd * P if wd else dP
            M *= beta1
            M += (1 - beta1) * g
            V *= beta2
            V += (1 - beta2) * (g * g)
            P -= (lr / c1) * M / (xp.sqrt(V / c2) + eps)

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
        """Optional fused path: the first ``k >= 1`` of ``len(orders)`` epochs of plain SGD
        in one call (as many as the backend takes in one call), or None.

        Epoch ``e`` visits ``X[orders[e]]`` in batches; each batch is the same forward,
        fused loss, backward and ``P -= lr dP`` as the step-by-step path. Returns
        ``(loss per epoch, correct predictions per epoch, failure)``, both arrays of length
        ``k``, where ``failure`` is ``(epoch, batch)`` (from 0) of a batch whose loss or
        gradient was not finite, the parameters put back to those at the start of that
        epoch, else None. The base class has no such path.
        """
        return None

    # -- the perceptron --------------------------------------------------------------

    def perceptron_epoch(self, X: Any, y: Any, w: Any, b: float, lr: float) -> tuple:
        """One pass of Rosenblatt's rule over the rows in order, updating ``w`` in place.

        For each sample: ``y_hat = sign(w . x + b)`` (``+1`` if positive, else ``-1``); when
        ``y_hat != y``: ``w += lr y x``, ``b += lr y``. Returns ``(mistakes, b)``.
        """
        mistakes = 0
        for i in range(X.shape[0]):
            x = X[i]
            yi = float(y[i])
            y_hat = 1.0 if float(w @ x) + b > 0 else -1.0
            if y_hat != yi:
                w += (lr * yi) * x
                b += lr * yi
                mistakes += 1
        return mistakes, b
