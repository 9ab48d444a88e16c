"""Fused compute kernels, installed as ``fastnn.kernels``.

Numba CPU kernels for the ``numba`` backend: ``dense.py`` (bias plus activation,
activation backward with the bias gradient, fused losses), ``optim.py`` (optimizer updates,
finiteness check), ``small.py`` (whole epochs of SGD for small networks) and
``perceptron.py``. CUDA C++ for the ``cupy`` backend: ``dense.cu`` and ``optim.cu``,
read as text and compiled by CuPy on first use. All pure (no imports from fastnn),
compiled lazily; importing this package imports nothing.
"""
