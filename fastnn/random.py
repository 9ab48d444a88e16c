"""Randomness that depends on where it is used, not on what was drawn before.

A stateful generator gives the n-th number only after the n - 1 before it, so a run
split in two (a checkpoint, then ``resume``) draws differently from the same run in one
piece unless the generator's whole state travels with it. fastnn draws each epoch's batch
order from NumPy's counter-based Philox generator (Salmon et al., "Parallel random
numbers: as easy as 1, 2, 3", SC 2011) started at a counter that names the epoch: the
order of epoch ``e`` is a function of the run's key and ``e`` alone, however the run is
split, and on every backend (orders are drawn on the host).

The fourth counter word names the use, so different uses of one key never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: the fourth Philox counter word of each use of a run's key
STREAM_BATCH_ORDER = 1


def derive_key(*entropy: int) -> tuple[int, int]:
    """A 128-bit Philox key, as two 64-bit words, from any non-negative ints, mixed by
    NumPy's :class:`~numpy.random.SeedSequence` so nearby seeds give unrelated keys."""
    words = np.random.SeedSequence(list(entropy)).generate_state(2, np.uint64)
    return int(words[0]), int(words[1])


def fresh_entropy() -> int:
    """A 128-bit seed from the operating system, for models created without one."""
    entropy = np.random.SeedSequence().entropy
    assert isinstance(entropy, int)  # drawn from the OS, always an int
    return entropy


#: up to this many samples, an epoch's order sorts per-sample random keys, drawn for many
#: epochs at once (tiny data sets, many epochs per call); above it, a shuffle per epoch
SORTED_ORDER_SAMPLES = 4096
STREAM_SORTED_ORDER = 2


def _philox(key: Sequence[int], counter: Sequence[int]) -> np.random.Philox:
    """NumPy's Philox4x64 under ``key``, its next block drawn from ``counter``."""
    bits = np.random.Philox(key=0)
    bits.state = _state(key, counter)
    return bits


def _state(key: Sequence[int], counter: Sequence[int]) -> Any:
    return {
        "bit_generator": "Philox",
        "state": {
            "counter": np.array(counter, dtype=np.uint64),
            "key": np.array(key, dtype=np.uint64),
        },
        "buffer": np.zeros(4, dtype=np.uint64),
        "buffer_pos": 4,
        "has_uint32": 0,
        "uinteger": 0,
    }


def epoch_orders(
    key: Sequence[int], first: int, stop: int, n: int, shuffle: bool = True
) -> np.ndarray:
    """Sample orders of epochs ``first .. stop - 1``: shape (stop - first, n), each row a
    uniformly random permutation of ``0 .. n-1`` that depends on ``key``, the epoch and
    ``n`` alone (``0 .. n-1`` itself without ``shuffle``).

    Up to :data:`SORTED_ORDER_SAMPLES` samples, sample ``i`` of epoch ``e`` gets the
    ``(e n + i)``-th 64-bit word of NumPy's Philox4x64 stream ``STREAM_SORTED_ORDER``
    under ``key``, and the order sorts them: all the epochs of a call in one draw (about
    a microsecond per epoch of the lecture's 2 samples). Above, Philox shuffles each
    epoch, started at counter ``(0, 0, e, STREAM_BATCH_ORDER)``.
    """
    if not shuffle:
        return np.tile(np.arange(n), (stop - first, 1))
    if n <= SORTED_ORDER_SAMPLES:
        start = first * n
        bits = _philox(key, (start // 4, 0, 0, STREAM_SORTED_ORDER))
        words = bits.random_raw(start % 4 + (stop - first) * n)[start % 4 :]
        return np.argsort(words.reshape(stop - first, n), axis=1, kind="stable")
    bits = np.random.Philox(key=0)
    generator = np.random.Generator(bits)
    orders = np.empty((stop - first, n), dtype=np.intp)
    for row, epoch in enumerate(range(first, stop)):
        bits.state = _state(key, (0, 0, epoch, STREAM_BATCH_ORDER))
        orders[row] = generator.permutation(n)
    return orders


def mask_key(order_key: Sequence[int]) -> tuple[int, int]:
    """The 64-bit key (two 32-bit words) of a model's dropout masks, from its batch-order
    key: one root, so a checkpoint's key gives both."""
    words = np.random.SeedSequence([*order_key, 1]).generate_state(2, np.uint32)
    return int(words[0]), int(words[1])
