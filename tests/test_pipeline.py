"""Data that keeps up with a GPU: lean training batches, uint8 images converted on the device, DataLoader workers
that keep exact resume, the held-out split made once per run, and no CLEVR rendered while a GPU trains."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from slotattn import cli, run
from slotattn.config import ConfigError, load_config
from slotattn.data import batch as batch_module
from slotattn.data import build
from slotattn.data.batch import image_to_model, to_model_batch, to_train_batch
from slotattn.data.build import build_eval_batches, build_train_source, check_train_data_rate, open_checked_store, \
    store_command
from slotattn.data.errors import DataError
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.store import write_store
from slotattn.data.stream import GeneratedSource, StoreSource, eval_batches
from slotattn.models import build_model
from slotattn.tasks import ObjectDiscoveryTask, SetPredictionTask
from slotattn.training import engine
from slotattn.training.checkpoint import latest_checkpoint
from slotattn.training.engine import ReplayBatches, resolve_num_workers, to_device

CPU = torch.device("cpu")


def official(image: torch.Tensor) -> torch.Tensor:
    """The official slot_attention data.py preprocessing, channel-first: ((image / 255) - 0.5) * 2 in float32."""
    return ((image.permute(0, 3, 1, 2).to(torch.float32) / 255.0) - 0.5) * 2.0


# --- uint8 -> float on the device -------------------------------------------------------------------------------


def test_image_conversion_equals_the_official_formula_bit_for_bit_for_every_value():
    image = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).expand(-1, -1, -1, 3).contiguous()
    image[..., 1] = image[..., 1].flip(1)  # the channels differ: a wrong permute would show
    converted = image_to_model(image)
    assert converted.dtype == torch.float32 and converted.shape == (1, 3, 16, 16) and converted.is_contiguous()
    assert torch.equal(converted, official(image))
    assert torch.equal(to_model_batch({"image": image.numpy()})["image"], official(image))


def test_one_channel_images_become_rgb_on_conversion():
    gray = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 5, 5, 1), dtype=np.uint8))
    assert torch.equal(image_to_model(gray), official(gray.expand(-1, -1, -1, 3)))


def test_to_device_converts_a_uint8_training_image_and_leaves_a_float_one_alone():
    sample = generate_tetrominoes(3, np.random.default_rng(1))
    train = to_device(to_train_batch(sample, ("image",)), CPU)
    evaluation = to_model_batch(sample)
    assert torch.equal(train["image"], evaluation["image"])
    assert to_device(evaluation, CPU)["image"] is evaluation["image"]  # already float: not converted again


@pytest.mark.gpu
def test_conversion_on_cuda_equals_the_cpu_conversion():
    image = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (4, 35, 35, 3), dtype=np.uint8))
    moved = to_device({"image": image.pin_memory()}, torch.device("cuda"))["image"]
    assert moved.device.type == "cuda" and torch.equal(moved.cpu(), official(image))


# --- lean training batches --------------------------------------------------------------------------------------


def test_object_discovery_training_batches_hold_the_uint8_image_only_and_never_read_the_masks():
    sample = generate_tetrominoes(4, np.random.default_rng(3))
    sample["mask"][:] = 0  # masks that partition nothing: an evaluation batch refuses them
    with pytest.raises(DataError, match="claimed by no entity"):
        to_model_batch(sample)
    batch = to_train_batch(sample, ObjectDiscoveryTask.train_keys)
    assert set(batch) == {"image"} and batch["image"].dtype == torch.uint8
    assert torch.equal(batch["image"], torch.from_numpy(sample["image"]))


def test_set_prediction_training_batches_hold_image_target_and_num_objects():
    rng = np.random.default_rng(4)
    sample = {"image": rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
              "target": rng.random((2, 10, 19), dtype=np.float32), "num_objects": np.array([3, 5]),
              "image_index": np.arange(2)}
    batch = to_train_batch(sample, SetPredictionTask.train_keys)
    assert set(batch) == {"image", "target", "num_objects"}
    assert batch["target"].dtype == torch.float32 and batch["num_objects"].dtype == torch.int64
    np.testing.assert_array_equal(batch["target"].numpy(), sample["target"])


def test_asking_for_a_key_the_sample_cannot_give_names_it():
    sample = generate_tetrominoes(2, np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"asked for \['image', 'target', 'num_objects'\], but the sample has no "
                                         r"'target', 'num_objects' \(its keys: \['color', 'image', 'mask'"):
        to_train_batch(sample, SetPredictionTask.train_keys)
    with pytest.raises(ValueError, match=r"the sample has no 'mask' \(for 'mask_ids'\)"):
        to_train_batch({"image": sample["image"]}, ("image", "mask_ids"))
    with pytest.raises(ValueError, match=r"unknown batch keys \['masks'\]"):
        to_train_batch(sample, ("image", "masks"))


def test_without_keys_a_training_batch_has_everything_the_sample_gives():
    sample = generate_tetrominoes(2, np.random.default_rng(6))
    batch = to_train_batch(sample)
    assert set(batch) == {"image", "mask_ids"} and batch["image"].dtype == torch.uint8
    assert torch.equal(batch["mask_ids"], to_model_batch(sample)["mask_ids"])


def test_training_steps_see_the_float_image_only_and_no_mask_is_checked(tmp_path, monkeypatch):
    checked = []
    original = batch_module.check_mask_partition

    def counted(*args, **kwargs):
        checked.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(batch_module, "check_mask_partition", counted)

    class Recording(ObjectDiscoveryTask):
        seen: list = []

        def loss(self, out, batch):  # the batch of each step, and how many masks were checked until then
            self.seen.append(({k: (v.dtype, tuple(v.shape)) for k, v in batch.items()}, len(checked)))
            return super().loss(out, batch)

    cfg = load_config("debug", ["train.steps=2", "train.eval_every=100", "train.vis_every=100",
                                "train.ckpt_every=100", "train.precision=fp32", "train.device=cpu"])
    engine.train(cfg, build_model(cfg), Recording(), lambda r, w: build_train_source(cfg, r, w),
                 lambda r, w: build_eval_batches(cfg, rank=r, world_size=w), tmp_path)
    assert Recording.seen == [({"image": (torch.float32, (4, 3, 35, 35))}, 0)] * 2
    assert len(checked) == 2  # the last step evaluates: 16 held-out scenes in 2 batches, their masks checked


# --- DataLoader workers ----------------------------------------------------------------------------------------


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "ds"
    return write_store(path, generate_tetrominoes(48, np.random.default_rng(0)), {"dataset": "tetrominoes"})


@pytest.mark.parametrize("kind", ["generated", "store"])
@pytest.mark.parametrize("start", [0, 5])
def test_two_workers_give_the_same_batches_in_the_same_order_as_none(store, kind, start):
    """Batch s depends only on (seed, s, rank): the engine's loader with 2 workers (each making every other step)
    returns what the loader without workers returns, also from a resumed step; 7 batches cross a store epoch."""
    def source():
        return GeneratedSource(generate_tetrominoes, 4, seed=3) if kind == "generated" else \
            StoreSource(store, 8, seed=3)

    plain = _take(engine._step_loader(source(), start, 0, CPU), 7)
    workers = _take(engine._step_loader(source(), start, 2, CPU), 7)
    for step, (x, y) in enumerate(zip(plain, workers, strict=True), start):
        assert set(x) == set(y) == {"image", "mask_ids"}, step
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask_ids"], y["mask_ids"]), step
        assert torch.equal(x["image"], torch.from_numpy(source().batch(step)["image"])), step
    assert not torch.equal(plain[0]["image"], plain[1]["image"])


def test_training_with_two_workers_logs_the_same_losses_as_without(tmp_path):
    def losses(workers, run_dir):
        cfg = load_config("debug", [f"data.num_workers={workers}", "train.steps=4", "train.eval_every=100",
                                    "train.vis_every=100", "train.ckpt_every=100", "train.precision=fp32",
                                    "train.device=cpu"])
        run.train(cfg, run_dir)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["split"] == "train"]

    none, two = losses(0, tmp_path / "none"), losses(2, tmp_path / "two")
    assert len(none) == 4 and none == two


def test_num_workers_auto_is_none_on_the_cpu_and_leaves_a_core_on_cuda(monkeypatch):
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert load_config().data.num_workers == "auto"
    assert resolve_num_workers("auto", CPU) == 0
    for cores, expected in ((16, 8), (64, 8), (4, 3), (2, 1), (1, 0)):
        monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert resolve_num_workers("auto", cuda) == expected, cores
    monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four ranks on the machine share its 16 cores
    assert resolve_num_workers("auto", cuda) == 3
    assert resolve_num_workers(5, cuda) == 5 and resolve_num_workers(2, CPU) == 2


def test_num_workers_takes_auto_or_a_count():
    assert load_config("debug", ["data.num_workers=3"]).data.num_workers == 3
    with pytest.raises(ConfigError, match=r"'data.num_workers' expects int or one of \['auto'\], got str 'many'"):
        load_config("debug", ["data.num_workers=many"])
    with pytest.raises(ConfigError, match=r"'data.num_workers' must be >= 0 or 'auto', got -1"):
        load_config("debug", ["data.num_workers=-1"])


# --- the held-out split, made once per run ----------------------------------------------------------------------


def test_replayed_batches_are_made_once_and_match_fresh_ones():
    made = []

    def make():
        made.append(1)
        return eval_batches(generate_tetrominoes, 20, 6, seed=9)

    replay = ReplayBatches(make)
    first = next(replay())  # a figure reads the first batch only
    passes = [list(replay()), list(replay())]
    fresh = list(eval_batches(generate_tetrominoes, 20, 6, seed=9))
    assert len(made) == 1 and passes[0][0] is first
    for replayed in passes:
        assert len(replayed) == len(fresh) == 4
        for x, y in zip(replayed, fresh):
            assert set(x) == set(y) and all(torch.equal(x[k], y[k]) for k in x)


def test_the_generator_makes_the_held_out_split_once_per_training_run(tmp_path, monkeypatch):
    """Training reads a store, so every call of the generator is for the held-out split: 16 scenes in 2 chunks of
    8, made once, though the run evaluates 4 times and draws 2 figures."""
    data = tmp_path / "data"
    run.generate("tetrominoes", 32, data)
    calls = []

    def counted(num, rng):
        calls.append(num)
        return generate_tetrominoes(num, rng)

    monkeypatch.setitem(build.GENERATORS, "tetrominoes", counted)
    cfg = load_config("debug", [f"data.path={data}", "train.steps=4", "train.eval_every=1", "train.vis_every=2",
                                "train.precision=fp32", "train.device=cpu"])
    run.train(cfg, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "eval"] == [1, 2, 3, 4]
    assert len(list((tmp_path / "run" / "vis").iterdir())) == 2
    assert calls == [8, 8]


# --- no CLEVR rendered while a GPU trains -------------------------------------------------------------------------


@pytest.mark.parametrize("recipe, command", [
    ("clevr6", "slotattn generate clevr6 --num 70000 --out data/clevr6"),
    ("clevr6_64", "slotattn generate clevr6 --num 70000 --resolution 64x64 --out data/clevr6"),
    ("set_prediction_clevr", "slotattn generate clevr --format store --num 70000 --out data/clevr"),
    ("set_prediction_cpu", "slotattn generate clevr --format store --num 70000 --resolution 64x64 --out data/clevr"),
])
def test_rendering_clevr_during_gpu_training_is_refused_with_the_command_that_makes_a_store(recipe, command):
    cfg = load_config(recipe, ["data.path=null"])
    with pytest.raises(ConfigError) as info:
        check_train_data_rate(cfg, torch.device("cuda"))
    message = str(info.value)
    assert message.startswith(f"data.name={cfg.data.name} without data.path on cuda: ")
    assert f"`{command}`" in message and f"--set data.path=data/{cfg.data.name}" in message
    assert "\n" not in message  # the CLI prints errors as one line
    check_train_data_rate(cfg, CPU)  # the CPU may render (slowly)
    check_train_data_rate(load_config(recipe, ["data.path=data/x"]), torch.device("cuda"))  # a store: fine


def test_other_generators_may_feed_a_gpu():
    for recipe in ("tetrominoes", "multi_dsprites"):
        check_train_data_rate(load_config(recipe), torch.device("cuda:0"))


@pytest.mark.parametrize("recipe", ["clevr6_64", "set_prediction_cpu"])
def test_the_named_command_writes_a_store_that_data_path_accepts(tmp_path, recipe):
    cfg = load_config(recipe, ["data.path=null"])
    out = tmp_path / "store"
    argv = shlex.split(store_command(cfg, num=2, out=str(out)))
    assert argv[:2] == ["slotattn", "generate"]
    assert cli.main([*argv[1:], "--no-progress"]) == 0
    store = open_checked_store(str(out), cfg)
    assert len(store) == 2
    keys = {"image", "mask"} if cfg.task == "object_discovery" else {"image", "target", "num_objects"}
    assert keys <= set(store.arrays)


def test_generate_clevr_without_format_store_is_not_a_store(tmp_path):
    """Why the set-prediction command needs --format store: `generate clevr` alone writes CLEVR v1.0 files."""
    cfg = load_config("set_prediction_cpu", ["data.path=null"])
    out = tmp_path / "frames"
    argv = shlex.split(store_command(cfg, num=1, out=str(out)))
    argv.remove("--format")
    argv.remove("store")
    assert cli.main([*argv[1:], "--no-progress"]) == 0
    with pytest.raises(DataError):
        open_checked_store(str(out), cfg)


def test_run_train_on_a_cuda_device_refuses_before_building_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "resolve_device", lambda name: torch.device("cuda"))  # as on a GPU machine
    monkeypatch.setattr(run, "build_model", lambda cfg: pytest.fail("the model was built"))
    with pytest.raises(ConfigError, match="slotattn generate clevr6 --num 70000 --out data/clevr6"):
        run.train(load_config("clevr6"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_sigterm_to_the_process_group_with_workers_still_writes_the_checkpoint(tmp_path):
    """A scheduler signals every process of the job: the DataLoader workers ignore SIGTERM, so the main process
    stops as without workers (checkpoint, exit 130) instead of failing on a worker "killed by signal"."""
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "slotattn", "train", "--config", "debug", "--run-dir", str(run_dir),
            "--no-progress", "--set", "data.num_workers=2", *(f"--set=train.{key}=100000" for key in
                                                             ("steps", "eval_every", "vis_every", "ckpt_every"))]
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # its own process group
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # until it has trained a few steps
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count('"split": "train"') >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # the main process and its 2 workers
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "killed by signal" not in err and err.count("SIGTERM: stopping at the end of this step") == 1, err
    assert latest_checkpoint(run_dir) is not None
