"""Benchmarks and parity checks; modules that import each other run with `python -m benchmarks.NAME`."""
