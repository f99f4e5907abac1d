"""The README as a new user reads it: every `slotattn` command parses, the Command line block runs (at debug scale,
in a temp dir), the Python snippets run, and every config key it names exists."""

import dataclasses
import itertools
import json
import re
import shlex
from pathlib import Path

import pytest
import torch

import slotattn
from slotattn import cli
from slotattn.training.checkpoint import latest_checkpoint
from slotattn.config import Config, load_config

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = ("model", "data", "optim", "train")
FILE_SUFFIXES = {"py", "pt", "safetensors", "json", "yaml"}

# Inline mentions that name a command without being one; each must still be in the README (stale entries fail).
NOT_COMMANDS = {
    "slotattn visualize",  # "`slotattn visualize` draws each slot's attention"
    "slotattn eval/visualize/export --checkpoint",  # "... accept these names"
    "slotattn generate ... --format tfrecord",  # "... writes that format"
}
# Upper-case placeholders of int-valued arguments, and the values they stand for here.
INT_PLACEHOLDERS = {"N": "10", "K": "7", "T": "3"}
# Debug scale for the Command line block: a few steps and scenes, frequent evaluations and checkpoints.
DEBUG = ["train.steps=2", "train.batch_size=4", "train.eval_batch_size=8", "data.num_eval=8", "train.log_every=1",
         "train.eval_every=2", "train.ckpt_every=2", "train.vis_every=100", "optim.warmup_steps=1"]


def readme() -> str:
    return README.read_text()


def code_blocks(text: str, lang: str) -> list[tuple[str, str]]:
    """(heading above it, body) of every fenced block of language `lang`."""
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        if match.group(1) == lang:
            headings = re.findall(r"^## (.+)$", text[: match.start()], re.MULTILINE)
            blocks.append((headings[-1] if headings else "", match.group(2)))
    return blocks


def block_commands(body: str) -> list[str]:
    """The `slotattn ...` command lines of a shell block (continuations joined, comments dropped); `torchrun ... -m
    slotattn ...` counts as its `slotattn ...` part."""
    lines = re.sub(r"\\\n\s*", " ", body).splitlines()
    commands = []
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line.startswith("slotattn "):
            commands.append(line)
        elif " -m slotattn " in line:
            commands.append("slotattn " + line.split(" -m slotattn ", 1)[1])
    return commands


def inline_commands(text: str) -> list[str]:
    """The `slotattn ...` code spans of the prose (line breaks inside a span become spaces)."""
    spans = [" ".join(m.group(1).split()) for m in re.finditer(r"(?<!`)`(slotattn [^`]+)`(?!`)", text)]
    return [s for s in spans if s not in NOT_COMMANDS]


def expand(command: str) -> list[list[str]]:
    """argv lists for one documented command: `{a,b}`, `a|b` and `[--flag]` give every alternative, the sub-command
    `a/b` each of a and b, and int placeholders (N, K, T) numbers."""
    choices = []
    for i, token in enumerate(shlex.split(command)[1:]):
        if token.startswith("{") and token.endswith("}"):
            choices.append(token[1:-1].split(","))
        elif token.startswith("[") and token.endswith("]"):
            choices.append([token[1:-1], None])
        elif "|" in token:
            choices.append(token.split("|"))
        elif i == 0 and "/" in token:
            choices.append(token.split("/"))
        else:
            choices.append([INT_PLACEHOLDERS.get(token, token)])
    return [[t for t in combo if t is not None] for combo in itertools.product(*choices)]


def demo_transcript() -> str:
    """The README's transcript of `make demo`: the plain block that starts with the demo's first line."""
    (body,) = [body for _, body in code_blocks(readme(), "") if body.startswith("[1/4] generating")]
    return body


def masked(text: str) -> list[str]:
    return [re.sub(r"-?\d+(\.\d+)?", "#", line.strip()) for line in text.strip().splitlines()]


def all_commands() -> list[str]:
    text = readme()
    return [c for _, body in code_blocks(text, "bash") for c in block_commands(body)] + inline_commands(text)


def test_the_extractors_find_the_commands():
    commands = all_commands()
    assert len(commands) >= 15
    assert "slotattn demo --minutes 5" in commands and any(c.startswith("slotattn convert clevr6") for c in commands)
    assert any(c.startswith("slotattn train --config configs/clevr6.yaml --run-dir") for c in commands)  # torchrun
    assert expand("slotattn study slots|baselines --scale {smoke,cpu} --out DIR [--x]")[:2] == [
        ["study", "slots", "--scale", "smoke", "--out", "DIR", "--x"],
        ["study", "slots", "--scale", "smoke", "--out", "DIR"],
    ]
    assert expand("slotattn eval --num N") == [["eval", "--num", "10"]]
    text = readme()
    missing = [c for c in NOT_COMMANDS if c not in " ".join(text.split())]
    assert not missing, f"stale NOT_COMMANDS entries (no longer in the README): {missing}"


@pytest.mark.parametrize("command", all_commands())
def test_every_documented_command_parses(command, capsys, monkeypatch):
    monkeypatch.chdir(README.parent)  # recipes are named as from the repository root
    parser = cli.build_parser()
    for argv in expand(command):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command {' '.join(argv)!r} does not parse: {capsys.readouterr().err.strip()}")
        if args.command in {"train", "demo"}:  # the recipe exists and every --set key is a config key
            load_config(args.config if args.command == "train" else "demo", args.overrides)


def test_every_config_key_the_readme_names_exists():
    fields = {name: {f.name for f in dataclasses.fields(getattr(Config(), name))} for name in SECTIONS}
    spans = re.findall(r"(?<!`)`([^`]+)`", readme())
    named = {(m.group(1), m.group(2)) for span in spans
             for m in re.finditer(rf"(?<![\w./])({'|'.join(SECTIONS)})\.([a-z_]+)\b(?!\.)", span)
             if m.group(2) not in FILE_SUFFIXES}  # not slotattn.data.store, not train.py or model.safetensors
    assert len(named) >= 10
    unknown = sorted(f"{s}.{f}" for s, f in named if f not in fields[s])
    assert not unknown, f"the README names config keys that do not exist: {unknown}"


def test_the_command_line_block_runs_as_written_at_debug_scale(tmp_path, monkeypatch, capsys):
    (block,) = [body for heading, body in code_blocks(readme(), "bash") if heading == "Command line"]
    commands = [shlex.split(c)[1:] for c in block_commands(block)]
    assert [c[0] for c in commands] == ["generate", "train", "train", "eval", "visualize", "export", "demo"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(Path(slotattn.__file__).parent / "configs")  # the repository's ./configs
    for argv in commands:
        if argv[0] in {"generate", "eval"}:  # fewer scenes
            argv = [{"60000": "24", "320": "8"}.get(a, a) for a in argv] + ["--no-progress"]
        elif argv[0] == "train":
            steps = ["--set", "train.steps=4"] if "--resume" in argv else []
            argv = [*argv, *itertools.chain(*(["--set", d] for d in DEBUG)), *steps, "--no-progress"]
        elif argv[0] == "demo":
            argv = [*argv, "--num-train", "24", *itertools.chain(*(["--set", d] for d in DEBUG)), "--no-progress"]
        capsys.readouterr()
        assert cli.main(argv) == 0, argv
        if argv[0] == "eval":
            assert -1 <= json.loads(capsys.readouterr().out)["fg_ari"] <= 1
        if argv[0] == "demo":  # the README's transcript is what the demo prints, up to the numbers
            assert masked(capsys.readouterr().out) == masked(demo_transcript())
    assert (tmp_path / "data" / "tetrominoes" / "meta.json").exists()
    assert latest_checkpoint(tmp_path / "runs" / "tetro").name == "step_00000004.pt"  # resumed from step 2
    assert (tmp_path / "fig.png").stat().st_size > 0 and (tmp_path / "demo_run" / "decomposition.png").exists()
    assert (tmp_path / "demo_run" / "pretrained.png").stat().st_size > 0  # the shipped weights on the same scenes
    model = slotattn.from_pretrained(tmp_path / "model.safetensors")
    assert not model.training
    assert model.num_slots == 4 and model.resolution == (35, 35)  # the tetrominoes recipe


def test_the_python_snippets_run():
    # Names the snippets use without defining them, at small sizes.
    namespace = {"x": torch.randn(2, 16, 64), "my_slots": torch.randn(2, 7, 64),
                 "image": torch.rand(1, 3, 128, 128) * 2 - 1}
    blocks = [body for _, body in code_blocks(readme(), "python")]
    assert len(blocks) >= 4
    for body in blocks:
        exec(compile(body, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert namespace["slots"].shape == (2, 7, 64) and namespace["attn"].shape == (2, 7, 16)
    assert namespace["out"].preds.shape == (1, 10, 19)  # the last autoencoder/set-prediction snippet wins
