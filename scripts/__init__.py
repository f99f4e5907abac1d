"""Maintenance scripts; `python -m scripts.NAME` from the repository root."""
