"""Helpers of the benchmark CLI ``python -m fastrnn.bench``: cases and FLOP counts, timers, machine, report."""
