"""The recipe studies that moved from benchmarks/ into studies/ (tetrominoes_cpu, demo, precision): what their
candidates train, that every committed run is what its definition trains, the CPU study's band score, the demo
study's cost command and the page markers of a study's table."""

import dataclasses
import json
import statistics

import pytest
import torch

from slotattn import load_config
from slotattn.studies import SCALES
from studies import study
from studies.demo import definition as demo
from studies.precision import definition as precision
from studies.tetrominoes_cpu import definition as cpu

MOVED = {"tetrominoes_cpu": cpu.STUDY, "demo": demo.STUDY, "precision": precision.STUDY}


@pytest.mark.parametrize("name", list(cpu.STUDY.candidates))
def test_cpu_recipe_candidates_train_the_papers_tetrominoes_model(name):
    """Only optimisation settings change: the model is configs/tetrominoes.yaml's, up to its initialisation and
    how the gradient passes the iterations."""
    cfg = cpu.STUDY.config(name, seed=0)
    paper = load_config("tetrominoes").model
    assert dataclasses.replace(cfg.model, init=paper.init, implicit_diff=paper.implicit_diff) == paper


@pytest.mark.parametrize("name", list(cpu.STUDY.candidates))
def test_cpu_recipe_candidates_get_the_same_images_evaluations_and_schedule_per_image(name):
    base, cfg = cpu.STUDY.config("base", seed=0), cpu.STUDY.config(name, seed=1, precision="fp32")
    batch = cfg.train.batch_size
    assert cfg.train.steps * batch == cpu.BUDGET_IMAGES >= 150_000
    assert cfg.train.eval_every * batch == cpu.EVAL_IMAGES and cfg.train.seed == 1
    assert cfg.train.precision == "bf16"  # as every committed run trained, whatever --precision says
    assert cfg.optim.decay_steps * batch == base.optim.decay_steps * base.train.batch_size
    warmup_images = cfg.optim.warmup_steps * batch
    assert warmup_images == (4_000 if name == "warmup250" else base.optim.warmup_steps * base.train.batch_size)


@pytest.mark.parametrize("name", list(demo.STUDY.candidates))
def test_demo_candidates_get_the_budget_over_their_cost_in_float32_from_the_store(name):
    cfg = demo.STUDY.config(name, seed=2, precision="bf16")
    assert cfg.train.steps == round(demo.BUDGET_IMAGES / demo.STUDY.costs[name] / cfg.train.batch_size)
    assert cfg.train.eval_every == cfg.train.steps // 4  # evaluations at the quarters (and at the end)
    assert cfg.train.precision == "fp32" and cfg.data.path == demo.DATA and cfg.train.seed == 2
    assert cfg.data.name == "tetrominoes" and cfg.data.num_eval == 256  # the demo's held-out scenes


def test_the_demo_budget_is_the_old_recipes_steps_at_its_batch():
    base = demo.STUDY.config("base", seed=0)
    assert (base.train.steps, base.train.batch_size) == (demo.BUDGET_STEPS, demo.BUDGET_BATCH)
    assert set(demo.STUDY.costs) == set(demo.STUDY.candidates) and demo.STUDY.costs["base"] == 1.0


def test_the_demo_cost_command_divides_each_candidates_time_per_image_by_the_bases(monkeypatch, capsys):
    monkeypatch.setattr(demo, "seconds_per_image", lambda cfg: cfg.model.encoder_kernel_size / 100)
    assert demo.measure_costs(["torch_enc3"], rounds=2) == {"base": 1.0, "torch_enc3": pytest.approx(3 / 5)}
    demo.cost_main(["torch_enc3"])
    assert "0.600x the base recipe's cost per image" in capsys.readouterr().out


def test_precision_candidates_differ_only_in_precision_on_the_cpu_scale():
    fp32, bf16 = precision.STUDY.config("fp32", 0), precision.STUDY.config("bf16", 0, precision="fp32")
    assert (fp32.train.precision, bf16.train.precision) == ("fp32", "bf16")
    assert dataclasses.replace(bf16, train=dataclasses.replace(bf16.train, precision="fp32")) == fp32
    scale = load_config(SCALES["cpu"].recipe, SCALES["cpu"].overrides)
    assert (fp32.model, fp32.optim, fp32.data) == (scale.model, scale.optim, scale.data)
    assert (fp32.train.steps, fp32.train.batch_size, fp32.train.eval_every, fp32.train.device) == (
        scale.train.steps, scale.train.batch_size, scale.train.eval_every, scale.train.device)


@pytest.mark.parametrize("name", list(MOVED))
def test_every_committed_run_is_what_its_definition_trains(name):
    """Each committed run (converted from the old scripts' JSON): a candidate of the definition with its overrides,
    the steps, batch and precision the definition gives it, evaluations at its cadence and at its end, the final
    score its last evaluation, the definition's measures."""
    definition = MOVED[name]
    runs = [json.loads(p.read_text()) for p in sorted((definition.results() / "runs").glob("*_s*.json"))]
    assert runs
    for r in runs:
        cfg = definition.config(r["candidate"], r["seed"])
        assert (r["study"], r["scale"], r["overrides"]) == (name, "full", list(definition.candidates[r["candidate"]]))
        assert (r["steps"], r["batch_size"], r["images"]) == (
            cfg.train.steps, cfg.train.batch_size, cfg.train.steps * cfg.train.batch_size)
        assert r["precision"] == [cfg.train.precision]
        every = cfg.train.eval_every
        expected = sorted({*range(every, cfg.train.steps + 1, every), cfg.train.steps})
        assert [c["step"] for c in r["curve"]] == expected
        assert all(c["images"] == c["step"] * r["batch_size"] for c in r["curve"])
        assert r["fg_ari"] == r["final"]["T3"]["fg_ari"] == r["curve"][-1]["fg_ari"]
        assert r["final"]["T3"]["ari"] == r["curve"][-1]["ari"]
        assert r["mean_fg_ari_over_curve"] == statistics.fmean(c["fg_ari"] for c in r["curve"])
        assert set(r["measures"]) == set(definition.measures)


def test_cross_scene_ari_tells_slots_that_split_by_position_from_slots_that_follow_objects():
    scenes, size = 16, 35
    rows = torch.arange(size).view(1, size, 1).expand(scenes, size, size)
    renamed = torch.randperm(4 * scenes, generator=torch.Generator().manual_seed(0)).view(scenes, 4)
    bands = torch.gather(renamed, 1, (rows // 9).flatten(1)).view(scenes, size, size)  # same bands, other slot ids
    assert cpu.cross_scene_ari(bands) == pytest.approx(1.0)
    objects = torch.zeros(scenes, size, size, dtype=torch.long)  # three 6x6 pieces at random places per scene
    corners = torch.randint(0, size - 6, (scenes, 3, 2), generator=torch.Generator().manual_seed(1))
    for scene in range(scenes):
        for piece, (y, x) in enumerate(corners[scene].tolist(), start=1):
            objects[scene, y:y + 6, x:x + 6] = piece
    assert abs(cpu.cross_scene_ari(objects)) < 0.1


def test_a_run_records_the_band_score_of_its_final_model(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "STUDIES_DIR", tmp_path / "studies")
    tiny = dataclasses.replace(cpu.STUDY, name="tiny", base="debug", candidates={"base": ()}, budget_images=16,
                               eval_images=8, base_overrides=("data.num_eval=8", "train.eval_batch_size=8"))
    record = json.loads(study.run_one(tiny, "base", 0, tmp_path / "runs", precision="fp32").read_text())
    assert record["measures"]["cross_scene_ari"] == pytest.approx(cpu.band_score(tmp_path / "runs" / "base_s0"))
    assert -1 <= record["measures"]["cross_scene_ari"] <= 1


def test_a_study_table_replaces_only_the_text_between_its_markers():
    begin, end = study.table_markers(cpu.STUDY)
    assert "studies/tetrominoes_cpu/results/full/table.md" in begin and "python -m studies.tetrominoes_cpu" in begin
    text = study.page_with_table(f"before\n{begin}\nold table\n{end}\nafter\n", cpu.STUDY, "| new |")
    assert text == f"before\n{begin}\n| new |\n{end}\nafter\n"


def test_a_study_table_shows_images_and_a_dash_where_a_candidate_lacks_a_final_measure():
    row = {"overrides": ["a=1"], "images": 1000, "fg_ari": {"0": 0.5, "1": 0.7}, "n": 2, "min": 0.5, "mean": 0.6,
           "std": 0.1414, "along_the_way": 0.4, "measures": {"bands": {"0": 0.61, "1": None}},
           "final": {"T3": {"fg_ari": {"mean": 0.6}, "ari": {"mean": 0.1}}}}
    old = {**row, "mean": 0.2, "std": None, "min": 0.2, "fg_ari": {"0": 0.2}, "n": 1,
           "final": {"T3": {"fg_ari": {"mean": 0.2}}}}  # a run converted without the ARI
    lines = study.markdown_table({"base": "b", "candidates": {"old": old, "new": row}}).splitlines()
    assert lines[0] == ("| candidate (overrides of b) | images | FG-ARI per seed | mean ± std (n) | min | "
                        "along the way | ARI T3 | bands per seed |")
    assert lines[2] == "| new: `a=1` | 1,000 | 0.500, 0.700 | 0.600 ± 0.141 (2) | 0.500 | 0.400 | 0.100 | 0.61, – |"
    assert lines[3].startswith("| old: `a=1` | 1,000 | 0.200 | 0.200 (1) | 0.200 | 0.400 | – |")
