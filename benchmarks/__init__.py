"""Reproducible performance measurements. Run with ``make bench`` or ``python -m benchmarks``."""
