"""Step-indexed training batches: batch `s` is a pure function of (seed, s, rank), so resuming needs only the step.

Two sources: freshly generated samples (`GeneratedSource`, nothing on disk) and a store written by
`slotattn generate`/`convert` (`StoreSource`, reshuffled every epoch). `StepBatches` turns a source into an
endless iterable of training batches (`to_train_batch`: what the loss reads, the image still uint8) that a
`DataLoader(batch_size=None)` can spread over workers: worker w of W makes steps start + w, start + w + W, ..., and
the loader returns them in step order. `eval_batches` gives the held-out split as evaluation batches
(`to_model_batch`: everything, float images).
"""

from collections.abc import Callable, Iterator, Sequence
from itertools import count
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from slotattn.data.batch import to_model_batch, to_train_batch
from slotattn.data.errors import DataError
from slotattn.data.store import Store

GenerateFn = Callable[[int, np.random.Generator], dict[str, np.ndarray]]


@runtime_checkable
class BatchSource(Protocol):
    """Training batches indexed by step (what makes resume exact): `GeneratedSource`, `StoreSource`."""

    def batch(self, step: int) -> dict[str, np.ndarray]: ...

    def where(self, step: int) -> str: ...


class GeneratedSource:
    """Batches generated on the fly: step s on rank r uses `np.random.default_rng([seed, s, r])`.

    Args:
        generate: `generate(num, rng) -> dict of arrays` in the official layout.
        batch_size: examples per rank and step.
        seed: the run's data seed.
        rank: this process's rank (each rank draws different examples).
    """

    def __init__(self, generate: GenerateFn, batch_size: int, seed: int, rank: int = 0):
        self.generate, self.batch_size, self.seed, self.rank = generate, batch_size, seed, rank

    def batch(self, step: int) -> dict[str, np.ndarray]:
        return self.generate(self.batch_size, np.random.default_rng([self.seed, step, self.rank]))

    def where(self, step: int) -> str:
        """Names batch ``step`` in error messages."""
        name = getattr(self.generate, "__name__", None) or getattr(getattr(self.generate, "func", None), "__name__", "")
        return f"generated batch {name} (seed {self.seed}, step {step}, rank {self.rank})"


class StoreSource:
    """Batches read from a store, reshuffled each epoch; rank r reads its slice of the global batch.

    The global batch of step s holds examples perm_e[j * G : (j + 1) * G] with e, j = divmod(s, n // G) and
    perm_e = `default_rng([seed, e]).permutation(n)`; the last partial global batch of an epoch is dropped, so
    1 process with batch G reads exactly what R processes with batch G / R read together.

    Args:
        store: an opened store.
        global_batch_size: G, examples per step over all ranks.
        seed: the run's data seed.
        rank: this process's rank.
        world_size: number of ranks (must divide G).
    """

    def __init__(self, store: Store, global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if global_batch_size % world_size:
            raise ValueError(f"batch size {global_batch_size} is not divisible by the {world_size} processes")
        if len(store) < global_batch_size:
            raise DataError(f"{store.path}: {len(store)} examples, fewer than one batch of {global_batch_size}")
        self.store, self.global_batch_size, self.seed = store, global_batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.local = global_batch_size // world_size
        self.steps_per_epoch = len(store) // global_batch_size
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        return {key: np.asarray(array[self._indices(step)]) for key, array in self.store.arrays.items()}

    def where(self, step: int) -> str:
        """Names batch ``step`` in error messages: the store and the examples of each batch row."""
        return f"{self.store.path}: step {step}, batch rows = store examples {self._indices(step).tolist()}"

    def _indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.store))
        start = position * self.global_batch_size
        # Sorted within the global batch (sequential memmap reads), then this rank's slice: example i of the
        # global batch is the same example however many ranks there are.
        indices = np.sort(self._perm[start : start + self.global_batch_size])
        return indices[self.rank * self.local : (self.rank + 1) * self.local]


class StepBatches(IterableDataset):
    """Endless training batches for steps start_step, start_step + 1, ... (`to_train_batch` applied in the worker).

    Under a `DataLoader(num_workers=W)` worker w makes steps start_step + w, start_step + w + W, ... and the loader
    takes one batch from each worker in turn, so the batches come in step order and batch s is the source's batch
    s whatever W is (exact resume holds with workers; tests/test_pipeline.py).

    Args:
        source: the step-indexed batches.
        start_step: the first step (a resumed run's).
        keys: the batch keys the task's loss reads (`Task.train_keys`; None: every key the source gives). The
            image stays uint8 [B, H, W, C]: the engine converts it on the training device (`image_to_model`).
    """

    def __init__(self, source: BatchSource, start_step: int = 0, keys: Sequence[str] | None = None):
        super().__init__()
        self.source, self.start_step, self.keys = source, start_step, None if keys is None else tuple(keys)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in count(self.start_step + worker, num_workers):
            try:
                batch = to_train_batch(self.source.batch(step), self.keys)
            except DataError as err:  # say which store examples (or generated batch) the bad row came from
                raise DataError(f"{self.source.where(step)}: {err}") from err
            yield batch


def eval_batches(
    source: Store | GenerateFn, num: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
) -> Iterator[dict[str, torch.Tensor]]:
    """The held-out split in order: the first `num` examples of a store, or `num` generated from `seed`.

    Chunk i (examples i * batch_size ...) is generated with `default_rng([seed, i])` whatever the number of
    ranks; rank r takes chunks i with i % world_size == r, so the ranks together cover the split once. Each
    batch also carries `index` [B]: the examples' positions in the split.
    """
    total = min(num, len(source)) if isinstance(source, Store) else num
    for chunk, start in enumerate(range(0, total, batch_size)):
        if chunk % world_size != rank:
            continue
        size = min(batch_size, total - start)
        if isinstance(source, Store):
            arrays = {key: np.asarray(array[start : start + size]) for key, array in source.arrays.items()}
        else:
            arrays = source(size, np.random.default_rng([seed, chunk]))
        try:
            batch = to_model_batch(arrays)
        except DataError as err:
            what = f"{source.path}: examples {start}..{start + size - 1}" if isinstance(source, Store) else (
                f"generated evaluation chunk {chunk} (seed {seed})")
            raise DataError(f"{what}: {err}") from err
        batch["index"] = torch.arange(start, start + size)  # position in the split: seeds evaluation's slot noise
        yield batch
