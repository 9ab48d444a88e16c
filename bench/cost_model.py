"""The cost model of data-parallel training in docs/distributed.md, as numbers.

    python bench/cost_model.py

Ring allreduce of ``bytes`` over ``N`` nodes: ``2 (N-1)/N bytes / bandwidth + 2 (N-1)
latency``. A step's compute on one node: ``(6 W - 2 W_1) b / rate`` for ``b`` rows per
node (W weights, W_1 the first layer's). Without overlap, scaling efficiency is
``compute / (compute + allreduce)``; the per-node batch below which the allreduce takes
longer than the compute is ``b* = allreduce rate / (6 W - 2 W_1)``.
"""

from __future__ import annotations

NETWORKS = {  # name: layer sizes
    "L": (784, 2048, 2048, 10),
    "XL": (784, 4096, 4096, 4096, 10),
}
LINKS = {  # name: (bytes/s, latency s, compute rate of one node in FLOP/s, per-node batch)
    "25 Gb/s, CPU nodes": (25e9 / 8, 10e-6, 2e12, 1024),
    "100 Gb/s, CPU nodes": (100e9 / 8, 5e-6, 2e12, 1024),
    "NVLink, GPUs": (450e9, 5e-6, 50e12, 8192),
}
NODES = (2, 4, 8, 16, 32, 64)


def weights(sizes: tuple[int, ...]) -> tuple[int, int]:
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    return sum(a * b + b for a, b in pairs), sizes[0] * sizes[1]


def allreduce_seconds(nbytes: float, nodes: int, bandwidth: float, latency: float) -> float:
    return 2 * (nodes - 1) / nodes * nbytes / bandwidth + 2 * (nodes - 1) * latency


def main() -> None:
    for name, sizes in NETWORKS.items():
        W, W1 = weights(sizes)
        nbytes = 4 * W  # float32 gradients
        flops_per_row = 6 * W - 2 * W1
        print(f"{name} {'-'.join(map(str, sizes))}: {W:,} parameters, {nbytes / 2**20:.1f} MiB")
        for link, (bandwidth, latency, rate, batch) in LINKS.items():
            compute = flops_per_row * batch / rate
            row = []
            for n in NODES:
                t = allreduce_seconds(nbytes, n, bandwidth, latency)
                row.append(f"{compute / (compute + t):.2f}")
            t64 = allreduce_seconds(nbytes, 64, bandwidth, latency)
            b_star = t64 * rate / flops_per_row
            print(
                f"  {link:20s} batch {batch}/node, compute {1e3 * compute:6.1f} ms: "
                f"efficiency at {'/'.join(map(str, NODES))} nodes = {' '.join(row)}; "
                f"allreduce = compute at {b_star:,.0f} rows/node (global {64 * b_star:,.0f} on 64)"
            )


if __name__ == "__main__":
    main()
