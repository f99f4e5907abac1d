"""`slotattn reproduce`: a row trained with the paper's recipe (at debug scale here), resumed, evaluated and written;
and reproduction/: the README's results table is what the committed rows give, the resume states are one checkpoint
each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reproduction import curve
from reproduction.resume_state import RESUME_DIR, save
from reproduction.results_table import README, ROWS_DIR, cells, load_rows, render, results_table, short_device
from slotattn import cli
from slotattn.paper import TABLE_1_FG_ARI
from slotattn.reproduce import ROWS, write_row
from slotattn.training.checkpoint import list_checkpoints
from slotattn.training.runlog import cpu_model, read_metrics, read_starts

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-eval", "8", "--set", "train.steps=2", "--set", "train.batch_size=2", "--set", "train.eval_batch_size=8",
        "--set", "train.device=cpu"]


def test_a_row_trains_with_the_paper_model_resumes_and_writes_its_json(tmp_path, capsys):
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    row = json.loads((tmp_path / "tetrominoes.json").read_text())
    assert row["row"] == "tetrominoes" and row["metric"] == "fg_ari" and row["paper"] == [99.5, 0.2]
    assert row["steps"] == 2 and row["images_seen"] == 4 and row["num_eval"] == 8
    assert row["value"] == row["metrics"]["fg_ari"] and 0 <= row["value"] <= 1
    assert row["config"]["model"]["num_slots"] == 4 and row["config"]["model"]["encoder_channels"] == [32] * 4
    assert row["overrides"] == ["train.steps=2", "train.batch_size=2", "train.eval_batch_size=8", "train.device=cpu"]
    # A second call continues the same run (here: two more steps).
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY[:2],
                     "--set", "train.steps=4"]) == 0
    assert json.loads((tmp_path / "tetrominoes.json").read_text())["steps"] == 4
    assert "(paper 99.5 ± 0.2, Table 1) at step 4" in capsys.readouterr().out


def test_a_row_names_the_hardware_the_run_recorded_at_each_start(tmp_path):
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    run_dir = tmp_path / "tetrominoes" / "run"
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY[:2],
                     "--set", "train.steps=4"]) == 0
    starts = read_starts(run_dir)
    assert [s["step"] for s in starts] == [0, 2] and {s["world_size"] for s in starts} == {1}
    assert starts[0]["device"].startswith(cpu_model() + " (") and starts[0]["precision"] in ("fp32", "bf16")
    # A start on other hardware shows in the row; a start after the checkpoint (a later crash) does not.
    with open(run_dir / "starts.jsonl", "a") as f:
        f.write(json.dumps({**starts[0], "step": 3, "device": "Other CPU (1 thread)"}) + "\n")
        f.write(json.dumps({**starts[0], "step": 9, "device": "Later GPU"}) + "\n")
    row = write_row("tetrominoes", run_dir, tmp_path / "row.json", num_eval=8)
    assert row["device"] == f"{starts[0]['device']} + Other CPU (1 thread)"
    earlier = ("AMD EPYC (1 thread)", "fp32")  # where a run older than the record trained its first steps
    recorded = write_row("tetrominoes", run_dir, tmp_path / "all.json", num_eval=8, unrecorded=earlier)
    assert recorded["device"] == row["device"] and recorded["unrecorded"] is None  # the record covers the run
    # A run whose record begins at step 2: its first steps trained where `unrecorded` says, then the recorded starts.
    (run_dir / "starts.jsonl").write_text("".join(json.dumps(s) + "\n" for s in read_starts(run_dir)[1:]))
    later = write_row("tetrominoes", run_dir, tmp_path / "later.json", num_eval=8, unrecorded=earlier)
    assert later["device"] == f"AMD EPYC (1 thread) + {starts[1]['device']} + Other CPU (1 thread)"
    assert later["precision"] == " + ".join(dict.fromkeys(["fp32", starts[1]["precision"]]))
    assert later["unrecorded"] == list(earlier)
    (run_dir / "starts.jsonl").unlink()  # a run older than the record
    named = write_row("tetrominoes", run_dir, tmp_path / "named.json", num_eval=8, unrecorded=earlier)
    assert (named["device"], named["precision"]) == earlier
    assert "did not record where it trained" in write_row("tetrominoes", run_dir, tmp_path / "old.json",
                                                          num_eval=8)["device"]


def test_updating_a_row_of_a_run_older_than_the_record_keeps_where_its_first_steps_trained(tmp_path, monkeypatch):
    from reproduction import update_row

    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    run_dir = tmp_path / "tetrominoes" / "run"
    (run_dir / "starts.jsonl").unlink()  # trained before starts were recorded, on the hardware its row names:
    old = {**json.loads((tmp_path / "tetrominoes.json").read_text()), "device": "AMD EPYC (1 thread)",
           "precision": "fp32", "overrides": ["train.precision=fp32"]}
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "tetrominoes.json").write_text(json.dumps(old))
    monkeypatch.setattr(update_row, "ROWS_DIR", rows)
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY[:2],
                     "--set", "train.steps=4"]) == 0  # continued: its first recorded start is at step 2
    (start,) = read_starts(run_dir)
    assert update_row.main(["tetrominoes", "--run-dir", str(run_dir), "--overrides",
                            "train.precision=fp32 up to step 2, then auto"]) == 0
    row = json.loads((rows / "tetrominoes.json").read_text())
    assert row["steps"] == 4 and row["device"] == f"AMD EPYC (1 thread) + {start['device']}"
    assert row["precision"] == " + ".join(dict.fromkeys(["fp32", start["precision"]]))
    assert row["overrides"] == ["train.precision=fp32 up to step 2, then auto"]
    assert update_row.main(["tetrominoes", "--run-dir", str(run_dir)]) == 0  # again: nothing changes but the date
    assert json.loads((rows / "tetrominoes.json").read_text())["device"] == row["device"]


def test_a_row_counts_the_minutes_of_its_checkpoint_not_of_steps_logged_after_it(tmp_path):
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY,
                     "--set", "train.log_every=1"]) == 0
    run_dir = tmp_path / "tetrominoes" / "run"
    at_checkpoint = [r for r in read_metrics(run_dir) if r["split"] == "train"][-1]
    with open(run_dir / "metrics.jsonl", "a") as f:  # as a run stopped between checkpoints leaves it
        f.write(json.dumps({**at_checkpoint, "step": 3, "time_s": 6000.0}) + "\n")
    row = write_row("tetrominoes", run_dir, tmp_path / "row.json", num_eval=8)
    assert row["steps"] == 2 and row["minutes"] == round(at_checkpoint["time_s"] / 60, 1)


def test_a_fine_tuned_row_counts_the_training_behind_its_starting_weights(tmp_path):
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    run_dir = tmp_path / "tetrominoes" / "run"
    plain = write_row("tetrominoes", run_dir, tmp_path / "plain.json", num_eval=8)
    earlier = {"what": "earlier weights", "images": 1000, "minutes": 2.5}
    row = write_row("tetrominoes", run_dir, tmp_path / "row.json", num_eval=8, started_from=earlier)
    assert row["images_seen"] == plain["images_seen"] + 1000 and row["minutes"] == round(plain["minutes"] + 2.5, 1)
    assert row["value"] == plain["value"] and plain["started_from"] is None
    assert cells("tetrominoes", row)[3] == f"{row['images_seen']:,}† (2 steps)"  # the run did all its steps
    longer = {**row, "config": {**row["config"], "train": {**row["config"]["train"], "steps": 10}}}
    assert cells("tetrominoes", longer)[3] == f"{row['images_seen']:,}† (2 of 10 steps)"
    with pytest.raises(ValueError, match="what, images, minutes"):
        write_row("tetrominoes", run_dir, tmp_path / "bad.json", num_eval=8, started_from={"images": 1})


def test_rows_take_the_paper_numbers_from_the_one_table():
    for name in ("clevr6", "multi_dsprites", "tetrominoes"):
        assert ROWS[name].paper == TABLE_1_FG_ARI["slot_attention"][name] and ROWS[name].source == "Table 1"


def test_table_lists_every_row_in_short_cells_measured_or_not(tmp_path):
    table = results_table([])
    assert table.count("| not run |") == len(ROWS) and f"`slotattn reproduce {next(iter(ROWS))} --device cuda" in table
    assert cells("tetrominoes", None)[:3] == ["tetrominoes", "FG-ARI 99.5 ± 0.2 (Table 1)", "not run"]
    for row in load_rows():
        assert all(len(cell) <= 40 for cell in cells(row["row"], row)), cells(row["row"], row)
        assert cells(row["row"], row)[2].startswith(f"{100 * row['value']:.1f} (")


def test_a_curve_names_the_step_its_run_would_resume_from(tmp_path):
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY]) == 0
    curve.main(["--run-dir", str(tmp_path / "tetrominoes" / "run"), "--out", str(tmp_path / "curve")])
    result = json.loads((tmp_path / "curve.json").read_text())
    assert result["checkpoint_step"] == 2 and result["curve"][-1]["step"] == 2
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_table_names_a_device_without_trademark_signs():
    assert short_device("Intel(R) Xeon(R) Processor (1 thread)") == "Intel Xeon (1 thread)"
    assert (short_device("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz (2 threads)")
            == "Intel Core i7-8650U CPU @ 1.90GHz (2 threads)")
    assert short_device("AMD EPYC (1 thread)") == "AMD EPYC (1 thread)"
    assert short_device("NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3"


def test_readme_table_is_generated_from_the_committed_rows():
    readme = README.read_text()
    assert render(readme, load_rows(ROWS_DIR)) == readme, "run: python -m reproduction.results_table"
    for row in load_rows():
        assert f"{100 * row['value']:.1f}" in readme


def test_the_table_script_runs_as_a_module_and_checks_the_readme():
    result = subprocess.run([sys.executable, "-m", "reproduction.results_table", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_committed_resume_state_holds_its_newest_checkpoint_only():
    states = sorted(p for p in RESUME_DIR.iterdir() if p.is_dir())
    assert states, RESUME_DIR
    for state in states:
        checkpoints = list_checkpoints(state)
        assert len(checkpoints) == 1, f"{state}: {[c.name for c in checkpoints]}"
        assert sorted(p.name for p in (state / "checkpoints").iterdir()) == sorted(
            [checkpoints[0].name, checkpoints[0].with_suffix(".json").name])


def test_resume_state_keeps_the_newest_checkpoint_and_the_logs(tmp_path):
    assert cli.main(["reproduce", "tetrominoes", "--out", str(tmp_path), "--no-progress", *TINY,
                     "--set", "train.ckpt_every=1"]) == 0
    run_dir = tmp_path / "tetrominoes" / "run"
    assert len(list_checkpoints(run_dir)) == 2
    dest = tmp_path / "state"
    (dest / "checkpoints").mkdir(parents=True)
    (dest / "checkpoints" / "step_00000001.pt").write_bytes(b"an older state")  # replaced, not added to
    assert save(run_dir, dest).name == "step_00000002.pt"
    assert sorted(p.name for p in (dest / "checkpoints").iterdir()) == ["step_00000002.json", "step_00000002.pt"]
    assert {p.name for p in dest.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoints"}


def test_unknown_row_is_refused():
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "clevr10", "--out", "x"])


@pytest.mark.slow
def test_the_prepared_gpu_script_writes_both_rows_and_the_throughput(tmp_path):
    """reproduction/gpu_rows.sh as its smoke command runs it on a CPU (~1-2 minutes: one CLEVR6 step and its renders)."""
    env = {**os.environ, "DEVICE": "cpu", "MIN_TETRO": "0.05", "MIN_CLEVR": "0.05", "NUM_EVAL": "4",
           "EXTRA": "--set train.batch_size=2 --set train.eval_batch_size=4",
           "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", str(ROOT / "reproduction" / "gpu_rows.sh")], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=900)
    out = tmp_path / "out"
    for name in ("tetrominoes", "clevr6"):
        row = json.loads((out / f"{name}.json").read_text())
        assert row["row"] == name and row["num_eval"] == 4 and row["steps"] >= 1
    throughput = json.loads((out / "throughput.json").read_text())
    assert throughput["clevr6"]["steps"] >= 1 and throughput["tetrominoes"]["median_train_images_per_s"] > 0
