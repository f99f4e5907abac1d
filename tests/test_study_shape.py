"""The shared study shape (studies/study.py) and the Multi-dSprites recipe study's definition: what its candidates
train, that a run records, resumes and summarises as documented, and the background measure on hand-made masks."""

import dataclasses
import json
import statistics

import pytest
import torch

from slotattn import load_config
from studies import study
from studies.multi_dsprites.definition import BUDGET_IMAGES, EVAL_IMAGES, STUDY

# Candidates that change the model on purpose; every other one trains the paper's Multi-dSprites model.
MODEL_CHANGES = {"implicit_t5": {"implicit_diff": True, "num_iterations": 5},
                 "queries": {"slot_init": "learned_queries", "query_noise_steps": STUDY.config("queries", 0)
                             .model.query_noise_steps}}


@pytest.mark.parametrize("name", list(STUDY.candidates))
def test_multi_dsprites_candidates_train_the_papers_model_at_full_scale(name):
    cfg = STUDY.config(name, seed=0, scale="full64")
    paper = load_config("multi_dsprites").model
    assert cfg.model == dataclasses.replace(paper, **MODEL_CHANGES.get(name, {}))
    assert cfg.data.name == "multi_dsprites" and cfg.data.variant is None and cfg.data.num_eval == 320


@pytest.mark.parametrize("name", list(STUDY.candidates))
def test_multi_dsprites_candidates_get_the_same_images_and_evaluations(name):
    cfg = STUDY.config(name, seed=1, scale="proxy32")
    batch = cfg.train.batch_size
    assert cfg.train.steps * batch == BUDGET_IMAGES >= 150_000 and cfg.train.eval_every * batch == EVAL_IMAGES
    assert cfg.train.seed == 1 and cfg.model.resolution == (32, 32) == cfg.model.decoder_broadcast_size
    assert cfg.optim.grad_clip_norm == {"clip0.05": 0.05, "clip0.1": 0.1}.get(name, 1.0)  # the base clips at 1.0
    base = STUDY.config("base", seed=1, scale="proxy32")
    if name not in ("cosine", "bs32"):  # the schedule per image is the base's
        assert (cfg.optim.warmup_steps, cfg.optim.decay_steps, cfg.optim.schedule) == (
            base.optim.warmup_steps, base.optim.decay_steps, base.optim.schedule)


def test_the_cosine_candidate_decays_to_zero_at_its_last_step():
    from slotattn.training.schedule import lr_factor

    cfg = STUDY.config("cosine", seed=0)
    o = cfg.optim
    assert lr_factor(cfg.train.steps, o.warmup_steps, o.decay_rate, o.decay_steps, o.schedule) == pytest.approx(0)
    assert lr_factor(cfg.train.steps - 100, o.warmup_steps, o.decay_rate, o.decay_steps, o.schedule) > 0


def test_mean_std_is_the_sample_std_and_none_for_one_value():
    assert study.mean_std([0.5, 0.7, 0.9]) == {"n": 3, "mean": pytest.approx(0.7), "std": pytest.approx(0.2),
                                               "min": 0.5}
    assert study.mean_std([0.4])["std"] is None
    assert study.format_mean_std(study.mean_std([0.4])) == "0.400 (n = 1)"
    assert study.format_mean_std(study.mean_std([0.5, 0.7, 0.9])) == "0.700 ± 0.200 (n = 3)"


def test_background_in_one_slot_on_hand_made_masks():
    true = torch.zeros(3, 4, 4, dtype=torch.long)
    true[:, :2, :2] = 1  # one object, 12 background pixels
    one_slot = torch.zeros(3, 4, 4, dtype=torch.long)
    one_slot[0][true[0] == 1] = 1  # scene 0: background all in slot 0
    one_slot[1] = torch.arange(4).repeat(4, 1)  # scene 1: background over 4 slots by column (2, 2, 4, 4 of 12)
    one_slot[2] = 2  # scene 2: everything in one slot
    share = study.background_in_one_slot(true, one_slot, num_slots=4)
    assert share.tolist() == pytest.approx([1.0, 4 / 12, 1.0])
    no_background = study.background_in_one_slot(torch.ones(1, 4, 4, dtype=torch.long), one_slot[:1], 4)
    assert torch.isnan(no_background).all()


def test_a_study_run_records_resumes_and_summarises(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "STUDIES_DIR", tmp_path / "studies")
    tiny = study.RecipeStudy(
        name="tiny", title="tiny", base="debug", candidates={"base": (), "lr": ("optim.learning_rate=1e-3",)},
        budget_images=16, eval_images=8, base_overrides=("data.num_eval=8", "train.eval_batch_size=8"),
        final_iterations=(3, 5), measures={"steps_logged": lambda run_dir: float(len(
            (run_dir / "metrics.jsonl").read_text().splitlines()))})
    for name in tiny.candidates:
        for seed in (0, 1):
            study.run_one(tiny, name, seed, tmp_path / "runs", precision="fp32")
    path = tmp_path / "studies" / "tiny" / "results" / "full" / "runs" / "base_s0.json"
    record = json.loads(path.read_text())
    assert [c["images"] for c in record["curve"]] == [8, 16] and record["images"] == 16
    assert record["precision"] == ["fp32"] and set(record["final"]) == {"T3", "T5"}
    # The final score at the trained T is the in-run evaluation of the same checkpoint (same noise).
    assert record["fg_ari"] == pytest.approx(record["curve"][-1]["fg_ari"], abs=1e-12)
    assert record["final"]["T3"]["ari"] == pytest.approx(record["curve"][-1]["ari"], abs=1e-12)
    assert 0 <= record["final"]["T5"]["background_in_one_slot"] <= 1
    assert record["measures"]["steps_logged"] == len((tmp_path / "runs" / "base_s0" / "metrics.jsonl").read_text()
                                                     .splitlines())

    # Running a finished run again trains and evaluates nothing more.
    metrics = (tmp_path / "runs" / "base_s0" / "metrics.jsonl").read_text()
    study.run_one(tiny, "base", 0, tmp_path / "runs", precision="fp32")
    assert (tmp_path / "runs" / "base_s0" / "metrics.jsonl").read_text() == metrics

    summary = study.write_summary(tiny)
    row = summary["candidates"]["base"]
    finals = [json.loads(path.with_name(f"base_s{s}.json").read_text())["fg_ari"] for s in (0, 1)]
    assert row["n"] == 2 and row["mean"] == pytest.approx(statistics.fmean(finals))
    assert row["std"] == pytest.approx(statistics.stdev(finals))
    assert row["final"]["T5"]["fg_ari"]["n"] == 2
    folder = tmp_path / "studies" / "tiny" / "results" / "full"
    assert (folder / "curves.png").stat().st_size > 0 and json.loads((folder / "summary.json").read_text()) == summary
    table = (folder / "table.md").read_text().splitlines()
    assert table[0].startswith("| candidate (overrides of debug)") and "FG-ARI T5" in table[0]
    assert len(table) == 2 + len(tiny.candidates) and table[0].endswith("steps_logged per seed |")
    assert row["measures"]["steps_logged"] == {s: json.loads(path.with_name(f"base_s{s}.json").read_text())[
        "measures"]["steps_logged"] for s in ("0", "1")}


def test_an_unknown_candidate_or_scale_is_refused():
    with pytest.raises(ValueError, match="no candidate 'nope'"):
        STUDY.config("nope", 0)
    with pytest.raises(ValueError, match="no scale 'big'"):
        STUDY.config("base", 0, scale="big")
