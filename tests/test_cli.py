"""The `slotattn` CLI end to end in a temp dir: train, resume, eval, visualize, generate, signals, errors."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import slotattn
from slotattn import cli
from slotattn.training.checkpoint import latest_checkpoint, load_checkpoint
from slotattn.config import from_dict, load_config
from slotattn.data.build import build_eval_batches, build_train_source
from slotattn.training.engine import NonFiniteLossError, TrainingInterrupted, train
from slotattn.models import build_model
from slotattn.training.runlog import read_metrics
from slotattn.tasks import ObjectDiscoveryTask


def run(argv, capsys=None):
    code = cli.main(argv)
    out = capsys.readouterr() if capsys else None
    return code, out


def train_losses(run_dir):
    return [r["loss"] for r in read_metrics(run_dir) if r["split"] == "train"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One debug run shared by the read-only tests below."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    # float32 explicitly: the default precision ("auto") depends on the machine's bfloat16 support.
    assert cli.main(["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress",
                     "--set", "train.precision=fp32"]) == 0
    return run_dir


def test_train_writes_checkpoint_metrics_config_and_figure(trained):
    assert (trained / "config.yaml").exists()
    assert latest_checkpoint(trained).name == "step_00000006.pt"
    assert sorted(p.name for p in (trained / "vis").glob("*.png")) == ["step_00000003.png", "step_00000006.png"]
    records = read_metrics(trained)
    losses = train_losses(trained)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    evals = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6] and {"ari", "fg_ari", "mbo"} <= set(evals[-1])
    state = load_checkpoint(latest_checkpoint(trained))
    assert state["config"]["train"]["steps"] == 6 and state["step"] == 6


def test_resume_gives_the_same_losses_and_parameters_as_an_uninterrupted_run(tmp_path, trained):
    run_dir = tmp_path / "resumed"
    assert cli.main(["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress",
                     "--set", "train.steps=3", "--set", "train.precision=fp32"]) == 0
    assert cli.main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress", "--set", "train.steps=6"]) == 0
    assert train_losses(run_dir) == train_losses(trained)
    a = load_checkpoint(latest_checkpoint(run_dir))["model"]
    b = load_checkpoint(latest_checkpoint(trained))["model"]
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_eval_from_the_checkpoint_alone_reproduces_training_time_metrics(trained, capsys, tmp_path):
    out = tmp_path / "eval.json"
    code, captured = run(["eval", "--checkpoint", str(trained), "--no-progress", "--out", str(out)], capsys)
    assert code == 0
    result = json.loads(out.read_text())
    last_eval = [r for r in read_metrics(trained) if r["split"] == "eval"][-1]
    for key in ("ari", "fg_ari", "mbo"):
        assert result[key] == pytest.approx(last_eval[key], abs=1e-9)
    assert json.loads(captured.out)["checkpoint"].endswith("step_00000006.pt")


def test_visualize_writes_a_png(trained, tmp_path, capsys):
    path = tmp_path / "fig.png"
    code, _ = run(["visualize", "--checkpoint", str(trained), "--num", "3", "--out", str(path)], capsys)
    assert code == 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_then_train_on_the_stored_dataset(tmp_path, capsys):
    data = tmp_path / "tetro"
    code, captured = run(["generate", "tetrominoes", "--num", "40", "--seed", "1", "--out", str(data),
                          "--chunk", "16", "--no-progress"], capsys)
    assert code == 0 and "wrote 40 examples" in captured.out
    code, _ = run(["train", "--config", "debug", "--run-dir", str(tmp_path / "run"), "--no-progress",
                   "--set", f"data.path={data}", "--set", f"data.eval_path={data}", "--set", "train.steps=2"], capsys)
    assert code == 0 and latest_checkpoint(tmp_path / "run") is not None
    # Regenerating with the same seed gives the same bytes.
    run(["generate", "tetrominoes", "--num", "40", "--seed", "1", "--out", str(tmp_path / "again"), "--chunk", "16",
         "--no-progress"], capsys)
    assert (data / "image.npy").read_bytes() == (tmp_path / "again" / "image.npy").read_bytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--config", "debug", "--set", "train.stepz=3"], "did you mean 'train.steps'"),
        (["train", "--config", "no_such_recipe.yaml"], "config file not found"),
        (["eval", "--checkpoint", "/nonexistent/ckpt.pt"], "checkpoint not found"),
        (["train", "--config", "debug", "--set", "data.path=/nonexistent/data"], "/nonexistent/data"),
        (["train", "--config", "debug", "--set", "data.name=objects_room"], "no generator for dataset 'objects_room'"),
    ],
)
def test_bad_input_gives_a_clear_error_and_exit_code_2(argv, message, capsys, tmp_path):
    code, captured = run([*argv, "--run-dir", str(tmp_path / "r")] if argv[0] == "train" else argv, capsys)
    assert code == 2 and message in captured.err and "Traceback" not in captured.err


def test_a_recipe_name_means_the_packaged_recipe_even_beside_a_folder_of_that_name(tmp_path, monkeypatch, capsys):
    # e.g. after `slotattn generate tetrominoes --out tetrominoes`: the folder used to end in IsADirectoryError
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tetrominoes").mkdir()
    used = []
    monkeypatch.setattr(cli, "_train", lambda cfg, run_dir, resume, progress, overwrite=False:
                        used.append(cfg) or {"fg_ari": 0.5})
    code, captured = run(["train", "--config", "tetrominoes", "--run-dir", "r", "--no-progress"], capsys)
    assert code == 0, captured.err
    assert used == [load_config(Path(slotattn.__file__).parent / "configs" / "tetrominoes.yaml")]


def test_demo_uses_its_packaged_recipe_beside_a_demo_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    used = []

    def stop_before_training(cfg, run_dir, resume, progress, overwrite=False):
        used.append(cfg)
        raise TrainingInterrupted("stopped by the test once the recipe is loaded")

    monkeypatch.setattr(cli, "_train", stop_before_training)
    code, captured = run(["demo", "--num-train", "4", "--no-progress"], capsys)
    assert code == 130 and "stopped by the test" in captured.err, captured.err
    packaged = load_config("demo", [f"data.path={Path('demo_run') / 'data'}"])
    assert used == [packaged] and used[0].data.name == "tetrominoes"


def test_demo_says_when_its_time_limit_stopped_it_short_of_the_readmes_steps(tmp_path, capsys):
    out = tmp_path / "demo_run"
    code, captured = run(["demo", "--out", str(out), "--num-train", "32", "--minutes", "0.002", "--no-progress",
                          "--set", "data.num_eval=4", "--set", "train.precision=fp32"], capsys)
    assert code == 0, captured.err
    steps = max(record["step"] for record in read_metrics(out / "run"))
    assert 1 <= steps < cli.DEMO_SLOW_MACHINE_STEPS
    assert f"note: the time limit stopped training after {steps:,} steps" in captured.out
    assert f"slotattn demo --out {out} --resume --minutes 5" in captured.out
    cfg = load_config("demo", [f"data.path={out / 'data'}"])
    # no note when the run did all its steps, or had no time limit
    assert cli._demo_steps_warning(out, from_dict({"train": {"steps": steps}}, base=cfg)) is None
    assert cli._demo_steps_warning(out, from_dict({"train": {"max_minutes": None}}, base=cfg)) is None
    assert cli._demo_steps_warning(out, cfg) is not None


@pytest.mark.parametrize("recipe, content, message", [
    ("recipes/", None, "recipes: a directory, not a YAML recipe file (packaged recipes: clevr6, clevr6_64, debug,"),
    ("no_such_recipe", None, "config 'no_such_recipe': no such file, and not a packaged recipe (available: clevr6,"),
    ("weights.yaml", bytes(range(128, 256)), "weights.yaml: cannot be read as a YAML recipe (UnicodeDecodeError"),
    ("list.yaml", b"- train\n- steps\n", "list.yaml: expected a YAML mapping of config sections (model:, data:, "
                                           "optim:, train:), found a list"),
    ("broken.yaml", b"train:\n  steps: [1, 2\n", "broken.yaml: not valid YAML at line 3, column 1:"),
], ids=["directory", "unknown-name", "binary", "not-a-mapping", "bad-yaml"])
def test_a_config_that_is_not_a_readable_yaml_recipe_is_one_line_and_exit_2(
        tmp_path, monkeypatch, capsys, recipe, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    if content is not None:
        (tmp_path / recipe).write_bytes(content)
    code, captured = run(["train", "--config", recipe, "--run-dir", "r", "--no-progress"], capsys)
    assert code == 2 and "Traceback" not in captured.err
    assert captured.err.startswith(f"slotattn train: error: {message}") and captured.err.count("\n") == 1, captured.err


def test_resume_into_a_run_dir_without_anything_to_resume_is_an_error(tmp_path, capsys):
    code, captured = run(["train", "--run-dir", str(tmp_path / "empty"), "--resume"], capsys)
    assert code == 2 and "nothing to resume" in captured.err


def test_non_finite_loss_stops_with_step_terms_and_checkpoint(tmp_path):
    class NaNAfterTwo(ObjectDiscoveryTask):
        calls = 0

        def loss(self, out, batch):
            terms = super().loss(out, batch)
            self.calls += 1
            if self.calls > 2:
                terms = {k: v * float("nan") for k, v in terms.items()}
            return terms

    cfg = load_config("debug", ["train.ckpt_every=2"])
    with pytest.raises(NonFiniteLossError, match=r"step 2: non-finite loss \(loss=nan, mse=nan\); last good checkpoint: .*step_00000002.pt"):
        train(cfg, build_model(cfg), NaNAfterTwo(), lambda r, w: build_train_source(cfg, r, w),
              lambda r, w: build_eval_batches(cfg, rank=r, world_size=w), tmp_path)


def test_real_subprocess_train_and_sigterm_writes_a_resumable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "slotattn", "train", "--config", "debug", "--run-dir", str(run_dir),
            "--no-progress", "--set", "train.steps=100000", "--set", "train.eval_every=100000",
            "--set", "train.vis_every=100000", "--set", "train.ckpt_every=100000"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until it is training (a few steps logged)
        if (run_dir / "metrics.jsonl").exists() and len(train_losses(run_dir)) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGTERM at step" in err and "--resume" in err
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["step"] >= 3


def test_set_prediction_trains_evaluates_and_draws_from_a_store(tmp_path, capsys):
    import numpy as np

    from slotattn.data.store import write_store

    rng = np.random.default_rng(0)
    num = 24
    target = np.zeros((num, 10, 19), np.float32)
    for i in range(num):
        for j in range(rng.integers(1, 5)):
            target[i, j, :3] = rng.random(3)
            for lo, hi in [(3, 5), (5, 7), (7, 10), (10, 18)]:
                target[i, j, lo + rng.integers(hi - lo)] = 1.0
            target[i, j, 18] = 1.0
    arrays = {"image": rng.integers(0, 256, (num, 32, 32, 3), dtype=np.uint8), "target": target,
              "num_objects": target[:, :, 18].sum(1).astype(np.int64)}
    write_store(tmp_path / "clevr", arrays, {"dataset": "clevr"})
    overrides = ["task=set_prediction", "data.name=clevr", f"data.path={tmp_path / 'clevr'}",
                 f"data.eval_path={tmp_path / 'clevr'}", "model.resolution=[32, 32]", "model.num_slots=5",
                 "model.encoder_strides=[1, 2]", "data.num_eval=10", "train.steps=3"]
    run_dir = tmp_path / "run"
    code, _ = run(["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress",
                   *[x for o in overrides for x in ("--set", o)]], capsys)
    assert code == 0
    evals = [r for r in read_metrics(run_dir) if r["split"] == "eval"]
    assert set(evals[-1]) >= {"ap@inf", "ap@1", "ap@0.5", "ap@0.25", "ap@0.125"}
    assert all(0.0 <= evals[-1][k] <= 1.0 for k in ("ap@inf", "ap@1"))
    assert "huber" in read_metrics(run_dir)[0]
    code, captured = run(["eval", "--checkpoint", str(run_dir), "--no-progress"], capsys)
    assert code == 0 and json.loads(captured.out)["ap@inf"] == pytest.approx(evals[-1]["ap@inf"], abs=1e-9)
    code, _ = run(["visualize", "--checkpoint", str(run_dir), "--num", "2", "--out", str(tmp_path / "sp.png")], capsys)
    assert code == 0 and (tmp_path / "sp.png").stat().st_size > 1000


def test_generate_tfrecord_then_convert_gives_the_generated_arrays(tmp_path, capsys):
    from slotattn.data.store import open_store

    record = tmp_path / "tetro.tfrecords"
    code, captured = run(["generate", "tetrominoes", "--num", "12", "--seed", "3", "--chunk", "5",
                          "--format", "tfrecord", "--out", str(record), "--no-progress"], capsys)
    assert code == 0 and "TFRecord" in captured.out
    code, _ = run(["convert", "multi_object", "--name", "tetrominoes", "--input", str(record),
                   "--out", str(tmp_path / "converted"), "--no-progress"], capsys)
    assert code == 0
    run(["generate", "tetrominoes", "--num", "12", "--seed", "3", "--chunk", "5", "--out", str(tmp_path / "direct"),
         "--no-progress"], capsys)
    converted, direct = open_store(tmp_path / "converted"), open_store(tmp_path / "direct")
    for key in direct.arrays:
        np_equal = (converted.arrays[key] == direct.arrays[key]).all()
        assert np_equal, key


def test_multi_dsprites_variants_generate_and_train(tmp_path, capsys):
    from slotattn.data.store import open_store

    code, _ = run(["generate", "multi_dsprites", "--variant", "colored_on_colored", "--num", "6", "--out",
                   str(tmp_path / "md"), "--no-progress"], capsys)
    store = open_store(tmp_path / "md")
    assert code == 0 and store.arrays["mask"].shape[1:] == (5, 64, 64, 1) and store.meta["variant"] == "colored_on_colored"
    overrides = ["data.name=multi_dsprites", "data.variant=binarized", "model.resolution=[64, 64]",
                 "model.decoder_broadcast_size=[64, 64]", "train.steps=2"]
    code, _ = run(["train", "--config", "debug", "--run-dir", str(tmp_path / "run"), "--no-progress",
                   *[x for o in overrides for x in ("--set", o)]], capsys)
    assert code == 0
    code, captured = run(["train", "--config", "debug", "--run-dir", str(tmp_path / "bad"), "--set",
                          "data.name=multi_dsprites", "--set", "data.variant=plaid", "--no-progress"], capsys)
    assert code == 2 and "has no variant 'plaid'" in captured.err


def test_tensorboard_mirrors_the_metrics(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _ = run(["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress", "--set",
                   "train.tensorboard=true", "--set", "train.steps=3"], capsys)
    assert code == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    assert {"train/loss", "train/lr", "eval/fg_ari"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]


def test_checkpoint_of_an_incompatible_model_is_a_clear_error(trained, tmp_path, capsys):
    from slotattn.training.checkpoint import save_checkpoint

    state = load_checkpoint(latest_checkpoint(trained))
    state["config"]["model"]["slot_size"] = 32  # weights are for 16
    save_checkpoint(tmp_path, {k: v for k, v in state.items() if k not in ("step", "format_version")}, 1, 1)
    code, captured = run(["eval", "--checkpoint", str(tmp_path), "--no-progress"], capsys)
    assert code == 2 and "weights do not match the model its config builds" in captured.err
    state["config"]["model"]["num_slotz"] = 3
    save_checkpoint(tmp_path, {k: v for k, v in state.items() if k not in ("step", "format_version")}, 2, 1)
    code, captured = run(["eval", "--checkpoint", str(tmp_path), "--no-progress"], capsys)
    assert code == 2 and "does not fit this version" in captured.err and "num_slots" in captured.err


def test_generate_clevr_in_the_clevr_with_masks_format(tmp_path, capsys):
    from slotattn.data.multi_object import read_multi_object

    path = tmp_path / "clevr_with_masks.tfrecords"
    code, _ = run(["generate", "clevr", "--format", "tfrecord", "--num", "2", "--max-objects", "4",
                   "--out", str(path), "--no-progress"], capsys)
    assert code == 0
    examples = list(read_multi_object(path, "clevr_with_masks"))
    assert len(examples) == 2 and examples[0]["image"].shape == (240, 320, 3)
    assert all(3 <= int(e["visibility"][1:].sum()) <= 4 for e in examples)


@pytest.mark.slow
def test_demo_recipe_visibly_learns_in_a_few_minutes(tmp_path, capsys):
    """Real learning: FG-ARI after ~4 CPU minutes is clearly above the untrained model's."""
    run_dir = tmp_path / "run"
    code, _ = run(["train", "--config", "demo", "--run-dir", str(run_dir), "--no-progress", "--set",
                   "train.max_minutes=4", "--set", "train.eval_every=100000", "--set", "data.num_eval=128"], capsys)
    assert code == 0
    trained = [r for r in read_metrics(run_dir) if r["split"] == "eval"][-1]["fg_ari"]
    untrained_dir = tmp_path / "untrained"
    run(["train", "--config", "demo", "--run-dir", str(untrained_dir), "--no-progress", "--set", "train.steps=1",
         "--set", "data.num_eval=128"], capsys)
    untrained = [r for r in read_metrics(untrained_dir) if r["split"] == "eval"][-1]["fg_ari"]
    assert trained > untrained + 0.2, (trained, untrained)


def test_eval_with_more_slots_and_iterations_at_test_time(trained, capsys):
    code, captured = run(["eval", "--checkpoint", str(trained), "--no-progress", "--num", "8",
                          "--num-slots", "7", "--num-iterations", "5"], capsys)
    result = json.loads(captured.out)
    assert code == 0 and result["num_slots"] == 7 and result["num_iterations"] == 5
    code, captured = run(["eval", "--checkpoint", str(trained), "--no-progress", "--num", "8"], capsys)
    default = json.loads(captured.out)
    assert (default["num_slots"], default["num_iterations"]) == (4, 3)
    assert default["ari"] != result["ari"]


def test_a_model_the_config_cannot_build_is_a_config_error(tmp_path, capsys):
    code, captured = run(["train", "--config", "tetrominoes", "--run-dir", str(tmp_path / "r"), "--no-progress",
                          "--set", "model.resolution=[64, 64]"], capsys)
    assert code == 2 and "decoder produces (35, 35) images" in captured.err and "Traceback" not in captured.err


def test_import_tf_checkpoint_then_load_and_evaluate(tmp_path, capsys):
    ckpt = Path(__file__).parent / "fixtures" / "tf_checkpoints" / "sp_full" / "ckpt-1"
    out = tmp_path / "official.safetensors"
    code, captured = run(["import-tf", "--checkpoint", str(ckpt), "--task", "set_prediction", "--out", str(out)],
                         capsys)
    assert code == 0 and out.exists()
    from slotattn import SlotAttentionSetPredictor, from_pretrained

    model = from_pretrained(out)
    assert isinstance(model, SlotAttentionSetPredictor) and model.num_slots == 10
    code, captured = run(["import-tf", "--checkpoint", str(ckpt), "--task", "object_discovery", "--out",
                          str(tmp_path / "x.safetensors")], capsys)
    assert code == 2 and "set_prediction" in captured.err


def test_study_and_report_commands(tmp_path, capsys):
    code, _ = run(["study", "baselines", "--scale", "smoke", "--out", str(tmp_path / "study"), "--seeds", "1",
                   "--no-progress", "--set", "train.steps=2", "--set", "data.num_eval=8"], capsys)
    assert code == 0 and (tmp_path / "study" / "results.json").exists()
    code, _ = run(["report", str(tmp_path / "study"), "--out", str(tmp_path / "report")], capsys)
    assert code == 0 and "slot_mlp" in (tmp_path / "report" / "report.md").read_text()


def test_bf16_mixed_precision_trains_close_to_fp32(trained, tmp_path, capsys):
    run_dir = tmp_path / "bf16"
    code, _ = run(["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress", "--set",
                   "train.precision=bf16"], capsys)
    assert code == 0
    bf16, fp32 = train_losses(run_dir), train_losses(trained)
    assert all(math.isfinite(x) for x in bf16)
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=0.05)  # different arithmetic, same learning


@pytest.mark.parametrize("avx512_bf16, amx, kernels, expected", [
    (False, False, "AVX512", "fp32"),  # AVX-512 without BF16 (Skylake/Cascade Lake): oneDNN would emulate bf16
    (True, False, "AVX512", "bf16"),  # AVX512-BF16 (Cooper Lake, Zen 4)
    (False, True, "AVX512", "bf16"),  # AMX (Sapphire Rapids)
    (True, True, "AVX2", "fp32"),  # bf16 hardware but AVX2 kernels forced (ATEN_CPU_CAPABILITY=avx2)
    (False, False, "AVX2", "fp32"),  # an AVX2-only CPU
])
def test_auto_precision_on_cpu_is_bf16_only_with_native_bf16_instructions(monkeypatch, avx512_bf16, amx, kernels,
                                                                          expected):
    from slotattn.training.engine import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: kernels)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)  # true on any AVX-512 CPU
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"  # as asked


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cuda_does_not_count_emulated_bf16(monkeypatch, native, expected):
    """torch.cuda.is_bf16_supported() counts emulation by default (a V100 or T4 says True); auto asks without it."""
    from slotattn.training.engine import resolve_precision

    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return True if including_emulation else native  # a pre-Ampere GPU: emulated only

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert resolve_precision("auto", torch.device("cuda")) == expected and asked == [False]


def test_auto_precision_is_fp32_with_the_kernels_of_an_avx2_only_cpu():
    """Under ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 (how benchmarks/precision_speed.py measured an
    AVX2-only CPU, where bf16 trained 7-10x slower) a process dispatches to AVX2 kernels and `auto` is float32."""
    code = ("import torch; from benchmarks.precision_speed import isa; from slotattn.training.engine import "
            "resolve_precision; print(isa()['aten_cpu_capability'], resolve_precision('auto', torch.device('cpu')))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["AVX2", "fp32"]


@pytest.mark.slow
def test_compiled_training_matches_eager(trained, tmp_path, capsys):
    """train.compile=true: the same losses as the eager float32 run up to kernel rounding (about a minute of
    compiling on a CPU core, hence opt-in)."""
    run_dir = tmp_path / "compiled"
    # A subprocess: the session's run-time shape checker (jaxtyping hook) cannot check dynamo's fake tensors.
    done = subprocess.run([sys.executable, "-m", "slotattn", "train", "--config", "debug", "--run-dir", str(run_dir),
                           "--no-progress", "--set", "train.precision=fp32", "--set", "train.compile=true"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert train_losses(run_dir) == pytest.approx(train_losses(trained), rel=1e-4)


def test_eval_refuses_model_settings_instead_of_ignoring_them(trained, capsys):
    """The model is rebuilt from the checkpoint's config: a model.* override would change nothing, so it is refused."""
    code, captured = run(["eval", "--checkpoint", str(trained), "--no-progress", "--set", "model.num_slots=6"], capsys)
    assert code == 2
    assert "--set model.num_slots=6: the model is rebuilt from the checkpoint's own config" in captured.err
    assert "--num-slots / --num-iterations" in captured.err


def test_init_from_starts_from_the_given_weights_and_a_resume_keeps_its_own(trained, tmp_path):
    common = ["--config", "debug", "--no-progress", "--set", "train.precision=fp32",
              "--set", f"train.init_from={trained}", "--set", "train.eval_every=100", "--set", "train.vis_every=100"]
    # lr ~0: after one step the weights are still the source's (they are not the fresh initialisation's)
    tiny = tmp_path / "tiny"
    assert cli.main(["train", "--run-dir", str(tiny), *common, "--set", "train.steps=1",
                     "--set", "optim.learning_rate=1e-30"]) == 0
    source = load_checkpoint(latest_checkpoint(trained))["model"]
    tuned = load_checkpoint(latest_checkpoint(tiny))["model"]
    fresh = build_model(load_config("debug")).state_dict()
    assert tuned.keys() == source.keys()
    for key in source:
        torch.testing.assert_close(tuned[key], source[key], rtol=0, atol=1e-20, msg=key)
    assert any(not torch.equal(fresh[key], source[key]) for key in source)
    # a resumed fine-tuning run continues from its checkpoint, not from train.init_from again
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert cli.main(["train", "--run-dir", str(whole), *common, "--set", "train.steps=3"]) == 0
    assert cli.main(["train", "--run-dir", str(split), *common, "--set", "train.steps=2"]) == 0
    assert cli.main(["train", "--run-dir", str(split), "--resume", "--no-progress", "--set", "train.steps=3"]) == 0
    assert train_losses(split) == train_losses(whole)
    assert train_losses(whole)[0] < train_losses(trained)[0]  # it started trained


def test_init_from_weights_of_another_model_is_a_clear_error(trained, tmp_path, capsys):
    code, captured = run(["train", "--config", "debug", "--run-dir", str(tmp_path), "--no-progress",
                          "--set", f"train.init_from={trained}", "--set", "model.slot_size=32"], capsys)
    assert code == 2 and "holds a different model" in captured.err and "model.slot_size (16 there, 32 here)" in captured.err
    code, captured = run(["train", "--config", "debug", "--run-dir", str(tmp_path), "--no-progress",
                          "--set", "train.init_from=no_such_weights"], capsys)
    assert code == 2 and "not the name of shipped weights" in captured.err
