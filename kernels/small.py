"""A whole training run of a small dense network in one compiled call.

For networks of a few dozen weights (the lecture's 2-5-1) the time of a training step is
Python's, not arithmetic's: calling a dozen kernels costs far more than the math. This
kernel runs many epochs of plain mini-batch SGD (``W = W - lr dW``) without returning,
with the same forward, loss, backward and update as the layer-by-layer path, in loops
(no BLAS: at these sizes a call costs more than the product).

Pure: no fastnn imports. Parameters travel packed in one flat array: for each layer ``l``
its ``W`` (``sizes[l+1] x sizes[l]``, row-major) followed by its ``b``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .dense import RELU, SIGMOID, SOFTMAX, TANH, _sigmoid

MSE, CROSS_ENTROPY_LABELS, CROSS_ENTROPY_DENSE, BINARY_CROSS_ENTROPY = 0, 1, 2, 3

jit = numba.njit(cache=True, nogil=True)


@jit
def _activate(row, code):
    m = row.size
    zero, one = row.dtype.type(0), row.dtype.type(1)
    if code == RELU:
        for j in range(m):
            row[j] = zero if row[j] <= 0 else row[j]
    elif code == SIGMOID:
        for j in range(m):
            row[j] = _sigmoid(row[j], one)
    elif code == TANH:
        for j in range(m):
            row[j] = math.tanh(row[j])
    elif code == SOFTMAX:
        top = -np.inf
        for j in range(m):
            top = max(top, row[j])
        total = zero
        for j in range(m):
            row[j] = math.exp(row[j] - top)
            total += row[j]
        for j in range(m):
            row[j] /= total


@jit
def _backprop(g, h, code):
    """In place: ``g = g * act'`` from the output row ``h``."""
    m = g.size
    zero, one = g.dtype.type(0), g.dtype.type(1)
    if code == RELU:
        for j in range(m):
            g[j] *= one if h[j] > 0 else zero
    elif code == SIGMOID:
        for j in range(m):
            g[j] *= h[j] * (one - h[j])
    elif code == TANH:
        for j in range(m):
            g[j] *= one - h[j] * h[j]
    elif code == SOFTMAX:
        dot = zero
        for j in range(m):
            dot += g[j] * h[j]
        for j in range(m):
            g[j] = h[j] * (g[j] - dot)


@jit
def _output_loss(out, t_dense, label, code, loss_code, nb, size, grad):
    """Loss of one sample's output row (logits for the fused losses) and its gradient."""
    m = out.size
    loss = 0.0
    if loss_code == MSE:
        for j in range(m):
            d = out[j] - t_dense[j]
            loss += d * d
            grad[j] = 2.0 * d / size
        _backprop(grad, out, code)
    elif loss_code == BINARY_CROSS_ENTROPY:
        for j in range(m):
            z = out[j]
            loss += max(z, 0.0) - z * t_dense[j] + math.log1p(math.exp(-abs(z)))
            grad[j] = (_sigmoid(z, grad.dtype.type(1)) - t_dense[j]) / size
    else:
        top = -np.inf
        for j in range(m):
            top = max(top, out[j])
        total = 0.0
        for j in range(m):
            total += math.exp(out[j] - top)
        log_total = math.log(total)
        for j in range(m):
            log_p = out[j] - top - log_total
            target = (
                (1.0 if j == label else 0.0) if loss_code == CROSS_ENTROPY_LABELS else t_dense[j]
            )
            loss -= target * log_p
            grad[j] = (math.exp(log_p) - target) / nb
    return loss


@jit
def _correct(out, t_dense, label, loss_code):
    m = out.size
    if loss_code == BINARY_CROSS_ENTROPY:
        hits = 0
        for j in range(m):
            hits += (out[j] > 0) == (t_dense[j] > 0.5)
        return hits
    if loss_code == MSE:
        return 0
    best = 0
    for j in range(m):
        if out[j] > out[best]:
            best = j
    if loss_code == CROSS_ENTROPY_LABELS:
        return 1 if best == label else 0
    target = 0
    for j in range(m):
        if t_dense[j] > t_dense[target]:
            target = j
    return 1 if best == target else 0


@jit
def sgd_epochs(
    params, sizes, codes, loss_code, X, T, labels, orders, batch, lr, epoch_loss, epoch_correct
):
    """Run ``orders.shape[0]`` epochs of mini-batch SGD in place on ``params``.

    ``orders[e]`` is epoch ``e``'s sample order; ``codes[l]`` layer ``l``'s activation;
    the output layer's activation is folded into the fused losses. Writes each epoch's
    batch-size-weighted mean loss and number of correct predictions. Returns
    ``(epoch, batch)`` of the first batch whose loss, gradient or update is not finite
    (counted from 0; the weights are put back to those at the start of that epoch), or
    ``(-1, -1)``.
    """
    n_layers = sizes.size - 1
    n = X.shape[0]
    width = 0
    offsets = np.zeros(n_layers + 1, dtype=np.int64)
    act_offsets = np.zeros(n_layers + 1, dtype=np.int64)
    for layer in range(n_layers):
        offsets[layer + 1] = offsets[layer] + sizes[layer + 1] * sizes[layer] + sizes[layer + 1]
        act_offsets[layer + 1] = act_offsets[layer] + batch * sizes[layer + 1]
        width = max(width, sizes[layer + 1])
    acts = np.empty(act_offsets[n_layers], dtype=params.dtype)
    grads = np.empty(params.size, dtype=params.dtype)
    updated = np.empty(params.size, dtype=params.dtype)
    epoch_start = np.empty(params.size, dtype=params.dtype)
    delta = np.empty((batch, width), dtype=params.dtype)
    delta_prev = np.empty((batch, width), dtype=params.dtype)
    out_width = sizes[n_layers]
    for e in range(orders.shape[0]):
        epoch_start[:] = params
        total_loss = 0.0
        correct = 0
        b_index = 0
        for start in range(0, n, batch):
            nb = min(batch, n - start)
            rows = orders[e, start : start + nb]
            # forward
            for layer in range(n_layers):
                n_in, n_out = sizes[layer], sizes[layer + 1]
                W = params[offsets[layer] : offsets[layer] + n_out * n_in].reshape(n_out, n_in)
                b = params[offsets[layer] + n_out * n_in : offsets[layer + 1]]
                H = acts[act_offsets[layer] : act_offsets[layer] + nb * n_out].reshape(nb, n_out)
                for r in range(nb):
                    for j in range(n_out):
                        s = b[j]
                        if layer == 0:
                            for k in range(n_in):
                                s += W[j, k] * X[rows[r], k]
                        else:
                            prev = acts[
                                act_offsets[layer - 1] + r * n_in : act_offsets[layer - 1]
                                + (r + 1) * n_in
                            ]
                            for k in range(n_in):
                                s += W[j, k] * prev[k]
                        H[r, j] = s
                    if layer < n_layers - 1 or loss_code == MSE:
                        _activate(H[r], codes[layer])
            # loss and the output layer's dZ
            out = acts[act_offsets[n_layers - 1] : act_offsets[n_layers - 1] + nb * out_width]
            out = out.reshape(nb, out_width)
            size = (
                nb * out_width
                if loss_code != CROSS_ENTROPY_LABELS and loss_code != CROSS_ENTROPY_DENSE
                else nb
            )
            batch_loss = 0.0
            for r in range(nb):
                i = rows[r]
                batch_loss += _output_loss(
                    out[r],
                    T[i],
                    labels[i],
                    codes[n_layers - 1],
                    loss_code,
                    nb,
                    size,
                    delta[r, :out_width],
                )
                correct += _correct(out[r], T[i], labels[i], loss_code)
            batch_loss /= size if loss_code == MSE or loss_code == BINARY_CROSS_ENTROPY else nb
            # backward
            for layer in range(n_layers - 1, -1, -1):
                n_in, n_out = sizes[layer], sizes[layer + 1]
                W = params[offsets[layer] : offsets[layer] + n_out * n_in].reshape(n_out, n_in)
                dW = grads[offsets[layer] : offsets[layer] + n_out * n_in].reshape(n_out, n_in)
                db = grads[offsets[layer] + n_out * n_in : offsets[layer + 1]]
                dW[:] = 0.0
                db[:] = 0.0
                for r in range(nb):
                    if layer == 0:
                        inp = X[rows[r]]
                    else:
                        inp = acts[
                            act_offsets[layer - 1] + r * n_in : act_offsets[layer - 1]
                            + (r + 1) * n_in
                        ]
                    for j in range(n_out):
                        g = delta[r, j]
                        db[j] += g
                        for k in range(n_in):
                            dW[j, k] += g * inp[k]
                    if layer > 0:
                        for k in range(n_in):
                            s = 0.0
                            for j in range(n_out):
                                s += delta[r, j] * W[j, k]
                            delta_prev[r, k] = s
                        _backprop(delta_prev[r, :n_in], inp, codes[layer - 1])
                if layer > 0:
                    delta, delta_prev = delta_prev, delta
            # Checked before the update (which must not overflow either), so a failure
            # leaves the weights of the last good batch. The update is checked as stored,
            # in the parameters' dtype: finite in float64 may be infinite in float32.
            finite = math.isfinite(batch_loss)
            for k in range(grads.size):
                updated[k] = params[k] - lr * grads[k]
                finite = finite and math.isfinite(grads[k]) and math.isfinite(updated[k])
            if not finite:
                params[:] = epoch_start  # as the step-by-step loop: back to the epoch's start
                return e, b_index
            params[:] = updated
            total_loss += batch_loss * nb
            b_index += 1
        epoch_loss[e] = total_loss / n
        epoch_correct[e] = correct
    return -1, -1
