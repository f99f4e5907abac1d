"""A run directory belongs to one run, and a user's mistakes end in one line with nothing lost (issue 37): two real
trainers at once, a restart over a finished run, resume after kill -9, resume with a changed model key, and one
test per mistake of the issue's list."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from slotattn import cli, load_config, run
from slotattn.models import build_model
from slotattn.training.checkpoint import latest_checkpoint
from slotattn.training.rundir import RunDirError, RunDirLock, claim_for_new_run

DEBUG = ["--config", "debug", "--no-progress", "--set", "train.precision=fp32"]


def main(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr()


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def one_line_error(captured) -> str:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("rundir") / "run"
    assert cli.main(["train", *DEBUG, "--run-dir", str(run_dir)]) == 0
    return run_dir


def slotattn_process(*args, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "slotattn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def wait_for(predicate, seconds=60.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


# -- one run per directory ---------------------------------------------------------------------------------------


def test_a_second_trainer_in_the_same_run_directory_fails_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "runA"
    first = slotattn_process("train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=100000")
    try:
        wait_for(lambda: (run_dir / "config.yaml").exists())
        config = (run_dir / "config.yaml").read_text()
        started = time.time()
        second = subprocess.run([sys.executable, "-m", "slotattn", "train", *DEBUG, "--run-dir", str(run_dir),
                                 "--set", "train.steps=50"], capture_output=True, text=True)
        assert second.returncode == 2 and time.time() - started < 60
        line = second.stderr.strip().splitlines()[-1]
        assert f"pid {first.pid}" in line and "another trainer" in line, second.stderr
        assert "Traceback" not in second.stderr
        assert (run_dir / "config.yaml").read_text() == config  # the first run's config, not the second's
        assert first.poll() is None  # the first trainer goes on
    finally:
        first.kill()
        first.wait()


def test_resume_after_kill_9_takes_the_lock_without_clean_up(tmp_path, capsys):
    run_dir = tmp_path / "run"
    first = slotattn_process("train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=100000",
                             "--set", "train.ckpt_every=2")
    try:
        wait_for(lambda: latest_checkpoint(run_dir) is not None)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (run_dir / ".lock").exists()  # left behind; the flock died with the process
    step = int(latest_checkpoint(run_dir).stem.removeprefix("step_"))
    code, captured = main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress",
                           "--set", f"train.steps={step + 2}"], capsys)
    assert code == 0, captured.err
    assert latest_checkpoint(run_dir).name == f"step_{step + 2:08d}.pt"


def test_a_new_run_over_a_finished_run_is_refused_and_changes_nothing(finished, capsys):
    before = checksums(finished)
    code, captured = main(["train", *DEBUG, "--run-dir", str(finished), "--set", "train.steps=2"], capsys)
    line = one_line_error(captured)
    assert code == 2 and "--resume" in line and "--run-dir" in line and "step 6" in line and "debug" not in line
    assert "tetrominoes" in line  # what the run trains, from its config.yaml
    assert checksums(finished) == before


def test_overwrite_replaces_the_old_run_whole_and_keeps_other_files(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main(["train", *DEBUG, "--run-dir", str(run_dir)]) == 0
    (run_dir / "notes.txt").write_text("mine")
    code, captured = main(["train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=2", "--overwrite"],
                          capsys)
    assert code == 0, captured.err
    assert [p.name for p in (run_dir / "checkpoints").glob("*.pt")] == ["step_00000002.pt"]  # no step 3 or 6 left
    assert [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "train"] == [1, 2]
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_an_empty_directory_or_one_with_other_files_is_fine(tmp_path):
    (tmp_path / "data.npy").write_bytes(b"x")
    with RunDirLock(tmp_path):
        assert claim_for_new_run(tmp_path) is None
    assert (tmp_path / "data.npy").exists()


def test_the_lock_is_exclusive_within_one_machine_and_freed_on_exit(tmp_path):
    with RunDirLock(tmp_path):
        with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
            RunDirLock(tmp_path).__enter__()
    with RunDirLock(tmp_path):  # released: taken again
        pass


def test_resume_with_a_changed_model_key_is_refused_naming_it(finished, capsys):
    before = checksums(finished)
    code, captured = main(["train", "--run-dir", str(finished), "--resume", "--no-progress",
                           "--set", "model.slot_size=32", "--set", "train.steps=8"], capsys)
    line = one_line_error(captured)
    assert code == 2 and "model.slot_size" in line and "train.steps" not in line.split("would")[0]
    assert checksums(finished) == before


def test_resume_may_change_only_what_does_not_change_what_the_run_learns(finished):
    assert "train.steps" in run.SAFE_ON_RESUME
    assert not any(key.startswith(("model.", "optim.")) or key in ("train.seed", "train.batch_size", "data.name")
                   for key in run.SAFE_ON_RESUME)
    cfg = run.resume_config(finished, overrides=["train.steps=10", "train.eval_every=5"])  # safe: allowed
    assert cfg.train.steps == 10 and cfg.model == load_config("debug").model
    assert run.resume_config(finished, overrides=["model.slot_size=16"]).model.slot_size == 16  # unchanged value


def test_the_demo_replaces_its_own_earlier_run_whole(tmp_path, capsys):
    out = tmp_path / "demo_run"
    args = ["demo", "--out", str(out), "--num-train", "64", "--no-progress", "--set", "train.steps=2",
            "--set", "data.num_eval=8", "--set", "train.eval_batch_size=8", "--set", "train.precision=fp32"]
    assert main(args, capsys)[0] == 0
    (out / "run" / "checkpoints" / "step_00000099.pt").write_bytes(b"")  # would be a stale later checkpoint
    code, captured = main(args, capsys)
    assert code == 0 and "replacing the earlier demo run" in captured.out
    assert sorted(p.name for p in (out / "run" / "checkpoints").iterdir()) == ["step_00000002.json",
                                                                               "step_00000002.pt"]


# -- the numbered mistakes ---------------------------------------------------------------------------------------


def test_1_images_outside_minus_one_to_one_are_refused_by_the_python_api():
    model = build_model(load_config("debug")).eval()
    image = torch.rand(2, 3, *model.resolution)
    model(image * 2 - 1)  # [-1, 1]: fine
    model(image * 2 - 1.005)  # within the tolerance
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\], got \[.*\] \(pixels in \[0, 255\]"):
        model(image * 255)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        model(image * 2 - 1.1)


@pytest.mark.parametrize("argv", [["train", *DEBUG, "--set", "train.device=gpu"],
                                  ["train", *DEBUG, "--device", "cuda:7"],
                                  ["eval", "--checkpoint", "tetrominoes", "--device", "gpu", "--num", "2"]])
def test_2_an_unknown_or_absent_device_is_one_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, captured = main(argv + (["--run-dir", "r"] if argv[0] == "train" else []), capsys)
    assert code == 2 and "device" in one_line_error(captured)


def test_2_train_has_a_device_option(tmp_path, capsys):
    code, captured = main(["train", *DEBUG, "--run-dir", str(tmp_path / "r"), "--device", "cpu",
                           "--set", "train.steps=1"], capsys)
    assert code == 0 and "on " in captured.out.splitlines()[0]


def test_3_eval_says_how_many_scenes_it_scored_and_refuses_more_than_there_are(tmp_path, finished, capsys):
    assert cli.main(["generate", "tetrominoes", "--num", "20", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    code, captured = main(["eval", "--checkpoint", str(finished), "--data", str(tmp_path / "d"), "--num", "5000",
                           "--no-progress"], capsys)
    assert code == 2 and "5,000" in one_line_error(captured) and "20" in captured.err
    code, captured = main(["eval", "--checkpoint", str(finished), "--num", "0", "--no-progress"], capsys)
    assert code == 2 and "--num" in one_line_error(captured)
    out = tmp_path / "new" / "folder" / "m.json"  # 5: the folder is made before the evaluation
    code, captured = main(["eval", "--checkpoint", str(finished), "--data", str(tmp_path / "d"), "--num", "12",
                           "--no-progress", "--out", str(out)], capsys)
    assert code == 0 and json.loads(out.read_text())["num_scenes"] == 12 and "scored 12" in captured.err
    code, captured = main(["eval", "--checkpoint", str(finished), "--data", str(tmp_path / "d"), "--no-progress"],
                          capsys)  # without --num: data.num_eval scenes, or all of a smaller store
    assert json.loads(captured.out)["num_scenes"] == min(load_config("debug").data.num_eval, 20)


def test_4_resume_of_a_finished_run_is_one_line_and_a_lower_step_count_rewrites_nothing(finished, capsys):
    before = checksums(finished)
    for extra in ([], ["--set", "train.steps=3"]):
        code, captured = main(["train", "--run-dir", str(finished), "--resume", "--no-progress", *extra], capsys)
        assert code == 2 and "finished" in one_line_error(captured)
    assert checksums(finished) == before


def test_6_generate_overwrite_replaces_only_a_dataset(tmp_path, capsys):
    mine = tmp_path / "mydir"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    code, captured = main(["generate", "tetrominoes", "--num", "4", "--out", str(mine), "--overwrite",
                           "--no-progress"], capsys)
    assert code == 2 and "not a slotattn dataset" in one_line_error(captured)
    assert (mine / "precious.txt").read_text() == "keep"
    data = tmp_path / "data"
    for num in (4, 6):  # a dataset is replaced
        assert cli.main(["generate", "tetrominoes", "--num", str(num), "--out", str(data), "--overwrite",
                         "--no-progress"]) == 0
    assert json.loads((data / "meta.json").read_text())["num_examples"] == 6


def test_7_resume_refuses_a_config(finished, capsys):
    code, captured = main(["train", "--config", "debug", "--run-dir", str(finished), "--resume", "--no-progress"],
                          capsys)
    assert code == 2 and "drop --config" in one_line_error(captured)


def test_8_export_names_its_file_and_never_touches_a_checkpoint(finished, tmp_path, capsys):
    code, captured = main(["export", "--checkpoint", str(finished), "--out", str(tmp_path / "mymodel")], capsys)
    assert code == 0, captured.err
    model = run.load_for_inference(tmp_path / "mymodel.safetensors")[1]  # loads as written
    assert model.num_slots == load_config("debug").model.num_slots
    ckpt = latest_checkpoint(finished)
    before = checksums(finished)
    for out in (ckpt.with_suffix(".safetensors"), tmp_path / "mymodel.safetensors", tmp_path,
                tmp_path / "model.pt"):
        code, captured = main(["export", "--checkpoint", str(finished), "--out", str(out)], capsys)
        assert code == 2, out
        one_line_error(captured)
    assert checksums(finished) == before
    assert main(["export", "--checkpoint", str(finished), "--out", str(tmp_path / "mymodel"), "--overwrite"],
                capsys)[0] == 0


def test_9_a_clevr_split_is_not_overwritten_silently_and_overwrite_leaves_no_stale_images(tmp_path, capsys):
    out = tmp_path / "clv"
    base = ["generate", "clevr", "--split", "train", "--out", str(out), "--width", "48", "--height", "32",
            "--no-progress"]
    assert cli.main([*base, "--num", "3"]) == 0
    before = checksums(out)
    code, captured = main([*base, "--num", "2"], capsys)
    assert code == 2 and "--overwrite" in one_line_error(captured)
    assert checksums(out) == before
    assert cli.main([*base, "--num", "2", "--overwrite"]) == 0
    assert len(list((out / "images" / "train").glob("*.png"))) == 2
    assert len(list((out / "masks" / "train").glob("*.png"))) == 2


def test_10_bad_arguments_deep_in_the_library_are_one_line(finished, tmp_path, capsys):
    code, captured = main(["eval", "--checkpoint", str(finished), "--num-slots", "0", "--num", "4",
                           "--no-progress"], capsys)
    assert code == 2 and "num_slots" in one_line_error(captured)
    code, captured = main(["export", "--checkpoint", str(finished), "--out", str(tmp_path)], capsys)
    assert code == 2 and "directory" in one_line_error(captured)
    (tmp_path / "clevr" / "images" / "train").mkdir(parents=True)
    (tmp_path / "clevr" / "scenes").mkdir()
    code, captured = main(["convert", "clevr", "--root", str(tmp_path / "clevr"), "--task", "object_discovery",
                           "--frame-size", "32x48", "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert code == 2
    one_line_error(captured)


def test_11_help_version_defaults_and_the_start_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"slotattn {cli.package_version()}"
    parser = cli.build_parser()
    assert parser.description.endswith("demo.") and "|" not in parser.description
    helps = {name: sub.format_help() for name, sub in parser._subparsers._group_actions[0].choices.items()}
    assert "tetrominoes_cpu" in helps["train"]  # the recipes
    assert "(default: 4096)" in helps["generate"]  # defaults
    for name, text in helps.items():
        if "--no-progress" in text:
            assert "no progress bars" in text, name
    run_dir = tmp_path / "r"
    code, captured = main(["train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=1"], capsys)
    first = captured.out.splitlines()[0]
    assert code == 0 and first.startswith("training: recipe debug, 1 steps") and "float32" in first
    assert str(run_dir) in first


def test_11_train_without_a_recipe_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, captured = main(["train", "--no-progress"], capsys)
    assert code == 2 and "--config" in one_line_error(captured) and not Path("runs").exists()


def test_11_visualize_prints_the_file_it_wrote(finished, tmp_path, capsys):
    code, captured = main(["visualize", "--checkpoint", str(finished), "--out", str(tmp_path / "figdir"),
                           "--num", "2"], capsys)
    assert code == 0 and captured.out.strip() == f"wrote {tmp_path / 'figdir.png'}"
    assert (tmp_path / "figdir.png").is_file()


def test_11_a_failed_report_leaves_no_empty_folder(tmp_path, capsys):
    code, captured = main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "rep")], capsys)
    assert code == 2 and not (tmp_path / "rep").exists()


def test_11_the_first_ctrl_c_is_acknowledged(tmp_path):
    run_dir = tmp_path / "run"
    proc = slotattn_process("train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=100000")
    wait_for(lambda: (run_dir / "metrics.jsonl").exists())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "stopping at the end of this step" in err, err
