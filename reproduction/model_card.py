"""Ship a trained model as named weights: export, evaluate, draw, and write its model card from one JSON.

    python -m reproduction.model_card ship tetrominoes \
        --checkpoint benchmarks/results/reproduce/resume/tetrominoes_cpu_clip1_s0 \
        --row benchmarks/results/reproduce/tetrominoes.json \
        --curve benchmarks/results/reproduce/tetrominoes_cpu_clip1_s0.json \
        --trained-on "one core of a 2-core Intel Xeon VM (AMX)"
    python -m reproduction.model_card render     # rewrite docs/models.md's generated blocks from the committed JSON

`ship` writes src/slotattn/weights/NAME.safetensors + NAME.json (the checkpoint's weights and config),
docs/pretrained_NAME.png and benchmarks/results/pretrained/NAME.json: the file's size and sha256, the training
behind it as the reproduction row counts it (steps, images, minutes, differences from the paper's recipe), and
FG-ARI / ARI / mBO at T = 3, 5, 7 on the held-out split and on scenes of an unrelated seed, measured on the
exported file. `render` (also run by `ship`) rewrites the block between the model's markers in docs/models.md.
tests/test_pretrained.py checks that the card is what `render` writes, that the hash is the shipped file's, and
that the shipped model still segments fresh scenes as its JSON says.
"""

import argparse
import hashlib
import json
import re
import shlex
import sys
import time
from pathlib import Path

import torch

from slotattn import run
from slotattn.pretrained import WEIGHTS_DIR, load_model, resolve_checkpoint
from slotattn.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "docs" / "models.md"
RESULTS = ROOT / "benchmarks" / "results" / "pretrained"
ITERATIONS = (3, 5, 7)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- model-card {name}: begin (python -m reproduction.model_card render) -->", f"<!-- model-card {name}: end -->"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure(name: str, num: int, unrelated_seed: int) -> list[dict]:
    """Metrics of the shipped file at each test-time T on the held-out split and on an unrelated seed's scenes."""
    rows = []
    for seed in (None, unrelated_seed):
        for t in ITERATIONS:
            overrides = [f"data.eval_seed={seed}"] if seed is not None else []
            result = run.evaluate(name, num=num, num_iterations=t, overrides=overrides)
            rows.append({"eval_seed": seed, "num_iterations": t, "num": num,
                         **{k: result[k] for k in ("fg_ari", "ari", "mbo")}})
    return rows


def ship(args: argparse.Namespace) -> Path:
    row = json.loads(Path(args.row).read_text())
    ckpt = resolve_checkpoint(args.checkpoint)
    step = int(load_checkpoint(ckpt)["step"])
    if row["steps"] != step:
        sys.exit(f"{args.row} describes step {row['steps']} but {ckpt} is step {step}: write the row of this "
                 "checkpoint first (python -m reproduction.update_row)")
    weights = WEIGHTS_DIR / f"{args.name}.safetensors"
    run.export(ckpt, weights, overwrite=True)  # shipping again replaces the shipped file
    figure = ROOT / "docs" / f"pretrained_{args.name}.png"
    run.visualize(args.name, figure, num=args.figure_rows)
    cfg = row["config"]
    curve = json.loads(Path(args.curve).read_text())["curve"] if args.curve else []
    model, _ = load_model(args.name)
    card = {
        "name": args.name, "file": str(weights.relative_to(ROOT)), "bytes": weights.stat().st_size,
        "sha256": sha256(weights), "parameters": sum(p.numel() for p in model.parameters()),
        "source_checkpoint": {"step": step, "sha256": sha256(ckpt)},
        "row": str(Path(args.row).resolve().relative_to(ROOT)), "recipe": row["recipe"],
        "steps": step, "num_iterations": cfg["model"]["num_iterations"], "batch_size": cfg["train"]["batch_size"], "images_seen": row["images_seen"],
        "minutes": row["minutes"], "started_from": row.get("started_from"), "precision": row["precision"],
        "trained_on": args.trained_on, "overrides": row["overrides"], "paper": row["paper"],
        "paper_source": row["paper_source"], "data_eval_seed": cfg["data"]["eval_seed"],
        "curve": [{k: p[k] for k in ("step", "fg_ari")} for p in curve],
        "evaluation": measure(args.name, args.num, args.unrelated_seed),
        "measured": {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                     "command": "python -m reproduction.model_card " + shlex.join(sys.argv[1:])},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(card, indent=1) + "\n")
    return out


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def evaluation_cell(card: dict) -> str:
    by = {(e["eval_seed"], e["num_iterations"]): e for e in card["evaluation"]}
    card_t = card["num_iterations"]
    main = by[(None, card_t)]
    others = [s for s in dict.fromkeys(e["eval_seed"] for e in card["evaluation"]) if s is not None]
    num = main["num"]
    text = (f"**FG-ARI {_fmt(main['fg_ari'])}** (ARI {_fmt(main['ari'])}, mBO {_fmt(main['mbo'])}) on the {num} "
            f"held-out scenes (`data.eval_seed` {card['data_eval_seed']}) at T = {card_t}")
    more = [f"T = {t}: {_fmt(by[(None, t)]['fg_ari'])}" for t in ITERATIONS if t != card_t and (None, t) in by]
    if more:
        text += "; " + ", ".join(more)
    for seed in others:
        text += (f". On {num} scenes of an unrelated seed ({seed}): " +
                 ", ".join(f"T = {t}: {_fmt(by[(seed, t)]['fg_ari'])}" for t in ITERATIONS if (seed, t) in by))
    return text


def training_cell(card: dict, cfg: dict) -> str:
    optim = cfg["optim"]
    text = (f"{card['steps']:,} steps × batch {card['batch_size']}"
            + (f" after {card['started_from']['what']} ({card['started_from']['images']:,} images, "
               f"{card['started_from']['minutes']:g} minutes)" if card["started_from"] else "")
            + f": **{card['images_seen']:,} images in {card['minutes']:g} minutes** in all"
            + (f" on {card['trained_on']}" if card["trained_on"] else "")
            + f", {card['precision']}. Adam {optim['learning_rate']:g}, linear warm-up {optim['warmup_steps']:,} "
            f"steps, ×{optim['decay_rate']:g} every {optim['decay_steps']:,} steps. Recipe and its differences from the "
            f"paper's `configs/{card['recipe']}.yaml`: " + "; ".join(card["overrides"])
            + (f"; stopped at step {card['steps']:,} of {cfg['train']['steps']:,}" if card["steps"] <
               cfg["train"]["steps"] else "")
            + ". The final checkpoint is shipped (no selection on the evaluation split).")
    return text


def architecture_cell(card: dict, cfg: dict) -> str:
    m = cfg["model"]
    res = "×".join(map(str, m["resolution"]))
    enc = f"{len(m['encoder_channels'])} × {m['encoder_channels'][0]}-channel {m['encoder_kernel_size']}×{m['encoder_kernel_size']}"
    dec = (f"{len(m['decoder_channels'])} × {m['decoder_channels'][0]}-channel {m['decoder_kernel_size']}×"
           f"{m['decoder_kernel_size']} + {m['decoder_out_kernel_size']}×{m['decoder_out_kernel_size']} to RGB + alpha")
    return (f"the paper's model of `configs/{card['recipe']}.yaml`: {res} input, {enc} encoder, K = {m['num_slots']} "
            f"slots of {m['slot_size']}, T = {m['num_iterations']} iterations, spatial broadcast decoder at "
            f"{'×'.join(map(str, m['decoder_broadcast_size']))} ({dec}); {card['parameters']:,} parameters, "
            f"`model.init = {m['init']}`")


def curve_line(card: dict) -> str:
    points = card["curve"]
    if not points:
        return ""
    keep = points if len(points) <= 10 else [points[round(i * (len(points) - 1) / 9)] for i in range(10)]
    return ("\nFG-ARI on the held-out scenes during the run this checkpoint ends: "
            + ", ".join(f"{p['fg_ari']:.2f} at step {p['step']:,}" for p in keep) + ".\n")


def render_block(card: dict) -> str:
    cfg = json.loads((WEIGHTS_DIR / f"{card['name']}.json").read_text())
    paper = card["paper"]
    rows = [
        ("file", f"`{card['file']}` ({card['bytes'] / 1000:.0f} KB, sha256 `{card['sha256']}`)"),
        ("architecture", architecture_cell(card, cfg)),
        ("training data", f"{card['name']} scenes generated on the fly by `slotattn.data.generators."
                          f"{card['name']}`, training seed {cfg['train']['seed']}"),
        ("training", training_cell(card, cfg)),
        ("evaluation (paper protocol: FG-ARI, first 320 test scenes)", evaluation_cell(card)),
        ("paper (500k steps × 64, GPU)", f"FG-ARI {paper[0]} ± {paper[1]} ({card['paper_source']})"),
    ]
    table = "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    begin, end = markers(card["name"])
    return (f"{begin}\n{table}{curve_line(card)}\nMeasured {card['measured']['date']} (torch "
            f"{card['measured']['torch']}) by `{card['measured']['command']}`; numbers from "
            f"`benchmarks/results/pretrained/{card['name']}.json`.\n{end}")


def render(text: str) -> str:
    """docs/models.md with every generated block rewritten from its committed JSON."""
    for path in sorted(RESULTS.glob("*.json")):
        card = json.loads(path.read_text())
        begin, end = markers(card["name"])
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise SystemExit(f"{CARD} has no block for {card['name']}: add the lines\n{begin}\n{end}")
        text = pattern.sub(lambda _: render_block(card), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ship", help="export a checkpoint as shipped weights, measure it, write its card")
    s.add_argument("name")
    s.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its newest checkpoint)")
    s.add_argument("--row", required=True, help="the reproduction row JSON of the same checkpoint (training facts)")
    s.add_argument("--curve", help="reproduction.curve JSON of the run (learning curve line)")
    s.add_argument("--trained-on", default="", help="where it trained, in words (the row names the evaluator)")
    s.add_argument("--num", type=int, default=320)
    s.add_argument("--unrelated-seed", type=int, default=20261204)
    s.add_argument("--figure-rows", type=int, default=6)
    sub.add_parser("render", help="rewrite docs/models.md's generated blocks from benchmarks/results/pretrained")
    args = parser.parse_args(argv)
    if args.command == "ship":
        print(f"wrote {ship(args)}")
    CARD.write_text(render(CARD.read_text()))
    print(f"rewrote the generated model cards in {CARD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
