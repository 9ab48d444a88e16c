#!/usr/bin/env bash
# Verify the cupy backend on a GPU machine in one command (see bench/gpu_check.py).
# Installs this checkout without downloading anything; CuPy, PyTorch, pytest and
# pytest-benchmark must already be installed. Results: $FASTNN_GPU_RESULTS (./gpu-results).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --no-build-isolation --no-deps -e .
exec timeout 290 python bench/gpu_check.py
