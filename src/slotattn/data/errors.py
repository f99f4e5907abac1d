"""The one exception type of slotattn's data layer: input data (files, arrays, records) is not what a reader expects."""

__all__ = ["DataError"]


class DataError(ValueError):
    """Data on disk or in memory does not match its specification.

    The message names the file, record or key and says what was expected and what was found, e.g.
    ``DataError("data/tetro/mask.npy: expected shape [1000, 4, 35, 35, 1] uint8 (from meta.json), found
    [999, 4, 35, 35, 1] uint8")``.
    """
