"""The weights shipped with slotattn (src/slotattn/weights, docs/models.md): they load by name and still segment
freshly generated scenes about as well as their model card says."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from reproduction import model_card
from slotattn import SlotAttentionAutoEncoder, from_pretrained
from slotattn.data.build import build_eval_batches
from slotattn.training.engine import evaluate
from slotattn.models import build_model
from slotattn.pretrained import WEIGHTS_DIR, load_model, pretrained_names
from slotattn.tasks import build_task

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "benchmarks" / "results" / "pretrained"


def card(name: str) -> dict:
    """The measured model card of shipped weights (written by `python -m reproduction.model_card ship`)."""
    return json.loads((CARDS / f"{name}.json").read_text())


def card_fg_ari(name: str) -> float:
    """FG-ARI on the 320 held-out scenes at the trained T, as docs/models.md states it."""
    c = card(name)
    return next(e["fg_ari"] for e in c["evaluation"]
                if e["eval_seed"] is None and e["num_iterations"] == c["num_iterations"])


def test_every_shipped_model_has_a_config_and_a_model_card_entry():
    names = pretrained_names()
    assert "tetrominoes" in names
    text = (ROOT / "docs" / "models.md").read_text()
    for name in names:
        config = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        assert config["task"] == "object_discovery" and config["data"]["name"] == name
        assert f"`{name}`" in text
        assert (CARDS / f"{name}.json").exists(), f"no card for {name}: run python -m reproduction.model_card ship"


@pytest.mark.parametrize("name", pretrained_names())
def test_model_card_describes_the_shipped_file(name):
    """The card's hash and size are the shipped file's, its config the file's config, its step the checkpoint's."""
    c = card(name)
    weights = WEIGHTS_DIR / f"{name}.safetensors"
    assert c["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest(), "weights changed: ship them again"
    assert c["bytes"] == weights.stat().st_size
    config = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    assert c["num_iterations"] == config["model"]["num_iterations"] and c["batch_size"] == config["train"]["batch_size"]
    row = json.loads((ROOT / c["row"]).read_text())
    assert (row["steps"], row["images_seen"], row["minutes"]) == (c["steps"], c["images_seen"], c["minutes"])


def test_docs_and_readme_state_the_measured_cards():
    """docs/models.md's tables are what reproduction.model_card renders; the README quotes each card's FG-ARI."""
    text = (ROOT / "docs" / "models.md").read_text()
    assert model_card.render(text) == text, "run: python -m reproduction.model_card render"
    readme = (ROOT / "README.md").read_text()
    for name in pretrained_names():
        assert f"FG-ARI {card_fg_ari(name):.3f}" in readme, name


@pytest.mark.parametrize("name", pretrained_names())
def test_shipped_model_segments_fresh_scenes_as_its_model_card_says(name):
    model = from_pretrained(name, SlotAttentionAutoEncoder)
    _, cfg = load_model(name)
    fresh = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, eval_seed=424242),
                                train=dataclasses.replace(cfg.train, eval_batch_size=32))
    task = build_task(cfg.task)
    trained = evaluate(model, task, build_eval_batches(fresh, num=96)(), torch.device("cpu"))
    torch.manual_seed(0)
    untrained = evaluate(build_model(cfg), task, build_eval_batches(fresh, num=96)(), torch.device("cpu"))
    assert trained["fg_ari"] > card_fg_ari(name) - 0.08, trained
    assert untrained["fg_ari"] < trained["fg_ari"] - 0.2, (untrained, trained)
