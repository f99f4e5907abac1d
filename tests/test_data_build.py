"""Dataset builders: every `data.name` streams batches in the training contract; CLEVR through the CLI."""

import json

import numpy as np
import pytest

from slotattn import cli
from slotattn.config import load_config
from slotattn.data.batch import to_model_batch
from slotattn.data.build import GENERATORS, build_train_source, generator_for
from slotattn.data.errors import DataError
from slotattn.data.store import open_store


@pytest.mark.parametrize("name, resolution, keys", [
    ("tetrominoes", (35, 35), {"image", "mask_ids"}),
    ("multi_dsprites", (64, 64), {"image", "mask_ids"}),
    ("clevr6", (128, 128), {"image", "mask_ids", "num_objects"}),
    ("clevr", (128, 128), {"image", "target", "num_objects"}),
])
def test_every_generator_streams_model_batches(name, resolution, keys):
    batch = to_model_batch(generator_for(name)(2, np.random.default_rng(0)))
    assert set(batch) == keys
    assert tuple(batch["image"].shape) == (2, 3, *resolution)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    if "target" in batch:
        assert tuple(batch["target"].shape) == (2, 10, 19)
        assert (batch["target"][:, :, 18].sum(1) == batch["num_objects"]).all()
    if name == "clevr6":
        assert (batch["num_objects"] <= 6).all() and (batch["mask_ids"].amax(dim=(1, 2)) <= 6).all()


def test_generator_names_cover_the_recipes():
    for recipe in ("tetrominoes", "multi_dsprites", "clevr6", "set_prediction_clevr"):
        cfg = load_config(recipe)
        assert cfg.data.name in GENERATORS
        build_train_source(cfg)  # builds without data files


def test_unknown_dataset_and_variant_are_clear_errors():
    with pytest.raises(DataError, match="no generator for dataset 'objects_room'"):
        generator_for("objects_room")
    with pytest.raises(DataError, match="dataset 'tetrominoes' has no variant 'big'"):
        generator_for("tetrominoes", "big")


def test_generate_clevr_then_convert_for_set_prediction(tmp_path, capsys):
    root = tmp_path / "clevr"
    assert cli.main(["generate", "clevr", "--num", "3", "--width", "48", "--height", "32", "--seed", "2",
                     "--out", str(root), "--no-progress"]) == 0
    scenes = json.loads((root / "scenes" / "CLEVR_train_scenes.json").read_text())["scenes"]
    assert len(scenes) == 3 and {"3d_coords", "color", "pixel_coords"} <= set(scenes[0]["objects"][0])
    assert cli.main(["convert", "clevr", "--root", str(root), "--split", "train", "--frame-size", "32x48",
                     "--out", str(tmp_path / "sp"), "--no-progress"]) == 0
    store = open_store(tmp_path / "sp")
    assert store.name == "clevr" and store.arrays["image"].shape == (3, 128, 128, 3)
    assert (store.arrays["num_objects"][:] == [len(s["objects"]) for s in scenes]).all()
    capsys.readouterr()
    assert cli.main(["convert", "clevr", "--root", str(root), "--split", "train", "--official", "--frame-size",
                     "32x48", "--out", str(tmp_path / "x"), "--no-progress"]) == 2  # skips 512: nothing left
    assert "nothing to convert" in capsys.readouterr().err


def test_generated_scenes_at_a_whole_factor_lower_resolution():
    """Generated scenes at a whole-factor lower resolution (the Multi-dSprites study's 32x32 proxy)."""
    full = generator_for("multi_dsprites")(3, np.random.default_rng(0))
    half = generator_for("multi_dsprites", resolution=(32, 32))(3, np.random.default_rng(0))
    assert half["image"].shape == (3, 32, 32, 3) and half["mask"].shape[2:4] == (32, 32)
    block = full["image"][:, :2, :2].astype(float).mean(axis=(1, 2))
    assert np.array_equal(half["image"][:, 0, 0], np.round(block).astype(np.uint8))
    assert np.array_equal(half["mask"][:, :, 0, 0], full["mask"][:, :, 1, 1])  # each block's pixel (1, 1)
    assert set(np.unique(half["mask"].sum(axis=1))) <= {255}  # still one entity per pixel
    with pytest.raises(DataError, match="whole factor"):
        generator_for("tetrominoes", resolution=(20, 20))
    clevr = generator_for("clevr6", resolution=(64, 64))(1, np.random.default_rng(0))
    assert clevr["image"].shape == (1, 64, 64, 3)
