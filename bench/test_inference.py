"""Inference: latency at batch 1 and throughput at a large batch."""

from __future__ import annotations

import pytest

from fastnn.benchmarking import peers
from fastnn.benchmarking.suite import LARGE_BATCH
from fastnn.benchmarking.workloads import fastnn_inference

BATCHES = pytest.mark.parametrize("batch", [1, LARGE_BATCH], ids=["batch1", "large"])


@BATCHES
def test_inference(backend, arch, dtype, batch, measure):
    measure(lambda: fastnn_inference(arch, backend, dtype, batch))


@BATCHES
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_inference_pytorch(measure, arch, dtype, batch, device):
    measure(lambda: peers.torch_inference(arch, dtype, batch, device))
