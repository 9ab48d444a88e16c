"""The training loop: the lecture's gradient-descent loop over shuffled mini-batches."""

from __future__ import annotations

import math
import sys
from typing import Any

from .errors import TrainingDivergedError
from .init import batch_orders
from .model import batch_slices
from .optimizers import SGD, make_optimizer
from .validation import positive_int

# Batch orders are drawn for this many samples' worth of epochs at a time.
_ORDER_CHUNK_SAMPLES = 1 << 16


def fit(
    model: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: Any = "sgd",
    lr: float | None = None,
    momentum: float | None = None,
    nesterov: bool | None = None,
    weight_decay: float | None = None,
    validation_data: tuple[Any, Any] | None = None,
    shuffle: bool = True,
    patience: int | None = None,
    progress: bool | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` by mini-batch gradient descent.

    Each epoch visits every sample once: shuffle the sample indices, and for each batch
    propagate forward, compute the loss, propagate backward and update the weights
    (the lecture's loop, steps 1 to 5).

    Parameters
    ----------
    model : Sequential
        Trained in place.
    X : array of shape (n, n_features)
    y : array
        Class ids (n,) or one-hot (n, k) for cross_entropy; (n,) or (n, n_outputs) otherwise.
    epochs, batch_size : int
        Passes over the data, and samples per gradient step (the last batch may be short).
    optimizer : str or Optimizer
        ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, or an instance (kept between
        calls, with its state, as ``model.optimizer``).
    lr, momentum, nesterov, weight_decay : optional
        Settings for a named optimizer; its defaults when None.
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch (``val_loss``, ``val_accuracy``).
    shuffle : bool
        Draw a new batch order every epoch from the model's seeded generator.
    patience : int, optional
        Early stopping: stop when the monitored loss (``val_loss`` if there is validation
        data, else ``loss``) has not improved for this many epochs, and restore the
        weights of the best epoch.
    progress : bool, optional
        Show a progress bar; by default only when standard error is a terminal.

    Returns
    -------
    history : dict of str to list of float
        One entry per epoch: ``loss`` (mean over the epoch's batches, weighted by batch
        size: the lecture's cost curve), ``accuracy`` for classifiers, and ``val_loss``,
        ``val_accuracy`` with validation data. Also kept as ``model.history``.

    Raises
    ------
    TrainingDivergedError
        The loss or a gradient became NaN or infinite; the message names the epoch and
        batch, and the model keeps its last finite weights.
    """
    # Every check runs before anything changes, so bad input never costs a trained model.
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if patience is not None:
        patience = positive_int(patience, "patience")
    opt = make_optimizer(
        optimizer, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
    X_host = model._features(X)
    T_host = model._targets(y, X_host.shape[0])
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        X_val = model._features(validation_data[0], name="X_val")
        T_val = model._targets(validation_data[1], X_val.shape[0], name="y_val")
    if progress is None:
        progress = sys.stderr.isatty()

    backend = model.backend
    Xd = backend.asarray(X_host, dtype=model.dtype)
    Td = model._targets_to_backend(T_host)
    history: dict[str, list[float]] = {"loss": []}
    if model.is_classifier:
        history["accuracy"] = []
    if validation_data is not None:
        history["val_loss"] = []
        if model.is_classifier:
            history["val_accuracy"] = []
    model.history = history
    model.optimizer = opt
    monitor = "val_loss" if validation_data is not None else "loss"
    best_loss, best_weights, best_epoch = math.inf, None, 0

    bar = _progress_bar(epochs) if progress else None
    n = X_host.shape[0]
    # A backend may run many epochs of plain SGD in one call (small networks); that needs
    # nothing to happen between epochs, so no validation and no early stopping.
    try_fused = (
        validation_data is None
        and patience is None
        and isinstance(opt, SGD)
        and not opt.momentum
        and not opt.weight_decay
    )
    epoch = 0
    try:
        with backend.float_errors_ignored():
            while epoch < epochs:
                # Batch orders are drawn ahead in chunks, the same whichever path runs them.
                count = min(epochs - epoch, max(1, _ORDER_CHUNK_SAMPLES // n))
                orders = batch_orders(model._rng, n, count, shuffle)
                fused = _run_fused(model, opt, Xd, Td, orders, batch_size) if try_fused else None
                if fused is not None:
                    losses, accuracies, failure = fused
                    history["loss"].extend(losses)
                    if model.is_classifier:
                        history["accuracy"].extend(accuracies)
                    epoch += len(losses)
                    _show(bar, history, len(losses))
                    if failure is not None:
                        _diverged(
                            model,
                            model.parameters(),
                            epoch + 1,
                            failure + 1,
                            "the loss, a gradient or an update is not finite",
                        )
                    continue
                try_fused = False
                for order in orders:
                    epoch += 1
                    loss, accuracy = _run_epoch(
                        model, opt, Xd, Td, epoch, batch_size, order if shuffle else None
                    )
                    history["loss"].append(loss)
                    if model.is_classifier:
                        history["accuracy"].append(accuracy)
                    if validation_data is not None:
                        scores = model._evaluate_host(X_val, T_val, batch_size=4096)
                        history["val_loss"].append(scores["loss"])
                        if model.is_classifier:
                            history["val_accuracy"].append(scores["accuracy"])
                    _show(bar, history, 1)
                    if patience is not None:
                        if history[monitor][-1] < best_loss:
                            best_loss, best_epoch = history[monitor][-1], epoch
                            best_weights = [backend.copy(p) for p in model.parameters()]
                        elif epoch - best_epoch >= patience:
                            epochs = epoch  # stop
                            break
    finally:
        if bar is not None:
            bar.close()
        for layer in model.layers:
            layer.release()
    if best_weights is not None and best_epoch != len(history["loss"]):
        for p, saved in zip(model.parameters(), best_weights, strict=True):
            p[...] = saved
    return history


def _progress_bar(epochs: int) -> Any:
    from tqdm import tqdm  # imported only when a bar is shown

    return tqdm(total=epochs, unit="epoch", file=sys.stderr, leave=True)


def _show(bar: Any, history: dict[str, list[float]], epochs: int) -> None:
    if bar is not None:
        bar.update(epochs)
        bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.items()}, refresh=False)


def _run_fused(model: Any, opt: Any, Xd: Any, Td: Any, orders: Any, batch_size: int) -> Any:
    """Run ``len(orders)`` epochs through the backend's fused SGD path, if it has one.

    Returns None when it has none (nothing ran), else ``(losses, accuracies, failure)``
    for the epochs completed, with ``failure`` the batch index (from 0) where the next
    epoch diverged, the weights left as before that batch, or None.
    """
    n = Xd.shape[0]
    result = model.backend.sgd_epochs(
        model.parameters(),
        [layer.activation for layer in model.layers],
        model.loss.name,
        Xd,
        Td,
        orders,
        batch_size,
        opt.lr,
    )
    if result is None:
        return None
    losses, correct, failure = result
    done = len(orders) if failure is None else failure[0]
    steps = -(-n // batch_size)
    opt.t += done * steps + (0 if failure is None else failure[1])
    units = n * (model.n_outputs if model.loss.name == "binary_cross_entropy" else 1)
    accuracies = (correct[:done] / units).tolist() if model.is_classifier else []
    return losses[:done].tolist(), accuracies, None if failure is None else failure[1]


def _run_epoch(
    model: Any, opt: Any, Xd: Any, Td: Any, epoch: int, batch_size: int, order: Any
) -> tuple[float, float]:
    """One pass over the data in ``order`` (None: as stored); returns the batch-size-weighted
    mean loss and the accuracy."""
    backend = model.backend
    params = model.parameters()
    start_weights = [backend.copy(p) for p in params]
    n = Xd.shape[0]
    order = None if order is None else backend.asarray(order)
    if not backend.host_sync_is_cheap:
        return _run_epoch_on_device(model, opt, Xd, Td, epoch, batch_size, order, start_weights)
    fused = model.loss.output_activation is not None
    total_loss = correct = 0.0
    units = 0
    for batch, s in enumerate(batch_slices(n, batch_size), start=1):
        if order is None:
            Xb, Tb = Xd[s], Td[s]
        else:
            Xb, Tb = backend.take_rows(Xd, order[s]), backend.take_rows(Td, order[s])
        loss, out = model.train_batch(Xb, Tb)
        loss_value = float(loss)
        # Checked before the update, so a failure leaves the weights that were finite.
        if not math.isfinite(loss_value):
            _diverged(model, start_weights, epoch, batch, f"the loss is {loss_value}")
        if not backend.all_finite(model.parameter_gradients()):
            _diverged(model, start_weights, epoch, batch, "a gradient is not finite")
        opt.step(model)
        total_loss += loss_value * (s.stop - s.start)
        if model.is_classifier:
            c, u = model.count_correct(out, Tb, logits=fused)
            correct += float(c)
            units += u
    if not backend.all_finite(params):
        _diverged(model, start_weights, epoch, batch, "an update overflowed the weights")
    return total_loss / n, (correct / units if units else math.nan)


def _run_epoch_on_device(
    model: Any,
    opt: Any,
    Xd: Any,
    Td: Any,
    epoch: int,
    batch_size: int,
    order: Any,
    start_weights: list,
) -> tuple[float, float]:
    """:func:`_run_epoch` for backends where every host read waits for the device.

    Losses, counts and finiteness flags stay on the device, one entry per batch, and are
    read once at the end of the epoch. A batch that diverged has then already been
    applied, so the weights go back to those at the start of the epoch.
    """
    backend = model.backend
    n = Xd.shape[0]
    slices = list(batch_slices(n, batch_size))
    losses = backend.zeros((len(slices),), model.dtype)
    finite = backend.zeros((len(slices),), "bool")
    correct = backend.zeros((len(slices),), "int64")
    fused = model.loss.output_activation is not None
    units = 0
    for batch, s in enumerate(slices):
        if order is None:
            Xb, Tb = Xd[s], Td[s]
        else:
            Xb, Tb = backend.take_rows(Xd, order[s]), backend.take_rows(Td, order[s])
        loss, out = model.train_batch(Xb, Tb)
        losses[batch] = loss * (s.stop - s.start)
        finite[batch] = backend.finite_flag([loss, *model.parameter_gradients()])
        opt.step(model)
        if model.is_classifier:
            c, u = model.count_correct(out, Tb, logits=fused)
            correct[batch] = c
            units += u
    ok = backend.to_numpy(finite)  # the epoch's one wait for the device
    if not ok.all() or not bool(backend.finite_flag(model.parameters())):
        first = int((~ok).argmax()) + 1 if not ok.all() else len(slices)
        for p, saved in zip(model.parameters(), start_weights, strict=True):
            p[...] = saved
        raise TrainingDivergedError(
            f"training diverged at epoch {epoch}, batch {first}: the loss or a gradient is "
            f"not finite. Try a lower learning rate (it was {opt.lr}) or scale the inputs. "
            f"The weights were restored to those at the start of epoch {epoch}.",
            epoch=epoch,
            batch=first,
        )
    total = float(backend.to_numpy(losses).astype("float64").sum())
    hits = float(backend.to_numpy(correct).sum())
    return total / n, (hits / units if units else math.nan)


def _diverged(model: Any, start_weights: list, epoch: int, batch: int, what: str) -> None:
    """Keep the model at finite weights and raise :class:`TrainingDivergedError`."""
    params = model.parameters()
    restored = ""
    if not model.backend.all_finite(params):
        # An update overflowed earlier in this epoch; its start is the last known-finite point.
        for p, saved in zip(params, start_weights, strict=True):
            p[...] = saved
        restored = f" The weights were restored to those at the start of epoch {epoch}."
    raise TrainingDivergedError(
        f"training diverged at epoch {epoch}, batch {batch}: {what}. "
        f"Try a lower learning rate (it was {model.optimizer.lr}) or scale the inputs." + restored,
        epoch=epoch,
        batch=batch,
    )
