"""The recipe studies (benchmarks/cpu_recipe.py, benchmarks/demo_recipe.py): what their candidates train, and that a
study run records, resumes and summarises as its docs say."""

import dataclasses
import json
import statistics

import pytest
import torch

from benchmarks import cpu_recipe, recipe_study
from slotattn import load_config


@pytest.mark.parametrize("name", sorted(cpu_recipe.CANDIDATES))
def test_cpu_recipe_candidates_train_the_papers_tetrominoes_model(name):
    """Only optimisation settings change: the model is configs/tetrominoes.yaml's, up to its initialisation and
    how the gradient passes the iterations."""
    cfg = cpu_recipe.candidate_config(name, seed=0)
    paper = load_config("tetrominoes").model
    assert dataclasses.replace(cfg.model, init=paper.init, implicit_diff=paper.implicit_diff) == paper


@pytest.mark.parametrize("name", sorted(cpu_recipe.CANDIDATES))
def test_cpu_recipe_candidates_get_the_same_images_evaluations_and_schedule_per_image(name):
    base, cfg = cpu_recipe.candidate_config("base", seed=0), cpu_recipe.candidate_config(name, seed=1)
    batch = cfg.train.batch_size
    assert cfg.train.steps * batch == cpu_recipe.BUDGET_IMAGES >= 150_000
    assert cfg.train.eval_every * batch == cpu_recipe.EVAL_IMAGES and cfg.train.seed == 1
    assert cfg.optim.decay_steps * batch == base.optim.decay_steps * base.train.batch_size
    warmup_images = cfg.optim.warmup_steps * batch
    assert warmup_images == (4_000 if name == "warmup250" else base.optim.warmup_steps * base.train.batch_size)


def test_a_study_run_records_resumes_and_summarises(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_recipe, "BUDGET_IMAGES", 64)
    monkeypatch.setattr(cpu_recipe, "EVAL_IMAGES", 32)
    monkeypatch.setitem(cpu_recipe.CANDIDATES, "base", ["data.num_eval=16"])
    for seed in (0, 1):
        cpu_recipe.run_one("base", seed, tmp_path, precision="fp32")
    record = json.loads((tmp_path / "base_s0.json").read_text())
    assert [c["images"] for c in record["curve"]] == [32, 64] and record["images"] == 64
    assert record["precision"] == ["fp32"] and record["fg_ari"] == record["curve"][-1]["fg_ari"]
    assert -1 <= record["cross_scene_ari"] <= 1

    # Running a finished run again continues it from its checkpoint: nothing is retrained or evaluated twice.
    metrics = (tmp_path / "base_s0" / "metrics.jsonl").read_text()
    cpu_recipe.run_one("base", 0, tmp_path, precision="fp32")
    assert (tmp_path / "base_s0" / "metrics.jsonl").read_text() == metrics
    assert json.loads((tmp_path / "base_s0.json").read_text())["curve"] == record["curve"]

    summary = recipe_study.summarize(tmp_path, per_seed=["cross_scene_ari"])
    row = summary["candidates"]["base"]
    assert row["cross_scene_ari"] == {str(s): json.loads((tmp_path / f"base_s{s}.json").read_text())["cross_scene_ari"]
                                      for s in (0, 1)}
    finals = [json.loads((tmp_path / f"base_s{s}.json").read_text())["fg_ari"] for s in (0, 1)]
    assert row["n"] == 2 and row["mean"] == pytest.approx(statistics.fmean(finals))
    assert row["std"] == pytest.approx(statistics.stdev(finals))  # sample std, ddof 1


def test_cross_scene_ari_tells_slots_that_split_by_position_from_slots_that_follow_objects():
    scenes, size = 16, 35
    rows = torch.arange(size).view(1, size, 1).expand(scenes, size, size)
    renamed = torch.randperm(4 * scenes, generator=torch.Generator().manual_seed(0)).view(scenes, 4)
    bands = torch.gather(renamed, 1, (rows // 9).flatten(1)).view(scenes, size, size)  # same bands, other slot ids
    assert cpu_recipe.cross_scene_ari(bands) == pytest.approx(1.0)
    objects = torch.zeros(scenes, size, size, dtype=torch.long)  # three 6x6 pieces at random places per scene
    corners = torch.randint(0, size - 6, (scenes, 3, 2), generator=torch.Generator().manual_seed(1))
    for scene in range(scenes):
        for piece, (y, x) in enumerate(corners[scene].tolist(), start=1):
            objects[scene, y:y + 6, x:x + 6] = piece
    assert abs(cpu_recipe.cross_scene_ari(objects)) < 0.1


def test_old_study_runs_get_their_band_score_once(tmp_path, monkeypatch):
    (tmp_path / "base_s0.json").write_text(json.dumps({"candidate": "base", "seed": 0}))
    (tmp_path / "clip1_s0.json").write_text(json.dumps({"candidate": "clip1", "seed": 0, "cross_scene_ari": 0.1}))
    scored = []
    monkeypatch.setattr(cpu_recipe, "band_score", lambda run_dir: scored.append(run_dir) or 0.7)
    assert cpu_recipe.record_band_scores(tmp_path) == [tmp_path / "base_s0.json"]
    assert scored == [tmp_path / "base_s0"]
    assert json.loads((tmp_path / "base_s0.json").read_text())["cross_scene_ari"] == 0.7
    assert cpu_recipe.record_band_scores(tmp_path) == []  # a second call measures nothing again


def test_a_study_table_replaces_only_the_text_between_its_markers(tmp_path):
    begin, end = recipe_study.markers("cpu_recipe")
    page = tmp_path / "page.md"
    page.write_text(f"before\n{begin}\nold table\n{end}\nafter\n")
    row = {"overrides": ["a=1"], "images": 1000, "fg_ari": {"0": 0.5, "1": 0.7}, "n": 2, "min": 0.5, "mean": 0.6,
           "std": 0.1414, "curve_mean": 0.4}
    table = recipe_study.markdown_table({"candidates": {"worse": {**row, "mean": 0.2}, "better": row}}, "base")
    text = recipe_study.render_into(page, "cpu_recipe", table)
    assert text.startswith(f"before\n{begin}\n| candidate (overrides of base)") and text.endswith(f"{end}\nafter\n")
    lines = text.splitlines()
    assert lines[4].startswith("| better: `a=1` | 1,000 | 0.500, 0.700 | 0.500 | 0.600 ± 0.141 (2) | 0.400 |")
    assert lines[5].startswith("| worse:")
    with_scores = {"candidates": {"better": {**row, "bands": {"0": 0.61, "1": None}}}}
    assert recipe_study.markdown_table(with_scores, "base", ("bands", "bands")).splitlines()[2].endswith(
        "| 0.400 | 0.61, – |")
