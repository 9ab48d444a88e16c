#!/usr/bin/env bash
# Verify the cupy backend on a GPU machine in one command (see bench/gpu_check.py).
# Downloads nothing. CuPy and pytest must be installed (PyTorch too, for the comparison).
# Installs this checkout with the image's own setuptools (no build isolation, no index);
# where that cannot build it (no setuptools, as in Python 3.12+ venvs, or one older than
# 77), it runs a copy of the checkout from PYTHONPATH instead, and says so.
# Results: $FASTNN_GPU_RESULTS (default ./gpu-results). Arguments go to gpu_check.py.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$(command -v python || command -v python3)"
results="${FASTNN_GPU_RESULTS:-$root/gpu-results}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
export FASTNN_GPU_RESULTS="$results"

if "$python" -m pip install --quiet --no-build-isolation --no-deps --no-index "$root" \
    >"$results/install.log" 2>&1; then
    echo "install: fastnn installed from $root"
else
    stage="$(mktemp -d)"
    cp -r "$root/fastnn" "$stage/fastnn"
    rm -rf "$stage/fastnn/kernels"
    cp -r "$root/kernels" "$stage/fastnn/kernels"  # where the wheel would put it
    export PYTHONPATH="$stage${PYTHONPATH:+:$PYTHONPATH}"
    why="$(grep -m1 -iE 'configuration error|no module named|requires|not find' \
        "$results/install.log" || tail -n1 "$results/install.log")"
    echo "install: pip could not build fastnn here (${why## }); running a copy of the" \
        "checkout from PYTHONPATH (full log: $results/install.log)"
fi

# Not from the checkout, whose fastnn/ (without kernels/) would shadow the installed one.
cd "$results"
exec timeout 290 "$python" "$root/bench/gpu_check.py" "$@"
