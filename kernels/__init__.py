"""Fused compute kernels, installed as ``fastnn.kernels``.

Numba CPU kernels (``*.py``) and CUDA C sources (``*.cu``) live here. They are pure:
no imports from fastnn, nothing compiled at import time. Backends load them lazily.
Nothing lives here yet: the NumPy reference backend needs no kernels.
"""
