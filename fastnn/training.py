"""The training loop: the lecture's gradient-descent loop over shuffled mini-batches."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .distributed import AllreduceGradients, world
from .errors import TrainingDivergedError
from .fingerprint import data_fingerprint, describe_difference
from .hooks import Checkpoints, EarlyStopping, Hook, ProgressBar, wants_every_batch
from .layers import Batch
from .model import batch_slices
from .optimizers import SGD, make_optimizer
from .position import Position
from .random import epoch_orders, mask_key
from .validation import on_host, positive_int

# The fused many-epoch path gets at most this many samples' worth of epochs per call.
_FUSED_CHUNK_SAMPLES = 1 << 16
# Training data larger than this, in the model's dtype, stays where it is (a memory map,
# say) and goes to the backend batch by batch; None leaves it to the backend (1 GiB on a
# CPU, half the GPU's free memory on cupy: see Backend.upload_limit).
STREAM_BYTES: int | None = None


def fit(
    model: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: Any = None,
    lr: float | None = None,
    momentum: float | None = None,
    nesterov: bool | None = None,
    weight_decay: float | None = None,
    validation_data: tuple[Any, Any] | None = None,
    shuffle: bool = True,
    patience: int | None = None,
    progress: bool | None = None,
    checkpoint: Any = None,
    checkpoint_every: int = 1,
    resume: Any = None,
    force: bool = False,
    hooks: Any = (),
    distributed: bool = False,
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
        Host arrays, memory maps (``np.load(..., mmap_mode="r")``) or, on the cupy
        backend, GPU arrays. Host data larger than the backend takes whole (1 GiB in the
        model's dtype on a CPU, half the free GPU memory on cupy) is read batch by batch.
    y : array
        Class ids (n,) or one-hot (n, k) for cross_entropy; (n,) or (n, n_outputs) otherwise.
    epochs : int
        The run's total number of passes over the data (with ``resume``: including those
        already done).
    batch_size : int
        Samples per gradient step (the last batch may be short).
    optimizer : str or Optimizer, optional
        ``"sgd"`` (the default), ``"momentum"``, ``"nesterov"``, ``"adam"``, or an instance
        (kept between calls, with its state, as ``model.optimizer``).
    lr, momentum, nesterov, weight_decay : optional
        Settings for a named optimizer; its defaults when None.
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch (``val_loss``, ``val_accuracy``).
    shuffle : bool
        Visit the samples in a new random order every epoch. The order of the model's
        ``e``-th epoch (counted over all its ``fit`` calls) depends only on its seed and
        ``e`` (a counter-based generator, :mod:`fastnn.random`): a run split by a
        checkpoint, or into several ``fit`` calls, draws the same batches as in one piece.
    patience : int, optional
        Early stopping: stop when the monitored loss (``val_loss`` if there is validation
        data, else ``loss``) has not improved for this many epochs, and restore the
        weights of the best epoch.
    progress : bool, optional
        Show a progress bar; by default only when standard error is a terminal.
    checkpoint : path, optional
        Write a checkpoint here every ``checkpoint_every`` epochs, at the end, and when
        interrupted: weights, optimizer state, position, history and a fingerprint of the
        data. That the folder can be written is checked before training starts.
    resume : path, optional
        Continue the run saved in this checkpoint, to ``epochs`` in all: with the same
        data and ``batch_size`` the result is exactly the uninterrupted run's, however
        many epochs the first part had. The optimizer comes from the checkpoint.
    force : bool
        Resume even when the data's fingerprint (shape, dtype, a sample of rows of ``X``
        and ``y``) differs from the checkpoint's; a warning says so.
    hooks : sequence of Hook
        Your own :class:`~fastnn.hooks.Hook` objects, called after the built-in ones
        (progress bar, checkpoints, early stopping) at the loop's fixed points.
    distributed : bool
        Data-parallel training under ``mpiexec`` (:mod:`fastnn.distributed`): every rank
        calls ``fit`` with the same arguments and data, takes its rows of each batch, and
        the gradients are averaged over the ranks before each update, so every rank ends
        with the weights and history one process would have. Only rank 0 shows progress
        and writes checkpoints. With one rank, an ordinary run.

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
    KeyboardInterrupt
        Ctrl-C: training stops after the current batch, the model holds the weights of
        the last completed batch, ``model.history`` the completed epochs, and the
        checkpoint (if any) the exact position, so ``resume`` continues from there.
    """
    comm = world(distributed)
    if comm is not None and comm.size == 1:
        comm = None  # one rank: an ordinary run
    rank = 0 if comm is None else comm.rank
    try:
        # Every check runs before anything changes, so bad input never costs a trained model.
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
        if patience is not None:
            patience = positive_int(patience, "patience")
        if checkpoint is not None:
            checkpoint = _checkpoint_path(checkpoint)
        saved = None
        if resume is not None:
            from .checkpoint import load_checkpoint  # file libraries load only when files are used

            saved = load_checkpoint(_checkpoint_path(resume, must_exist=True))
            _check_resumable(model, saved, resume, optimizer, lr, momentum, nesterov, weight_decay)
            opt = saved.optimizer
        else:
            opt = _optimizer(optimizer, lr, momentum, nesterov, weight_decay)
        X_host = model._features(X)
        T_host = model._targets(y, X_host.shape[0])
        X_val = T_val = None
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            X_val = model._features(validation_data[0], name="X_val")
            T_val = model._targets(validation_data[1], X_val.shape[0], name="y_val")
        # Only checkpoints need it (a hash of sampled rows: cheap, but not free for tiny runs).
        fingerprint = (
            data_fingerprint(X_host, T_host) if checkpoint is not None or saved is not None else {}
        )
        _check_batch_rows(model, X_host.shape[0], batch_size, 1 if comm is None else comm.size)
        if saved is not None:
            _check_position(saved.position, resume, epochs, batch_size, X_host.shape[0])
            _check_same_data(saved.data, fingerprint, resume, force)
        if checkpoint is not None and rank == 0:
            _check_writable(checkpoint)
        if progress is None:
            progress = sys.stderr.isatty()
        hooks = list(hooks)
        for hook in hooks:
            if not isinstance(hook, Hook):
                raise TypeError(f"hooks must be fastnn.hooks.Hook objects, got {hook!r}")

    except Exception as exc:
        if comm is not None:
            comm.agree(exc)  # every rank raises, none waits in the loop
        raise
    if comm is not None:
        comm.agree(None)
        comm.agree(_same_data_on_every_rank(comm, X_host, T_host))

    trainer = _Trainer(
        model,
        opt,
        X_host,
        T_host,
        X_val,
        T_val,
        epochs,
        batch_size,
        shuffle,
        fingerprint,
        comm,
    )
    if saved is not None:
        trainer.restore(saved)
    built_in: list[Hook] = [] if comm is None else [AllreduceGradients(comm)]
    if progress and rank == 0:
        built_in.append(ProgressBar(epochs, trainer.position.epoch))
    if checkpoint is not None and rank == 0:
        built_in.append(Checkpoints(checkpoint, checkpoint_every))
    if patience is not None:
        built_in.append(EarlyStopping(patience, "val_loss" if X_val is not None else "loss"))
    trainer.set_hooks([*built_in, *hooks])
    with _interrupts() as interrupted:
        trainer.interrupted = interrupted
        trainer.run()
    return model.history


def _checkpoint_path(path: Any, must_exist: bool = False) -> Path:
    """``path`` as a Path whose folder exists (and, to resume from, the file itself)."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"a checkpoint path must be a str or os.PathLike, got {path!r}")
    path = Path(path)
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write checkpoints to {path}: no folder {path.parent}")
    return path


def _same_data_on_every_rank(comm: Any, X: Any, T: Any) -> ValueError | None:
    """Collective: the error every rank raises when the ranks were given different data."""
    prints = comm.allgather(data_fingerprint(X, T))
    differ = [r for r, f in enumerate(prints) if f != prints[0]]
    if differ:
        return ValueError(
            f"distributed fit: ranks {differ} were given other X or y than rank 0; every "
            "rank passes the same, full data (fit takes each rank's rows of each batch)"
        )
    return None


def _check_batch_rows(model: Any, n: int, batch_size: int, ranks: int = 1) -> None:
    """Every training batch must have the rows its layers need (BatchNorm: 2) on every
    rank, the last, short batch included; refused before training, with a batch size
    that works."""
    need = model.min_batch_rows
    last = n % batch_size or batch_size
    if need == 1 or (min(batch_size, n) // ranks >= need and last // ranks >= need):
        return
    i, layer = next((i, la) for i, la in enumerate(model.layers) if la.min_batch_rows == need)
    if n < need:
        raise ValueError(
            f"{layer!r} (layer {i}) needs at least {need} samples to train on, got {n}"
        )
    works = [b for b in range(need * ranks, n + 1) if (n % b or b) // ranks >= need]
    if not works:
        raise ValueError(f"{layer!r} (layer {i}) needs {need} rows per rank in every batch")
    better = min(works, key=lambda b: (abs(b - batch_size), b))
    where = "" if ranks == 1 else f" on each of {ranks} ranks"
    raise ValueError(
        f"{layer!r} (layer {i}) needs at least {need} rows in every training batch{where}, "
        f"but {n} samples in batches of {batch_size} leave a last batch of {min(last, n)}; "
        f"use batch_size={better}"
    )


def _check_writable(path: Path) -> None:
    """Fail now, not after hours of training, if checkpoints cannot be written at ``path``
    (a file is created and removed in its folder, as the atomic write will)."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise OSError(
            f"cannot write {path}: {exc.strerror or exc} (folder {folder}); nothing was trained"
        ) from exc
    os.close(fd)
    os.unlink(probe)


def _check_same_data(saved: dict, now: dict, path: Any, force: bool) -> None:
    """Resuming on other data than the checkpoint's is refused, or, with ``force``, said."""
    difference = describe_difference(saved, now)
    if not difference:
        return
    if not force:
        raise ValueError(
            f"{path} was written for other training data ({difference}); resume with the "
            "same X and y, or pass force=True to resume anyway"
        )
    warnings.warn(
        f"force=True: resuming {path} with other training data than it was written for "
        f"({difference})",
        UserWarning,
        stacklevel=3,
    )


def _check_position(position: Any, path: Any, epochs: int, batch_size: int, n: int) -> None:
    """The checkpoint's position must fit this call's ``epochs``, batches and data."""
    if position.epoch > epochs:
        raise ValueError(f"{path} is at epoch {position.epoch}, past epochs={epochs}")
    if position.batch:
        if position.batch_size != batch_size:
            raise ValueError(
                f"{path} stopped inside an epoch at batch_size={position.batch_size}; resume "
                f"with that batch_size (got {batch_size})"
            )
        if position.batch * batch_size >= n:
            raise ValueError(
                f"{path} stopped after batch {position.batch} of an epoch, but {n} samples "
                f"make only {-(-n // batch_size)} batches: is this the same data?"
            )


def _optimizer(optimizer: Any, lr: Any, momentum: Any, nesterov: Any, weight_decay: Any) -> Any:
    """The optimizer ``fit`` was asked for: plain SGD unless named or given."""
    return make_optimizer(
        "sgd" if optimizer is None else optimizer,
        lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
    )


def _check_resumable(model: Any, saved: Any, path: Any, optimizer: Any, *settings: Any) -> None:
    c = saved.contents
    theirs = [(layer.kind, layer.config()) for layer in c.layers]
    mine = [(layer.kind, layer.config()) for layer in model.layers]
    if (theirs, c.architecture["loss"], c.architecture["dtype"]) != (
        mine,
        model.loss.name,
        model.dtype,
    ):
        raise ValueError(
            f"{path} was written for layers {c.layers} with loss "
            f"{c.architecture['loss']!r} in {c.architecture['dtype']}, not for {model!r}"
        )
    if optimizer is None and all(v is None for v in settings):
        return
    lr, momentum, nesterov, weight_decay = settings
    asked = _optimizer(optimizer, lr, momentum, nesterov, weight_decay)
    kept = saved.optimizer
    if type(asked) is not type(kept) or asked.config() != kept.config():
        raise ValueError(
            f"{path} continues with {kept!r}, but this call asks for {asked!r}; pass the "
            "same optimizer settings, or none"
        )


class _Interrupted:
    """Set by Ctrl-C while ``fit`` runs; the loop stops after the current batch."""

    def __init__(self) -> None:
        self.flag = False

    def __bool__(self) -> bool:
        return self.flag


@contextlib.contextmanager
def _interrupts() -> Iterator[_Interrupted]:
    interrupted = _Interrupted()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # signals reach the main thread only
        return

    def handler(signum: int, frame: Any) -> None:
        if interrupted.flag:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        interrupted.flag = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


class _Epoch:
    """Running sums of the epoch under way."""

    def __init__(self, loss: float = 0.0, correct: float = 0.0, units: int = 0) -> None:
        self.loss, self.correct, self.units = loss, correct, units


class _Trainer:
    """One ``fit`` call's state: the model, optimizer, data, history and position."""

    def __init__(
        self,
        model: Any,
        opt: Any,
        X_host: Any,
        T_host: Any,
        X_val: Any,
        T_val: Any,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        fingerprint: dict,
        comm: Any = None,
    ) -> None:
        backend = model.backend
        self.comm = comm
        self.batch_rows = (0, 0)  # this rank's and the global batch's rows, for the hooks
        self.fingerprint = fingerprint
        self.model, self.opt, self.backend = model, opt, backend
        self.n = X_host.shape[0]
        # Host data small enough: on the backend once per fit; larger: read batch by batch.
        # (Data already on the GPU stays where it is.)
        limit = backend.upload_limit() if STREAM_BYTES is None else STREAM_BYTES
        itemsize = model.parameters()[0].dtype.itemsize
        self.stream = on_host(X_host) and X_host.size * itemsize > limit
        self.X_host = X_host
        self.Xd: Any = None if self.stream else backend.asarray(X_host, dtype=model.dtype)
        self.Td = model._targets_to_backend(T_host)
        self.X_val, self.T_val = X_val, T_val
        self.epochs, self.batch_size, self.shuffle = epochs, batch_size, shuffle
        self.hooks: list[Hook] = []
        self.per_layer_hooks: list[Hook] = []
        self.position = Position(
            epochs=epochs,
            epoch=0,
            key=list(model._order_key),
            first_epoch=model._epochs_trained,
            batch_size=batch_size,
            shuffle=shuffle,
        )
        self.history: dict[str, list[float]] = {"loss": []}
        if model.is_classifier:
            self.history["accuracy"] = []
        if X_val is not None:
            self.history["val_loss"] = []
            if model.is_classifier:
                self.history["val_accuracy"] = []
        self.partial = _Epoch()
        self.interrupted: Any = False
        self.needs_rows = any(layer.uses_sample_index for layer in model.layers)
        # The dropout key (replaced by a resumed run's); only layers that draw need it.
        self.mask_key = mask_key(model._order_key) if self.needs_rows else (0, 0)
        # A backend may run many epochs of plain SGD in one call (small networks of dense
        # layers, whose activations it is given); that needs nothing to happen between
        # batches or epochs: no validation, no per-epoch hook but checkpoints and the bar.
        self.small_network = [layer.small_network_activation() for layer in model.layers]
        self.try_fused = (
            None not in self.small_network
            and X_val is None
            and not self.stream
            and isinstance(opt, SGD)
            and not opt.momentum
            and not opt.weight_decay
        )

    def restore(self, saved: Any) -> None:
        """Continue from a checkpoint: weights, optimizer, position (with the batch-order
        key), history."""
        model = self.model
        model.load_state_dict(saved.contents.state)
        self.opt = saved.optimizer
        p = saved.position
        self.position = p
        self.position.epochs = self.epochs
        for key in self.history:
            self.history[key] = list(saved.history.get(key, []))
        self.partial = _Epoch(p.partial_loss, p.partial_correct, p.partial_units)
        self.mask_key = mask_key(p.key) if self.needs_rows else (0, 0)

    def set_hooks(self, hooks: list[Hook]) -> None:
        """The hooks of this run; per-batch ones, or any but the progress bar and
        checkpoints, keep the run off the fused many-epoch path."""
        self.hooks = hooks
        self.per_layer_hooks = [
            h for h in hooks if type(h).after_layer_backward is not Hook.after_layer_backward
        ]
        self.try_fused = self.try_fused and all(
            isinstance(h, ProgressBar | Checkpoints) and not wants_every_batch(h) for h in hooks
        )

    # -- what hooks see --------------------------------------------------------------

    @property
    def optimizer(self) -> Any:
        return self.opt

    def interrupt(self) -> None:
        """Stop after the current batch, as Ctrl-C does (another rank's Ctrl-C)."""
        if self.interrupted is not False:
            self.interrupted.flag = True

    def stop(self) -> None:
        """End the run after the current epoch (early stopping)."""
        self.epochs = self.position.epoch

    def save(self, path: Any) -> None:
        """Write a checkpoint of the run as it stands to ``path``."""
        from .checkpoint import save_checkpoint  # file libraries load only when files are used

        p = self.position
        p.partial_loss, p.partial_correct = self.partial.loss, self.partial.correct
        p.partial_units = self.partial.units
        save_checkpoint(path, self.model, self.opt, p, self.history, self.fingerprint)

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        model, backend, p = self.model, self.backend, self.position
        model.history = self.history
        model.optimizer = self.opt
        try:
            with backend.float_errors_ignored():
                self._run_epochs()
            if self.interrupted:
                for hook in self.hooks:
                    hook.on_interrupt(self)
            else:
                for hook in self.hooks:
                    hook.on_run_end(self)
        finally:
            model._epochs_trained = p.first_epoch + p.epoch
            for hook in self.hooks:
                hook.close(self)
            for layer in model.layers:
                layer.release()
        if self.interrupted:
            where = f"epoch {p.epoch + 1}, batch {p.batch}" if p.batch else f"epoch {p.epoch}"
            saved = next(
                (
                    f"; checkpoint written to {h.path}"
                    for h in self.hooks
                    if isinstance(h, Checkpoints)
                ),
                "",
            )
            raise KeyboardInterrupt(f"training interrupted after {where}{saved}")

    def _stopped(self) -> bool:
        return bool(self.interrupted)

    def _orders(self, first: int, stop: int) -> Any:
        """Sample orders of epochs ``first .. stop - 1``, shape (stop - first, n)."""
        p = self.position
        offset = p.first_epoch
        return epoch_orders(p.key, offset + first, offset + stop, self.n, self.shuffle)

    def _run_epochs(self) -> None:
        p = self.position
        while p.epoch < self.epochs and not self._stopped():
            if self.try_fused and p.batch == 0:
                per_call = max(1, _FUSED_CHUNK_SAMPLES // self.n)
                stop = min(self.epochs, self._next_checkpoint(), p.epoch + per_call)
                if self._run_fused(self._orders(p.epoch, stop)):
                    continue
                self.try_fused = False
            # Without shuffling, data on the backend is read in plain slices.
            order = self._orders(p.epoch, p.epoch + 1)[0] if self.shuffle or self.stream else None
            if not self._run_epoch(order):
                return  # interrupted mid-epoch
            self._end_epoch()

    def _next_checkpoint(self) -> int:
        due = [h.next_due(self.position.epoch) for h in self.hooks if isinstance(h, Checkpoints)]
        return min(due, default=self.epochs)

    def _end_epoch(self) -> None:
        """Record a completed epoch (history, validation), then the hooks."""
        model, p, history = self.model, self.position, self.history
        history["loss"].append(self.partial.loss / self.n)
        if model.is_classifier:
            units = self.partial.units
            history["accuracy"].append(self.partial.correct / units if units else math.nan)
        self.partial = _Epoch()
        p.epoch += 1
        p.batch = 0
        if self.X_val is not None:
            scores = model._evaluate_host(self.X_val, self.T_val, batch_size=4096)
            history["val_loss"].append(scores["loss"])
            if model.is_classifier:
                history["val_accuracy"].append(scores["accuracy"])
        for hook in self.hooks:
            hook.on_epochs_end(self, 1)

    def _run_fused(self, orders: Any) -> bool:
        """Run these epochs (as many of them as the backend takes in one call) through its
        fused SGD path; False if it has none."""
        model, opt, p = self.model, self.opt, self.position
        result = self.backend.sgd_epochs(
            model.parameters(),
            self.small_network,
            model.loss.name,
            self.Xd,
            self.Td,
            orders,
            self.batch_size,
            opt.lr,
        )
        if result is None:
            return False
        losses, correct, failure = result
        done = len(losses) if failure is None else failure[0]  # the backend ran len(losses)
        steps = -(-self.n // self.batch_size)
        opt.t += done * steps
        units = self.n * (model.n_outputs if model.loss.name == "binary_cross_entropy" else 1)
        self.history["loss"].extend(losses[:done].tolist())
        if model.is_classifier:
            self.history["accuracy"].extend((correct[:done] / units).tolist())
        p.epoch += done
        if failure is not None:  # the backend put the weights back to the epoch's start
            what = "the loss, a gradient or an update is not finite"
            _diverged(opt, p.epoch + 1, failure[1] + 1, what)
        for hook in self.hooks:
            hook.on_epochs_end(self, done)
        return True

    def _batches(self, order: Any) -> Iterator[tuple[int, Any, Any, Any]]:
        """``(batch number from 1, X batch, T batch, sample indices)`` for the epoch, from
        ``position.batch``; the indices (a backend array) only where a layer needs them.
        Distributed, each is this rank's share of the global batch (``self.batch_rows``)."""
        backend, model = self.backend, self.model
        device_order = None if order is None or self.stream else backend.asarray(order)
        for batch, whole in enumerate(batch_slices(self.n, self.batch_size), start=1):
            if batch <= self.position.batch:
                continue  # done before the checkpoint this run resumed from
            s = whole if self.comm is None else self.comm.shard(whole)
            self.batch_rows = (s.stop - s.start, whole.stop - whole.start)
            rows = None
            if self.stream:
                Xb, rows = backend.stream_rows(self.X_host, order[s], model.dtype)
                Tb = backend.take_rows(self.Td, rows)
            elif device_order is None:
                Xb, Tb = self.Xd[s], self.Td[s]
                if self.needs_rows:
                    rows = backend.arange(s.start, s.stop)
            else:
                rows = device_order[s]
                Xb, Tb = backend.take_rows(self.Xd, rows), backend.take_rows(self.Td, rows)
            yield batch, Xb, Tb, rows

    def _layer_done(self, layer: int) -> None:
        for hook in self.per_layer_hooks:
            hook.after_layer_backward(self, layer)

    def _zero_gradients(self) -> None:
        """Every parameter's gradient set to zeros (a rank with no rows in a batch)."""
        for layer in self.model.layers:
            for name, param in layer.parameters().items():
                setattr(layer, "d" + name, self.backend.zeros(param.shape, param.dtype))

    def _snapshot(self) -> tuple:
        """Copies of the model's parameters and buffers and of the optimizer's state."""
        copy = self.backend.copy
        opt = self.opt
        state = {name: [copy(a) for a in getattr(opt, name) or []] for name in opt.state_names}
        return [copy(a) for a in self.model.state_arrays()], state, opt.t, opt._params is None

    def _restore(self, snapshot: tuple) -> None:
        """Put the model and the optimizer back as :meth:`_snapshot` found them."""
        arrays, state, t, unbound = snapshot
        for a, saved in zip(self.model.state_arrays(), arrays, strict=True):
            a[...] = saved
        opt = self.opt
        for name, saved_arrays in state.items():
            for a, saved in zip(getattr(opt, name) or [], saved_arrays, strict=False):
                a[...] = saved
        opt.t = t
        if unbound:  # it had no state yet: the next step starts it afresh
            opt._params = None

    def _run_epoch(self, order: Any) -> bool:
        """One pass over the data, from ``position.batch``; False when interrupted first.

        The same on every backend: each batch's loss, correct count and a finiteness flag
        (the loss and every gradient) stay on the backend, one entry per batch, and are
        read once when the pass ends (on a GPU, the epoch's one wait). A batch that was not
        finite has been applied by then, so on divergence the model (parameters and
        buffers) and the optimizer go back to where the pass started, and the error names
        the first bad batch.
        """
        model, backend, opt, p = self.model, self.backend, self.opt, self.position
        snapshot = self._snapshot()
        n_batches = -(-self.n // self.batch_size)
        losses = backend.zeros((n_batches,), "float64")
        finite = backend.zeros((n_batches,), "bool")
        finite[: p.batch] = True
        correct = backend.zeros((n_batches,), "int64")
        fused = model._fused
        epoch, first, last = p.epoch + 1, p.batch, p.batch
        shares = [0] * n_batches  # this rank's rows of each batch (all of them, alone)
        for batch, Xb, Tb, rows in self._batches(order):
            shares[batch - 1] = Xb.shape[0]
            if Xb.shape[0]:
                step = Batch(
                    rows,
                    p.first_epoch + p.epoch,
                    self.mask_key,
                    comm=self.comm,
                    global_rows=self.batch_rows[1],
                    after_layer=self._layer_done if self.per_layer_hooks else None,
                )
                loss, out = model.train_batch(Xb, Tb, step)
                losses[batch - 1] = loss
            else:  # a batch of fewer rows than ranks: this rank adds nothing
                self._zero_gradients()
                loss, out = losses[batch - 1], None
            for hook in self.hooks:  # distributed: the gradients are averaged over ranks
                hook.after_backward(self)
            finite[batch - 1] = backend.finite_flag([loss, *model.parameter_gradients()])
            opt.step(model)
            if model.is_classifier and out is not None:
                c, u = model.count_correct(out, Tb, logits=fused)
                correct[batch - 1] = c
                self.partial.units += u
            last = batch
            if self.interrupted and batch < n_batches:
                break
        ok = backend.to_numpy(finite[:last])  # the pass's one read of the flags
        sums = backend.to_numpy(losses[first:last]) * shares[first:last]
        counts = backend.to_numpy(correct[first:last])
        if self.comm is not None:  # every rank's flags, loss sums and counts
            ok, sums, counts, self.partial.units = self.comm.reduce_epoch(
                ok, sums, counts, self.partial.units
            )
        if not ok.all() or not bool(backend.finite_flag(model.state_arrays())):
            bad = int((~ok).argmax()) + 1 if not ok.all() else last
            self._restore(snapshot)
            what = "the loss or a gradient is" if not ok.all() else "an update made the weights"
            _diverged(opt, epoch, bad, f"{what} not finite", where=first)
        # Summed in batch order, each batch's mean loss weighted by its rows: the same sum
        # however an interruption split the epoch.
        for value in sums.tolist():
            self.partial.loss += value
        self.partial.correct += float(counts.sum())
        p.batch = last
        return last == n_batches


def _diverged(opt: Any, epoch: int, batch: int, what: str, where: int = 0) -> None:
    """Raise :class:`TrainingDivergedError`; the model is back at the start of ``epoch``
    (or, for a pass resumed mid-epoch, after its batch ``where``)."""
    start = f"the start of epoch {epoch}" if not where else f"batch {where} of epoch {epoch}"
    raise TrainingDivergedError(
        f"training diverged at epoch {epoch}, batch {batch}: {what}. Try a lower learning "
        f"rate (it was {opt.lr}) or scale the inputs. The weights and the optimizer's state "
        f"were restored to those at {start}.",
        epoch=epoch,
        batch=batch,
    )
