"""One command to verify fastnn's CuPy backend on a machine with an NVIDIA GPU.

    bash bench/gpu_check.sh            # installs this checkout (no downloads), then runs this

Needs CuPy, PyTorch (CUDA build), pytest and pytest-benchmark already installed. It

1. runs every test that involves the cupy backend (conformance with the NumPy float64
   reference, gradients, training, model files) and counts passes, failures and skips;
2. times a training step of S (784-128-10, batch 128), L (784-2048-2048-10, batch 1024) and
   XL (784-4096-4096-4096-10, batch 8192) on cupy and on PyTorch CUDA eager, both from the
   same weights after checking one step against NumPy float64, in interleaved rounds;
3. measures cuBLAS's float32 GEMM rate (8192 x 4096 x 4096) in the same run;

and prints a short table last: samples/s, achieved TFLOP/s, % of the measured GEMM rate
and the ratio cupy / PyTorch. Float32 throughout, TF32 off (CuPy's and PyTorch's default).
Full results go to the folder in $FASTNN_GPU_RESULTS (default ./gpu-results). It is sized
to finish in under 5 minutes on an H100.

``--smoke`` runs the same code at toy sizes and only a few tests, so CI can run the script
itself on the CPU CUDA emulator (``tests/cuda_emulator``) and a GPU session does not spend
its few minutes finding a typo.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ARCHS = ("S", "L", "XL")


def run_tests(out: Path, keyword: str = "cupy") -> dict:
    """The test suite's cupy cases; returns counts parsed from pytest's JSON-free summary."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "-k",
        keyword,
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        f"--junitxml={out / 'cupy-tests.xml'}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (out / "cupy-tests.log").write_text(proc.stdout + proc.stderr)
    import xml.etree.ElementTree as ET

    suite = ET.parse(out / "cupy-tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["seconds"] = round(time.perf_counter() - start, 1)
    counts["exit_code"] = proc.returncode
    return counts


def gemm_tflops(m: int = 8192, k: int = 4096, n: int = 4096, reps: int = 20) -> float:
    import cupy

    A = cupy.random.random((m, k), dtype=cupy.float32)
    B = cupy.random.random((k, n), dtype=cupy.float32)
    C = cupy.empty((m, n), dtype=cupy.float32)
    for _ in range(3):
        cupy.matmul(A, B, out=C)
    cupy.cuda.Device().synchronize()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(reps):
        cupy.matmul(A, B, out=C)
    stop.record()
    stop.synchronize()
    seconds = cupy.cuda.get_elapsed_time(start, stop) / 1e3 / reps
    return 2.0 * m * k * n / seconds / 1e12


def run_benchmarks(smoke: bool) -> tuple[list[dict], list[str]]:
    from fastnn.benchmarking.peers import PeerUnavailable
    from fastnn.benchmarking.suite import builders, checked, run_side_by_side
    from fastnn.benchmarking.workloads import ARCHITECTURES

    results, skipped = [], []
    for name in ARCHS:
        arch = ARCHITECTURES[name]
        if smoke:  # the same depth, toy widths
            sizes = (16, *(8 for _ in arch.sizes[1:-1]), 4)
            arch = dataclasses.replace(arch, sizes=sizes, batch=8)
        group = []
        for impl, build in builders(arch, "train_step", "float32", ["cupy"], ("pytorch-cuda",)):
            try:
                group.append(checked(build()))
            except PeerUnavailable as exc:
                skipped.append(f"{impl} {name}: {exc}")
        print(f"timing {name}: " + ", ".join(w.implementation for w in group), flush=True)
        results += [asdict(r) for r in run_side_by_side(group, min_time=0.01 if smoke else 1.0)]
    return results, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, a few tests")
    smoke = parser.parse_args(argv).smoke
    out = Path(os.environ.get("FASTNN_GPU_RESULTS", "gpu-results"))
    out.mkdir(parents=True, exist_ok=True)
    import cupy

    import fastnn

    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"device: {device}; fastnn {fastnn.__version__}, cupy {cupy.__version__}", flush=True)
    tests = run_tests(out, "cupy and mse" if smoke else "cupy")
    print(f"cupy tests: {tests}", flush=True)
    gemm = (64, 64, 64) if smoke else (8192, 4096, 4096)
    peak = gemm_tflops(*gemm, reps=2 if smoke else 20)
    results, skipped = run_benchmarks(smoke)
    report = {
        "device": device,
        "tests": tests,
        "gemm_tflops_float32": peak,
        "results": results,
        "skipped": skipped,
    }
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1))

    lines = [
        f"device {device}; cuBLAS float32 GEMM ({'x'.join(map(str, gemm))}): {peak:.1f} TFLOP/s",
        f"cupy tests: {tests['tests']} run, {tests['failures'] + tests['errors']} failed, "
        f"{tests['skipped']} skipped ({tests['seconds']} s)",
        f"{'arch':4s} {'impl':14s} {'samples/s':>12s} {'TFLOP/s':>8s} {'% GEMM':>7s} "
        f"{'cupy/torch':>10s}",
    ]
    for r in results:
        torch = next(
            (
                o
                for o in results
                if o["arch"] == r["arch"] and o["implementation"] == "pytorch-cuda"
            ),
            None,
        )
        ratio = f"{r['samples_per_s'] / torch['samples_per_s']:.2f}" if torch else ""
        lines.append(
            f"{r['arch']:4s} {r['implementation']:14s} {r['samples_per_s']:12,.0f} "
            f"{r['gflops'] / 1e3:8.2f} {100 * r['gflops'] / 1e3 / peak:7.1f} "
            f"{ratio if r['implementation'] == 'fastnn[cupy]' else '':>10s}"
        )
    lines += [f"skipped: {s}" for s in skipped]
    table = "\n".join(lines)
    (out / "gpu-check.txt").write_text(table + "\n")
    print("\n" + table)
    return 0 if tests["failures"] + tests["errors"] == 0 and tests["exit_code"] in (0, 5) else 1


if __name__ == "__main__":
    sys.exit(main())
