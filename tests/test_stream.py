"""Step-indexed training batches: determinism, worker order, and rank shards of the same global batch."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slotattn.data.errors import DataError
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.store import open_store, write_store
from slotattn.data.stream import GeneratedSource, StepBatches, StoreSource, eval_batches


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "ds"
    write_store(path, generate_tetrominoes(40, np.random.default_rng(0)), {"dataset": "tetrominoes"})
    return open_store(path)


def _take(iterable, n):
    it = iter(iterable)
    return [next(it) for _ in range(n)]


def test_generated_batches_depend_only_on_seed_step_and_rank():
    source = GeneratedSource(generate_tetrominoes, 4, seed=3)
    a, b = source.batch(7), GeneratedSource(generate_tetrominoes, 4, seed=3).batch(7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(source.batch(8)["image"], a["image"])
    assert not np.array_equal(GeneratedSource(generate_tetrominoes, 4, seed=3, rank=1).batch(7)["image"], a["image"])


def test_resuming_at_a_step_gives_the_same_batches(store):
    full = _take(StepBatches(StoreSource(store, 8, seed=1)), 9)
    resumed = _take(StepBatches(StoreSource(store, 8, seed=1), start_step=4), 5)
    for x, y in zip(full[4:], resumed):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)


def test_two_workers_return_batches_in_step_order(store):
    dataset = StepBatches(StoreSource(store, 8, seed=1))
    plain = _take(dataset, 6)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, generator=torch.Generator())
    for x, y in zip(plain, _take(loader, 6)):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)
        torch.testing.assert_close(x["mask_ids"], y["mask_ids"], rtol=0, atol=0)


def test_ranks_read_disjoint_slices_of_the_single_process_batch(store):
    single = StoreSource(store, 8, seed=2)
    ranks = [StoreSource(store, 8, seed=2, rank=r, world_size=2) for r in range(2)]
    for step in range(12):  # crosses epochs (5 steps per epoch of 40)
        whole = single.batch(step)["image"]
        halves = [src.batch(step)["image"] for src in ranks]
        np.testing.assert_array_equal(np.concatenate(halves), whole)  # same order: example i pairs with noise i
        key = lambda a: sorted(x.tobytes() for x in a)  # noqa: E731
        assert key(np.concatenate(halves)) == key(whole)
        assert not set(key(halves[0])) & set(key(halves[1]))


def test_every_example_is_seen_once_per_epoch_and_epochs_reshuffle(store):
    source = StoreSource(store, 8, seed=5)
    epoch0 = np.concatenate([source.batch(s)["image"] for s in range(5)])
    epoch1 = np.concatenate([source.batch(s)["image"] for s in range(5, 10)])
    all_images = np.asarray(store.arrays["image"])
    assert sorted(x.tobytes() for x in epoch0) == sorted(x.tobytes() for x in all_images)
    assert [x.tobytes() for x in epoch0] != [x.tobytes() for x in epoch1]


def test_bad_store_batch_sizes_raise(store):
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        StoreSource(store, 8, seed=0, world_size=3)
    with pytest.raises(DataError, match="fewer than one batch of 64"):
        StoreSource(store, 64, seed=0)


def test_eval_split_is_the_same_whatever_the_number_of_ranks(store):
    one = list(eval_batches(generate_tetrominoes, 20, 6, seed=9))
    two = [list(eval_batches(generate_tetrominoes, 20, 6, seed=9, rank=r, world_size=2)) for r in range(2)]
    assert [b["image"].shape[0] for b in one] == [6, 6, 6, 2]
    merged = [two[i % 2][i // 2] for i in range(4)]
    for x, y in zip(one, merged):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)
    stored = list(eval_batches(store, 10, 4, seed=0))
    assert [b["image"].shape[0] for b in stored] == [4, 4, 2]
    expected = torch.as_tensor(np.array(store.arrays["image"][:4])).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(stored[0]["image"], expected)


def test_bad_mask_in_a_store_names_the_store_step_and_examples(tmp_path):
    data = generate_tetrominoes(16, np.random.default_rng(5))
    data["mask"][11, :, 3, 4] = 0  # store example 11: pixel (3, 4) in no mask
    store = write_store(tmp_path / "bad", data, {"dataset": "tetrominoes"})
    source = StoreSource(store, 16, seed=0)  # one batch = the whole store, rows in example order
    with pytest.raises(DataError) as info:
        next(iter(StepBatches(source)))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'bad'}: step 0, batch rows = store examples {list(range(16))}: ")
    assert "example 11, pixel (row 3, col 4) is claimed by no entity" in message
    with pytest.raises(DataError, match=r"bad: examples 8\.\.15: to_model_batch: 'mask': example 3, pixel \(row 3, col 4\)"):
        list(eval_batches(store, 16, 8, seed=0))
