"""``fastnn bench``: run a subset, print a table of ratios, save JSON, draw a chart."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import machine
from .ceilings import best_gemm_gflops, memory_bandwidth_gbs
from .peers import PeerUnavailable
from .suite import Result, builders, checked, run_side_by_side, step_gemm_gflops
from .workloads import ARCHITECTURES

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def run(
    archs: list[str],
    kinds: list[str],
    dtypes: list[str],
    backends: list[str],
    peer_names: tuple[str, ...],
    min_time: float = 0.5,
    log: Any = sys.stderr,
) -> dict:
    """Measure everything asked for in one process; returns the JSON-ready report."""
    report: dict[str, Any] = {
        "machine": machine.describe(),
        "ceilings": {},
        "results": [],
        "skipped": [],
    }
    ceilings = report["ceilings"]
    if report["machine"]["warning"]:
        print(f"warning: {report['machine']['warning']}", file=log)
    print("measuring ceilings ...", file=log)
    # The steps' own GEMMs first, before PyTorch's or JAX's GEMM starts thread pools that
    # may linger on the cores.
    # The lecture's 2-5-1 products are too small for a GEMM rate to mean anything.
    ceilings["step_gemm_gflops"] = {
        a: {d: step_gemm_gflops(ARCHITECTURES[a], d) for d in dtypes}
        for a in archs
        if ARCHITECTURES[a].weights >= 10_000
    }
    ceilings["bandwidth_gbs"] = memory_bandwidth_gbs()
    ceilings["gemm_gflops_by_library"] = {d: best_gemm_gflops(d) for d in dtypes}
    ceilings["peak_gemm_gflops"] = {
        d: max(rates.values()) for d, rates in ceilings["gemm_gflops_by_library"].items()
    }
    for a in archs:
        arch = ARCHITECTURES[a]
        for kind in kinds:
            for dtype in dtypes:
                group = []
                for name, build in builders(arch, kind, dtype, backends, peer_names):
                    try:
                        group.append(checked(build()))
                    except PeerUnavailable as exc:
                        report["skipped"].append(f"{name} {a} {kind}: {exc}")
                print(
                    f"  {a:8s} {kind:13s} {dtype:8s} " + ", ".join(w.implementation for w in group),
                    file=log,
                )
                report["results"] += [asdict(r) for r in run_side_by_side(group, min_time)]
    for reason in sorted(set(s.split(": ", 1)[1] for s in report["skipped"])):
        print(f"skipped: {reason}", file=log)
    return report


def _ratio(results: list[dict], row: dict, implementation: str) -> float | None:
    for other in results:
        if (other["implementation"], other["arch"], other["kind"], other["dtype"]) == (
            implementation,
            row["arch"],
            row["kind"],
            row["dtype"],
        ):
            return row["samples_per_s"] / other["samples_per_s"]
    return None


def _seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def table_rows(report: dict) -> list[list[str]]:
    """Rows of the results table, header first."""
    peak = report["ceilings"]["peak_gemm_gflops"]
    rows = [
        [
            "arch",
            "implementation",
            "kind",
            "dtype",
            "time/step",
            "samples/s",
            "GFLOP/s",
            "% peak",
            "x fastnn[numpy]",
            "x pytorch",
            "x jax-jit",
        ]
    ]
    for r in report["results"]:
        vs_numpy = _ratio(report["results"], r, "fastnn[numpy]")
        vs_torch = _ratio(report["results"], r, "pytorch")
        vs_jax = _ratio(report["results"], r, "jax-jit")
        rows.append(
            [
                f"{r['arch']} ({'-'.join(map(str, ARCHITECTURES[r['arch']].sizes))})",
                r["implementation"],
                r["kind"],
                r["dtype"],
                _seconds(r["seconds_per_step"]),
                f"{r['samples_per_s']:,.0f}",
                f"{r['gflops']:.2f}",
                f"{100 * r['gflops'] / peak[r['dtype']]:.1f}",
                "" if vs_numpy is None else f"{vs_numpy:.2f}",
                "" if vs_torch is None else f"{vs_torch:.2f}",
                "" if vs_jax is None else f"{vs_jax:.2f}",
            ]
        )
    return rows


def format_table(rows: list[list[str]], markdown: bool = False) -> str:
    """Rows as aligned text, or as a Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i > 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def format_ceilings(report: dict) -> str:
    """The machine and its measured limits, in a few lines."""
    m, c = report["machine"], report["ceilings"]
    blas = (
        ", ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')} kernels, "
            f"{p.get('num_threads')} threads, {p.get('threading_layer')})"
            for p in m["blas"]
            if "internal_api" in p
        )
        or "unknown (install threadpoolctl)"
    )
    overrides = ", ".join(
        f"{k}={m['environment'][k]}"
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        if k in m.get("environment", {})
    )
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}; BLAS: {blas}; OpenBLAS "
        f"overrides: {overrides or 'none (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset)'}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "GEMM 2048^3 (GFLOP/s): "
        + "; ".join(
            f"{d} " + ", ".join(f"{lib} {g:.1f}" for lib, g in by_library.items())
            for d, by_library in c.get("gemm_gflops_by_library", {}).items()
        ),
        "% peak divides by the best of these: "
        + ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in c["peak_gemm_gflops"].items())
        + f"; memory bandwidth (copy, read + write): {c['bandwidth_gbs']:.1f} GB/s",
        "GEMM-only ceiling of each training step at its shapes: "
        + "; ".join(
            f"{a}: " + ", ".join(f"{d} {g:.1f}" for d, g in per.items()) + " GFLOP/s"
            for a, per in c["step_gemm_gflops"].items()
        ),
    ]
    if m.get("warning"):
        lines.insert(1, f"warning: {m['warning']}")
    return "\n".join(lines)


def compare(report: dict, old: dict) -> str:
    """A table of new against old samples/s for the rows both reports have."""

    def key(r: dict) -> tuple:
        return r["implementation"], r["arch"], r["kind"], r["dtype"]

    before = {key(r): r for r in old["results"]}
    rows = [
        ["arch", "implementation", "kind", "dtype", "old samples/s", "new samples/s", "new/old"]
    ]
    for r in report["results"]:
        if key(r) in before:
            o = before[key(r)]
            rows.append(
                [
                    r["arch"],
                    r["implementation"],
                    r["kind"],
                    r["dtype"],
                    f"{o['samples_per_s']:,.0f}",
                    f"{r['samples_per_s']:,.0f}",
                    f"{r['samples_per_s'] / o['samples_per_s']:.2f}",
                ]
            )
    if len(rows) == 1:
        return "no rows in common with the old report"
    return format_table(rows)


def chart(report: dict, path: Path) -> None:
    """Bars of samples/s per implementation on a linear axis from 0, labelled with their
    ratio to fastnn[numpy]: one panel per architecture, kind and dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = {name: i for i, name in enumerate(ARCHITECTURES)}
    panels = sorted(
        {(r["arch"], r["kind"], r["dtype"]) for r in report["results"]},
        key=lambda p: (order.get(p[0], 99), p[1], p[2]),
    )
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        got = [r for r in report["results"] if (r["arch"], r["kind"], r["dtype"]) == panel]
        values = [r["samples_per_s"] for r in got]
        bars = ax.barh([r["implementation"] for r in got], values, color="tab:blue")
        ax.bar_label(
            bars, labels=[_ratio_label(report["results"], r) for r in got], fontsize=7, padding=2
        )
        ax.set_xlim(0, max(values) * 1.3)
        ax.set_title(" ".join(panel), fontsize=9)
        ax.set_xlabel("samples/s", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ratio_label(results: list[dict], row: dict) -> str:
    ratio = _ratio(results, row, "fastnn[numpy]")
    return f"{row['samples_per_s']:,.0f}" + ("" if ratio is None else f" ({ratio:.2f}x)")


def update_readme(readme: Path, report: dict, command: str) -> None:
    """Replace the text between the benchmark markers of ``readme`` with this report."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} section to replace")
    body = "\n\n".join(
        [
            f"Measured with `{command}`.",
            "```\n" + format_ceilings(report) + "\n```",
            format_table(table_rows(report), markdown=True),
        ]
    )
    pattern = re.escape(README_START) + ".*?" + re.escape(README_END)
    text = re.sub(pattern, lambda _: f"{README_START}\n{body}\n{README_END}", text, flags=re.S)
    readme.write_text(text, encoding="utf-8")


def save(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def load(path: Path) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "results" not in data:
        raise ValueError(f"{path} is not a fastnn bench report")
    return data


__all__ = [
    "Result",
    "chart",
    "compare",
    "format_ceilings",
    "format_table",
    "load",
    "run",
    "save",
    "table_rows",
    "update_readme",
]
