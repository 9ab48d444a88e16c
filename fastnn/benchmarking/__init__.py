"""Measuring fastnn against its peers and against the machine's own limits.

Shared by ``fastnn bench`` (a quick table, JSON and chart) and the pytest-benchmark
suite in ``bench/``. Nothing here is imported by ``import fastnn``.
"""
