"""Parity with the official TF2 code: `python -m benchmarks.parity.NAME` from the repository root."""
