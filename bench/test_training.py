"""Whole training steps and epochs: fastnn's backends against the peers."""

from __future__ import annotations

import pytest

from fastnn.benchmarking import peers
from fastnn.benchmarking.workloads import (
    UPDATE_OPTIMIZERS,
    fastnn_epoch,
    fastnn_train_step,
    fastnn_update,
)

PEERS_STEP = {
    "pytorch": lambda arch, dtype: peers.torch_train_step(arch, dtype, "cpu"),
    "pytorch-cuda": lambda arch, dtype: peers.torch_train_step(arch, dtype, "cuda"),
    "numpy-tutorial": peers.tutorial_train_step,
    "jax-jit": peers.jax_train_step,
    "jax-jit-host": lambda arch, dtype: peers.jax_train_step(arch, dtype, host=True),
}
PEERS_EPOCH = {
    "pytorch": lambda arch, dtype: peers.torch_epoch(arch, dtype, "cpu"),
    "pytorch-cuda": lambda arch, dtype: peers.torch_epoch(arch, dtype, "cuda"),
    "scikit-learn": peers.sklearn_epoch,
    "jax-jit": peers.jax_epoch,
}


def test_train_step(backend, arch, dtype, measure):
    measure(lambda: fastnn_train_step(arch, backend, dtype))


@pytest.mark.parametrize("peer", list(PEERS_STEP))
def test_train_step_peer(measure, peer, arch, dtype):
    measure(lambda: PEERS_STEP[peer](arch, dtype))


def test_epoch(backend, arch, dtype, measure):
    measure(lambda: fastnn_epoch(arch, backend, dtype))


@pytest.mark.parametrize("peer", list(PEERS_EPOCH))
def test_epoch_peer(measure, peer, arch, dtype):
    measure(lambda: PEERS_EPOCH[peer](arch, dtype))


@pytest.mark.parametrize("optimizer", UPDATE_OPTIMIZERS)
def test_update(backend, arch, dtype, optimizer, measure):
    measure(lambda: fastnn_update(arch, backend, dtype, optimizer))
