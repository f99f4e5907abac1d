"""Studies and the reproduction report: every study runs end to end at smoke scale, resumes without retraining,
and the report's mean ± std, collapse detection and sections are right on hand-made results."""

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

from scripts.package_studies import main as package_studies
from slotattn import cli
from slotattn.training.checkpoint import latest_checkpoint
from slotattn.paper import TABLE_1_FG_ARI
from slotattn.report import SECTIONS, find_collapsed, mean_std, write_report
from slotattn.training.runlog import read_metrics
from slotattn.studies import SCALES, STUDIES, StudyError, run_study

TINY = ["train.steps=2", "data.num_eval=8", "train.eval_batch_size=8"]
# The generalisation study needs a dataset whose object count can grow: the debug model on Multi-dSprites.
MORE_OBJECTS = ["data.name=multi_dsprites", "model.resolution=[64, 64]", "model.decoder_broadcast_size=[64, 64]"]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Every study at smoke scale, one seed, two training steps (about 10 s on one core)."""
    root = tmp_path_factory.mktemp("studies")
    return {name: run_study(name, "smoke", root / name, seeds=1, progress=False,
                            overrides=TINY + (MORE_OBJECTS if STUDIES[name].extra_objects else [])).parent
            for name in STUDIES}


def test_each_study_writes_one_record_per_run_and_setting(studies):
    expected_settings = {"iterations": [1, 2, 3, 4, 5, 6, 7], "slots": [4, 5, 6, 7, 8],  # debug recipe: K=4
                         "ablations": [None], "baselines": [None], "generalisation": [4, 8]}
    for name, study_dir in studies.items():
        doc = json.loads((study_dir / "results.json").read_text())
        records = doc["records"]
        assert doc["study"] == name and doc["scale"] == "smoke"
        assert [v.name for v in STUDIES[name].variants] == list(dict.fromkeys(r["variant"] for r in records))
        for variant in STUDIES[name].variants:
            mine = [r for r in records if r["variant"] == variant.name]
            assert [r["setting"] for r in mine] == expected_settings[name]
            assert sum(r["trained_setting"] for r in mine) == 1
            for r in mine:
                assert r["status"] == "trained" and r["step"] == 2 and r["seed"] == 0
                assert set(r["metrics"]) >= {"ari", "fg_ari", "mbo", "largest_slot_share"}
                assert all(math.isfinite(v) for v in r["metrics"].values())
                assert (study_dir / r["run_dir"] / "checkpoints").is_dir()
    def records(name):
        return json.loads((studies[name] / "results.json").read_text())["records"]

    variants = {r["variant"]: r["model"] for r in records("ablations")}
    assert variants["softmax_over_inputs"]["attention_axis"] == "inputs" and variants["no_gru"]["use_gru"] is False
    assert variants["no_encoder_position"]["use_encoder_position"] is False
    groupings = [r["model"]["grouping"] for r in records("baselines")]
    assert groupings == ["slot_attention", "slot_mlp", "soft_kmeans"]


def test_generalisation_evaluates_on_scenes_with_more_objects_and_more_slots(studies, tmp_path):
    from slotattn.config import load_config
    from slotattn.data.build import build_eval_batches
    from slotattn.studies import run_config

    records = json.loads((studies["generalisation"] / "results.json").read_text())["records"]
    assert [r["eval_max_objects"] for r in records] == [9, 9]  # Multi-dSprites: up to 5 objects, evaluated on 9
    recipe, overrides = run_config("generalisation", "smoke", "slot_attention", 0, overrides=TINY + MORE_OBJECTS)
    cfg = STUDIES["generalisation"].eval_config(load_config(recipe, overrides))
    batch = next(build_eval_batches(cfg, num=64)())
    objects = [len(ids.unique()) - 1 for ids in batch["mask_ids"]]  # entities visible besides the background
    assert max(objects) > 5  # more than Multi-dSprites' 5, which the model was trained on
    with pytest.raises(StudyError, match="'tetrominoes' generator draws 3 objects at most.*--config multi_dsprites"):
        run_study("generalisation", "smoke", tmp_path / "g", seeds=1, progress=False, overrides=TINY)
    assert not (tmp_path / "g").exists()  # refused before training anything


def test_test_time_setting_changes_the_evaluation(studies):
    records = json.loads((studies["iterations"] / "results.json").read_text())["records"]
    assert len({r["metrics"]["ari"] for r in records}) > 1  # T=1..7 are really different evaluations


def test_study_runs_again_without_retraining(studies, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "main", lambda argv=None: calls.append(argv) or 0)
    study_dir = studies["ablations"]
    ckpts = sorted((study_dir).rglob("step_*.pt"))
    before = {p: p.stat().st_mtime_ns for p in ckpts}
    results = run_study("ablations", "smoke", study_dir, seeds=1, progress=False, overrides=TINY)
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in ckpts} == before
    assert all(r["status"] == "skipped" for r in json.loads(results.read_text())["records"])


def test_unfinished_run_is_resumed_not_restarted(tmp_path):
    study_dir = tmp_path / "iterations"
    run_study("iterations", "smoke", study_dir, seeds=1, progress=False, overrides=TINY)
    run_dir = study_dir / "slot_attention" / "seed0"
    first = [r for r in read_metrics(run_dir) if r["split"] == "train"]
    # More steps than the finished run: the study must continue it from its step-2 checkpoint.
    run_study("iterations", "smoke", study_dir, seeds=1, progress=False, overrides=[*TINY, "train.steps=3"])
    train = [r for r in read_metrics(run_dir) if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert train[:2] == first  # steps 1-2 were not trained again
    assert latest_checkpoint(run_dir).name == "step_00000003.pt"
    records = json.loads((study_dir / "results.json").read_text())["records"]
    assert {r["step"] for r in records} == {3} and {r["status"] for r in records} == {"trained"}


def test_report_has_every_section_and_links_to_existing_runs(studies, tmp_path):
    out = tmp_path / "report"
    md = write_report(list(studies.values()), out).read_text()
    html = (out / "report.html").read_text()
    for section in SECTIONS:
        assert f"\n## {section}\n" in md and f"<h2>{section}</h2>" in html
    for name in STUDIES:
        assert f"### {name} (smoke, debug)" in md
    assert len(list((out / "figures").glob("curves_*.png"))) == len(STUDIES)
    num_runs = sum(len(STUDIES[n].variants) for n in STUDIES)
    assert not (out / "figures" / "decomposition").exists()  # linked in the run directories, not copied
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len([i for i in images if "/vis/" in i]) == num_runs
    for target in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / target).exists(), target
    assert "99.5 ± 0.2" in md  # the paper model on Tetrominoes (debug recipe) gets Table 1's number
    assert html.count("<table>") >= 2 * len(STUDIES)


def test_report_accepts_plain_run_directories(studies, tmp_path):
    run_dir = studies["baselines"] / "slot_mlp" / "seed0"
    md = write_report([run_dir], tmp_path / "r").read_text()
    assert "### runs" in md and "25.1 ± 34.3" in md  # Slot MLP on Tetrominoes


def test_packaged_studies_hold_what_the_report_reads_and_no_figure_twice(studies, tmp_path):
    out = tmp_path / "packaged"
    first, second = studies["baselines"], studies["ablations"]  # both train the paper model, seed 0, alike
    assert package_studies([str(first), str(second), "--out", str(out)]) == 0
    kept = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert {Path(k).name for k in kept} == {"results.json", "metrics.jsonl", "step_00000002.png"}, kept
    figures = [(out / k).read_bytes() for k in kept if k.endswith(".png")]
    runs = len(STUDIES["baselines"].variants) + len(STUDIES["ablations"].variants)
    assert len(figures) == len(set(figures)) == runs - 1  # the paper model's figure once
    md = write_report([out / first.name, out / second.name], out / "report").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / "report" / target).exists(), target


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "studies" / "cpu"


def test_the_committed_cpu_report_is_what_its_committed_studies_give(tmp_path):
    """docs/studies/cpu keeps what the report needs: rewritten from the kept files, the report is the committed one."""
    studies = ["iterations", "ablations", "generalisation"]
    for name in studies:
        shutil.copytree(COMMITTED / name, tmp_path / name)
    md = write_report([tmp_path / name for name in studies], tmp_path / "report").read_text()
    assert md == (COMMITTED / "report" / "report.md").read_text(), \
        "run: slotattn report docs/studies/cpu/{iterations,ablations,generalisation} --out docs/studies/cpu/report"


def _record(seed, fg_ari, variant="slot_attention", share=0.5):
    return {"study": "baselines", "variant": variant, "seed": seed, "setting": None, "trained_setting": True,
            "step": 10, "status": "trained", "run_dir": f"{variant}/seed{seed}", "dataset": "multi_dsprites",
            "test_setting": None, "metrics": {"fg_ari": fg_ari, "ari": 0.5, "mbo": 0.25, "largest_slot_share": share},
            "model": {"grouping": variant, "attention_axis": "slots", "use_gru": True, "use_mlp": True,
                      "use_encoder_position": True, "use_decoder_position": True}}


def test_mean_std_is_the_sample_statistic():
    mean, std = mean_std([0.9, 0.8, 1.0])
    assert mean == pytest.approx(0.9, abs=1e-12) and std == pytest.approx(0.1, abs=1e-12)
    assert mean_std([0.5])[0] == 0.5 and math.isnan(mean_std([0.5])[1])
    assert all(math.isnan(v) for v in mean_std([]))


def test_collapsed_seeds_are_reported_apart_from_the_mean(tmp_path):
    records = [_record(0, 0.9), _record(1, 0.8), _record(2, 1.0), _record(3, 0.1),  # seed 3: FG-ARI collapse
               _record(0, 0.6, "slot_mlp", share=0.97), _record(1, 0.6, "slot_mlp")]  # seed 0: one slot everywhere
    assert set(find_collapsed(records)) == {"slot_attention/seed3", "slot_mlp/seed0"}
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    (study_dir / "results.json").write_text(json.dumps(
        {"study": "baselines", "scale": "cpu", "recipe": "multi_dsprites", "records": records}))
    md = write_report([study_dir], tmp_path / "report").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| slot_attention | as trained"))
    all_mean, all_std = mean_std([0.9, 0.8, 1.0, 0.1])
    assert f"| 3/4 | 90.0 ± 10.0 | 50.0 ± 0.0 | 25.0 ± 0.0 | {100 * all_mean:.1f} ± {100 * all_std:.1f} |" in row
    assert "| 91.3 ± 0.3 |" in row and "s3†" in row  # Table 1, Multi-dSprites
    mlp = next(line for line in md.splitlines() if line.startswith("| slot_mlp | as trained"))
    assert "| 1/2 | 60.0 |" in mlp and f"{TABLE_1_FG_ARI['slot_mlp']['multi_dsprites'][0]:.1f}" in mlp
    collapsed = md.split("## Collapsed and failed runs")[1].split("## All runs")[0]
    assert "slot_attention / seed 3" in collapsed and "slot_mlp / seed 0" in collapsed
    assert "slot_attention / seed 0" not in collapsed
    assert os.path.relpath(study_dir / "slot_attention" / "seed3", tmp_path / "report") in collapsed


def test_unknown_study_or_scale_raises_a_clear_error(tmp_path):
    with pytest.raises(StudyError, match=r"unknown study 'iteration'; expected one of \['ablations'"):
        run_study("iteration", "smoke", tmp_path)
    with pytest.raises(StudyError, match=r"unknown scale 'gpu'; expected one of \['cpu', 'paper', 'smoke'\]"):
        run_study("iterations", "gpu", tmp_path)
    assert set(SCALES) == {"smoke", "cpu", "paper"}
