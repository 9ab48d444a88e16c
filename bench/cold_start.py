"""Cold start of the numba backend: time to the first training step in a new process.

    python bench/cold_start.py

Runs two fresh processes sharing an empty Numba cache directory: the first compiles every
kernel a training step needs (the first-ever compile), the second finds them cached.
Prints, for each, the import time and the time of the first `fit` beyond import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import fastnn
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X, y = rng.random((256, 784)), rng.integers(0, 10, 256)
model = fastnn.MLP([784, 128, 10], activation="relu", loss="cross_entropy", backend="numba",
                   seed=0)
model.fit(X, y, epochs=1, batch_size=128, progress=False)
t2 = time.perf_counter()
small = fastnn.MLP([2, 5, 1], activation="sigmoid", output="sigmoid", loss="mse",
                   backend="numba", seed=0)
small.fit(X[:2, :2], y[:2] / 10, epochs=1, batch_size=2, progress=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_fit": t2 - t1, "first_small_fit": t3 - t2}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold (first-ever compile)", "warm cache"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True
            ).stdout
            t = json.loads(out)
            print(
                f"{label:26s} import {t['import']:.2f} s; first fit (S, 2 steps) "
                f"{t['first_fit']:.2f} s; first fit of the 2-5-1 net {t['first_small_fit']:.2f} s"
            )


if __name__ == "__main__":
    main()
