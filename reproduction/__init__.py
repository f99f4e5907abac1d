"""This repository's reproduction bookkeeping (README.md here): each module runs with `python -m reproduction.NAME`."""
