"""One command to verify fastnn's CuPy backend on a machine with an NVIDIA GPU.

    bash bench/gpu_check.sh            # installs this checkout (no downloads), then runs this

Needs CuPy and pytest already installed, and PyTorch (CUDA build) for the comparison. It

0. prints a preflight line: CuPy, driver and runtime versions, the device, and which of
   numpy, safetensors, tqdm and torch import;
1. runs every test that involves the cupy backend (conformance with the NumPy float64
   reference, gradients, training, model files) with ``FASTNN_REQUIRE=cupy``, so a cupy
   backend that cannot start fails them instead of skipping, in at most 150 s and
   stopping after 10 failures (after an illegal address every later CUDA call fails);
2. measures cuBLAS's float32 GEMM rate (8192 x 4096 x 4096);
3. times a training step of S (784-128-10, batch 128), L (784-2048-2048-10, batch 1024) and
   XL (784-4096-4096-4096-10, batch 8192) on cupy and on PyTorch CUDA eager, both from the
   same weights after checking one step against NumPy float64, in interleaved rounds;

and prints a short table last: samples/s, achieved TFLOP/s, % of the measured GEMM rate
and the ratio cupy / PyTorch. Float32 throughout, TF32 off (CuPy's and PyTorch's default).
Everything goes to ``gpu-check.json`` in ``$FASTNN_GPU_RESULTS`` (default ./gpu-results),
rewritten after every phase and every workload, and a failure in one workload is recorded
there without losing the others. Sized to finish in under 5 minutes on an H100, with
headroom for a bare machine compiling every kernel on first use.

``--smoke`` runs the same code at toy sizes and only a few tests, so CI can run the script
itself on the CPU CUDA emulator (``tests/cuda_emulator``) and a GPU session does not spend
its few minutes finding a typo.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ("S", "L", "XL")
TEST_TIMEOUT_S = 150
MAX_FAILURES = 10
# Rerunning the script in a subprocess would only repeat this run's work on a GPU.
NOT_ON_THE_GPU = "not gpu_check_script"


class Results:
    """What the check found so far, written to ``gpu-check.json`` whenever it grows."""

    def __init__(self, out: Path) -> None:
        self.path = out / "gpu-check.json"
        self.data: dict[str, Any] = {"results": [], "skipped": [], "errors": []}

    def update(self, **entries: Any) -> None:
        self.data.update(entries)
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1, default=str))


def preflight() -> dict[str, Any]:
    """Versions and device, and which optional libraries import, before anything runs."""
    info: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in ("numpy", "safetensors", "tqdm", "torch"):
        try:
            module = importlib.import_module(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError as exc:
            info[name] = f"missing ({exc})"
    try:
        import cupy

        runtime = cupy.cuda.runtime
        info["cupy"] = cupy.__version__
        info["driver"] = runtime.driverGetVersion()
        info["runtime"] = runtime.runtimeGetVersion()
        info["device"] = runtime.getDeviceProperties(0)["name"].decode()
    except Exception as exc:  # the line must print whatever is wrong
        info["cupy_error"] = f"{type(exc).__name__}: {exc}"
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_cuda"] = bool(torch.cuda.is_available())
    return info


def run_tests(out: Path, keyword: str, timeout: float = TEST_TIMEOUT_S) -> dict[str, Any]:
    """The test suite's cupy cases, cupy required; counts from pytest's JUnit XML."""
    junit = out / "cupy-tests.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "tests"),
        "-k",
        keyword,
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        f"--maxfail={MAX_FAILURES}",
        f"--junitxml={junit}",
    ]
    env = {**os.environ, "FASTNN_REQUIRE": "cupy"}
    start = time.perf_counter()
    counts: dict[str, Any] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        log, counts["exit_code"] = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        log = _text(exc.stdout) + _text(exc.stderr) + f"\n[timed out after {timeout} s]"
        counts["exit_code"], counts["timed_out"] = None, True
    (out / "cupy-tests.log").write_text(log)
    if junit.exists():
        import xml.etree.ElementTree as ET

        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors")})
        counts["skipped"] = int(suite.get("skipped", 0))
    counts["seconds"] = round(time.perf_counter() - start, 1)
    return counts


def _text(data: Any) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def tests_passed(counts: dict[str, Any]) -> bool:
    return (
        counts.get("exit_code") == 0
        and counts["tests"] > 0
        and counts["failures"] + counts["errors"] == 0
    )


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


def run_benchmarks(results: Results, smoke: bool) -> None:
    """Time each architecture; a failure is recorded and the next one still runs."""
    from fastnn.benchmarking import suite
    from fastnn.benchmarking.peers import PeerUnavailable
    from fastnn.benchmarking.workloads import ARCHITECTURES

    for name in ARCHS:
        arch = ARCHITECTURES[name]
        if smoke:  # the same depth, toy widths
            sizes = (16, *(8 for _ in arch.sizes[1:-1]), 4)
            arch = dataclasses.replace(arch, sizes=sizes, batch=8)
        try:
            group = []
            for impl, build in suite.builders(
                arch, "train_step", "float32", ["cupy"], ("pytorch-cuda",)
            ):
                try:
                    group.append(suite.checked(build()))
                except PeerUnavailable as exc:
                    results.data["skipped"].append(f"{impl} {name}: {exc}")
            print(f"timing {name}: " + ", ".join(w.implementation for w in group), flush=True)
            timed = suite.run_side_by_side(group, min_time=0.01 if smoke else 1.0)
            results.data["results"] += [asdict(r) for r in timed]
        except Exception as exc:
            results.data["errors"].append(
                {
                    "arch": name,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
            )
            print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
        results.save()


def table(data: dict[str, Any]) -> str:
    """The short summary printed last."""
    tests, peak = data.get("tests", {}), data.get("gemm_tflops_float32")
    lines = [
        "preflight: " + ", ".join(f"{k} {v}" for k, v in data.get("preflight", {}).items()),
        f"cuBLAS float32 GEMM: {peak:.1f} TFLOP/s" if peak else "cuBLAS float32 GEMM: not measured",
        f"cupy tests: {tests.get('tests', 0)} run, "
        f"{tests.get('failures', 0) + tests.get('errors', 0)} failed, "
        f"{tests.get('skipped', 0)} skipped ({tests.get('seconds', '?')} s"
        f"{', timed out' if tests.get('timed_out') else ''})",
        f"{'arch':4s} {'impl':14s} {'samples/s':>12s} {'TFLOP/s':>8s} {'% GEMM':>7s} "
        f"{'cupy/torch':>10s}",
    ]
    results = data.get("results", [])
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
        share = f"{100 * r['gflops'] / 1e3 / peak:7.1f}" if peak else f"{'':7s}"
        lines.append(
            f"{r['arch']:4s} {r['implementation']:14s} {r['samples_per_s']:12,.0f} "
            f"{r['gflops'] / 1e3:8.2f} {share} "
            f"{ratio if r['implementation'] == 'fastnn[cupy]' else '':>10s}"
        )
    lines += [f"error: {e['arch']}: {e['error']}" for e in data.get("errors", [])]
    lines += [f"skipped: {s}" for s in data.get("skipped", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, a few tests")
    smoke = parser.parse_args(argv).smoke
    out = Path(os.environ.get("FASTNN_GPU_RESULTS", "gpu-results"))
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out)
    info = preflight()
    print("preflight: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    results.update(preflight=info)

    keyword = f"cupy and {NOT_ON_THE_GPU}" + (" and mse" if smoke else "")
    tests = run_tests(out, keyword)
    print(f"cupy tests: {tests}", flush=True)
    results.update(tests=tests)

    gemm = (64, 64, 64) if smoke else (8192, 4096, 4096)
    try:
        results.update(gemm_tflops_float32=gemm_tflops(*gemm, reps=2 if smoke else 20))
    except Exception as exc:
        results.data["errors"].append({"arch": "GEMM", "error": f"{type(exc).__name__}: {exc}"})
        results.save()
    run_benchmarks(results, smoke)

    summary = table(results.data)
    (out / "gpu-check.txt").write_text(summary + "\n")
    print("\n" + summary)
    return 0 if tests_passed(tests) and not results.data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
