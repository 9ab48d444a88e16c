"""Fused compute kernels, installed as ``fastnn.kernels``.

``dense.py``, ``optim.py`` and ``perceptron.py`` hold Numba CPU kernels used by the
``numba`` backend. They are pure (no imports from fastnn) and compiled lazily, on first
call, with an on-disk cache; importing this package imports nothing.
"""
