"""The `slotattn` command line: train, evaluate, draw, export and import models; generate and convert data; studies,
paper rows, reports and a five-minute demo.

Parse, call the run layer (`slotattn.run`, `slotattn.studies`, the data converters), print. Library modules never
print; this one configures logging and owns the progress bars.
"""

import argparse
import json
import logging
import os
import sys
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path

import numpy as np

from slotattn import reproduce, run
from slotattn.config import ConfigError, Config, from_dict, load_config, parse_override, recipe_names
from slotattn.data.build import GENERATORS, VARIANTS, generate_to_arrays
from slotattn.data.clevr import OFFICIAL_SPLITS, TASKS, convert_clevr
from slotattn.data.clevr6 import convert_clevr6
from slotattn.data.errors import DataError
from slotattn.data.generators.clevr import generate_clevr_batch, write_clevr_dataset
from slotattn.data.multi_object import DATASETS, convert_multi_object, write_multi_object
from slotattn.studies import SCALES, STUDIES, StudyError, run_study
from slotattn.tf_import import import_tf_to_safetensors
from slotattn.training.checkpoint import CheckpointError, latest_checkpoint
from slotattn.training.engine import NonFiniteLossError, TrainingInterrupted, resolve_device, resolve_precision
from slotattn.training.rundir import describe_run
from slotattn.training.runlog import describe_device, read_metrics

log = logging.getLogger("slotattn")


def package_version() -> str:
    try:
        return _dist_version("slotattn")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def _tqdm(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, **kwargs)


CHECKPOINT_HELP = ("a checkpoint file, a run directory (its newest checkpoint), an exported .safetensors, or the name "
                   "of shipped weights (docs/models.md)")


class TrainingBar:
    """The training progress bar (tqdm), made on the first step: `slotattn.run.train`'s progress callback."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.bar = enabled, None

    def __call__(self, step: int, total: int, values: dict[str, float] | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = _tqdm(total=total, initial=step - 1, desc="train")
        if values is not None:
            self.bar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{values['lr']:.2e}",
                                 img_s=f"{values['img_per_s']:.0f}")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _train(cfg: Config, run_dir: Path, resume: bool, progress: bool, overwrite: bool = False) -> dict[str, float]:
    bar = TrainingBar(progress and int(os.environ.get("RANK", "0")) == 0)
    try:
        return run.train(cfg, run_dir, resume=resume, overwrite=overwrite, progress=bar)
    finally:
        bar.close()


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def cmd_train(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir) if args.run_dir else None
    overrides = [*args.overrides, *([f"train.device={args.device}"] if args.device else [])]
    if args.resume:
        if run_dir is None:
            raise ConfigError("--resume needs --run-dir (the run to continue)")
        if args.config and (latest_checkpoint(run_dir) is not None or (run_dir / "config.yaml").exists()):
            raise ConfigError(f"--resume continues {run_dir} with the config it was trained with; drop --config "
                              f"(--set may change {', '.join(run.SAFE_ON_RESUME)})")
        if args.overwrite:
            raise ConfigError("--resume continues a run and --overwrite replaces it: pass one of them")
        cfg = run.resume_config(run_dir, args.config, overrides)
        what = f"continuing {run_dir}"
    else:
        if not args.config:
            raise ConfigError(f"train needs --config RECIPE (one of {', '.join(recipe_names())}, or a YAML file), "
                              "or --resume --run-dir RUN")
        cfg = load_config(args.config, overrides)
        what = f"recipe {args.config}"
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if _is_main():
        device = resolve_device(cfg.train.device)
        print(f"training: {what}, {cfg.train.steps:,} steps of batch {cfg.train.batch_size} on "
              f"{describe_device(device)}, {PRECISION_NAMES[resolve_precision(cfg.train.precision, device)]}; run "
              f"directory {run_dir}", flush=True)
    metrics = _train(cfg, run_dir, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    if _is_main():
        print(f"run directory: {run_dir}")
        print("final evaluation: " + json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        print(_metric_table(metrics))
    return 0


def _metric_table(metrics: dict[str, float]) -> str:
    """A Markdown table of metrics (x100, as the paper reports them), e.g. AP at every distance threshold."""
    keys = list(metrics)
    return "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n| " + " | ".join(
        f"{100 * metrics[k]:.1f}" for k in keys) + " |"


def cmd_eval(args: argparse.Namespace) -> int:
    def progress(batches):
        return batches if args.no_progress else _tqdm(batches, desc="eval")

    if args.num is not None and args.num < 1:
        raise ConfigError(f"--num must be at least 1 (scenes to score), got {args.num}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # before the evaluation, not after it
    result = run.evaluate(args.checkpoint, data=args.data, num=args.num, num_slots=args.num_slots,
                          num_iterations=args.num_iterations, device=args.device, overrides=args.overrides,
                          progress=progress)
    print(json.dumps(result, indent=2))
    metrics = {k: v for k, v in result.items() if k not in run.EVAL_FIELDS}
    print(_metric_table(metrics), file=sys.stderr)
    print(f"scored {result['num_scenes']:,} held-out scenes", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    path = run.visualize(args.checkpoint, args.out, num=args.num, data=args.data, device=args.device)
    print(f"wrote {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    path, ckpt = run.export(args.checkpoint, args.out, overwrite=args.overwrite)
    print(f"exported {ckpt} -> {path} (+ {path.with_suffix('.json')})")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    fmt = args.format or ("clevr" if args.dataset == "clevr" else "store")
    if args.dataset == "clevr" and fmt == "tfrecord":  # DeepMind's clevr_with_masks format, rendered
        def scenes():
            for i, start in enumerate(range(0, args.num, args.chunk)):
                yield generate_clevr_batch(min(args.chunk, args.num - start), np.random.default_rng([args.seed, i]),
                                           args.width, args.height, min_objects=args.min_objects,
                                           max_objects=args.max_objects)

        count = write_multi_object(args.out, "clevr_with_masks", scenes())
        print(f"wrote {count} scenes to {args.out} (clevr_with_masks TFRecord)")
        return 0
    if fmt == "clevr":  # CLEVR v1.0 layout: images/, scenes/ JSON (+ masks/), from the 3-D renderer
        if args.dataset != "clevr":
            raise ConfigError(f"--format clevr writes CLEVR scenes; it does not apply to '{args.dataset}'")
        with _tqdm(total=args.num, desc="render clevr", unit="img", disable=args.no_progress) as bar:
            write_clevr_dataset(args.out, args.num, args.seed, min_objects=args.min_objects,
                                max_objects=args.max_objects, width=args.width, height=args.height,
                                workers=args.workers, progress=bar, split=args.split, overwrite=args.overwrite)
        print(f"wrote {args.num} CLEVR scenes ({args.width}x{args.height}) to {args.out} "
              f"(images/{args.split}, scenes/CLEVR_{args.split}_scenes.json, masks/{args.split})")
        return 0
    variant = getattr(args, "variant", None)
    with _tqdm(total=args.num, desc=f"generate {args.dataset}", unit="img", disable=args.no_progress) as bar:
        if fmt == "tfrecord":
            # The original multi_object_datasets format: GZIP TFRecord of tf.train.Example records.
            def counted():
                for arrays in generate_to_arrays(args.dataset, args.num, args.seed, args.chunk, variant):
                    yield arrays
                    bar.update(len(arrays["image"]))

            count = write_multi_object(args.out, args.dataset, counted(), variant=variant)
            print(f"wrote {count} examples to {args.out} (TFRecord, the original multi_object_datasets format)")
            return 0
        store = run.generate(args.dataset, args.num, args.out, seed=args.seed, variant=variant, chunk=args.chunk,
                             overwrite=args.overwrite, progress=bar, resolution=_resolution(args.resolution))
    print(f"wrote {len(store)} examples to {store.path}")
    return 0


def _resolution(text: str | None) -> tuple[int, int] | None:
    """'64x64' -> (64, 64)."""
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--resolution must be HxW, e.g. 64x64, got {text!r}") from None
    return height, width


def cmd_convert(args: argparse.Namespace) -> int:
    with _tqdm(desc=f"convert {args.source}", unit="img", disable=args.no_progress) as bar:
        if args.source == "multi_object":
            store = convert_multi_object(args.name, args.input, args.out, variant=args.variant, progress=bar,
                                         chunk=args.chunk, overwrite=args.overwrite)
            stores = [store]
        elif args.source == "clevr":
            if args.official and args.split not in OFFICIAL_SPLITS:
                raise ConfigError(f"--official split must be one of {sorted(OFFICIAL_SPLITS)}, got '{args.split}'")
            split = OFFICIAL_SPLITS[args.split] if args.official else {"split": args.split}
            height, width = (int(v) for v in args.frame_size.lower().split("x"))
            stores = [convert_clevr(args.root, out_dir=args.out, task=args.task, progress=bar, frame_size=(height, width),
                                    overwrite=args.overwrite, **split)]
        else:  # clevr6 from clevr_with_masks
            stores = list(convert_clevr6(args.input, args.out, train_size=args.train_size, eval_size=args.eval_size,
                                         filter_before_split=args.filter_before_split, progress=bar,
                                         overwrite=args.overwrite))
    for store in stores:
        print(f"wrote {len(store)} examples to {store.path}")
    return 0


PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16 autocast"}
# The steps a quiet 2-core AVX2-only CPU trains in the demo's 5 minutes, float32: the README's expected FG-ARI on
# such a machine is measured at this many steps (README "What to expect").
DEMO_SLOW_MACHINE_STEPS = 1225


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    data_dir = out / "data"
    if not (data_dir / "meta.json").exists():
        print(f"[1/4] generating {args.num_train} Tetrominoes scenes into {data_dir}")
        with _tqdm(total=args.num_train, desc="generate tetrominoes", unit="img", disable=args.no_progress) as bar:
            store = run.generate("tetrominoes", args.num_train, data_dir, seed=0, overwrite=True, progress=bar)
        print(f"wrote {len(store)} examples to {store.path}")
    cfg = load_config("demo", [f"data.path={data_dir}", *args.overrides])
    if args.minutes is not None:
        cfg = from_dict({"train": {"max_minutes": args.minutes}}, base=cfg)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    print(f"[2/4] training for at most {cfg.train.max_minutes} minutes on {describe_device(device)}, "
          f"{PRECISION_NAMES[precision]} (train.precision={cfg.train.precision}; recipe configs/demo.yaml, "
          f"run directory {out / 'run'})")
    if not args.resume and describe_run(out / "run") is not None:
        print(f"      replacing the earlier demo run in {out / 'run'} (continue it instead with --resume)")
    metrics = _train(cfg, out / "run", resume=args.resume, progress=not args.no_progress, overwrite=not args.resume)
    warning = _demo_steps_warning(out, cfg)
    if warning:
        print(warning)
    print("[3/4] drawing the slot decomposition")
    figure = run.visualize(out / "run", out / "decomposition.png", num=8)
    print(_demo_metrics(metrics, cfg.data.num_eval))
    print(f"figure:      {figure}")
    print(f"metrics:     {out / 'run' / 'metrics.jsonl'}")
    print(f"checkpoints: {out / 'run' / 'checkpoints'}")
    # What the paper's model does after longer training, on the same held-out scenes: the shipped weights.
    print("[4/4] the same scenes with the shipped `tetrominoes` weights (the paper's model trained "
          "longer on one CPU core, docs/models.md)")
    eval_seed = f"data.eval_seed={cfg.data.eval_seed}"  # generated scenes depend on the seed and the batch size
    shipped = run.evaluate("tetrominoes", data=cfg.data.eval_path, num=cfg.data.num_eval, device=cfg.train.device,
                           overrides=[eval_seed, f"train.eval_batch_size={cfg.train.eval_batch_size}"])
    figure = run.visualize("tetrominoes", out / "pretrained.png", num=8, data=cfg.data.eval_path,
                           device=cfg.train.device, overrides=[eval_seed])
    print(_demo_metrics(shipped, cfg.data.num_eval))
    print(f"figure:      {figure}")
    return 0


def _demo_steps_warning(out: Path, cfg: Config) -> str | None:
    """A note when the time limit stopped the demo before the steps the README's expectations are measured at."""
    steps = max(record["step"] for record in read_metrics(out / "run"))
    if cfg.train.max_minutes is None or steps >= min(cfg.train.steps, DEMO_SLOW_MACHINE_STEPS):
        return None
    return (f"note: the time limit stopped training after {steps:,} steps, fewer than the {DEMO_SLOW_MACHINE_STEPS:,} a "
            f"quiet 2-core AVX2-only CPU trains in 5 minutes: expect a lower FG-ARI than the README's (a busy or "
            f"slower machine trains fewer steps). Continue with `slotattn demo --out {out} --resume --minutes 5`.")


def _demo_metrics(metrics: dict, num: int) -> str:
    nan = float("nan")
    return (f"FG-ARI {metrics.get('fg_ari', nan):.3f}  ARI {metrics.get('ari', nan):.3f}  "
            f"mBO {metrics.get('mbo', nan):.3f} on {num} held-out scenes")


def cmd_study(args: argparse.Namespace) -> int:
    path = run_study(args.name, args.scale, args.out, seeds=args.seeds, recipe=args.config,
                     progress=not args.no_progress, overrides=args.overrides)
    print(f"wrote {path}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    bar = TrainingBar(not args.no_progress)
    try:
        row = reproduce.reproduce(args.row, args.out, minutes=args.minutes, device=args.device, data=args.data,
                                  num_eval=args.num_eval, overrides=args.overrides, progress=bar)
    finally:
        bar.close()
    print(json.dumps({k: v for k, v in row.items() if k != "config"}, indent=2))
    print(f"{args.row}: {row['metric']} {100 * row['value']:.1f} % (paper {row['paper'][0]} ± {row['paper'][1]}, "
          f"{row['paper_source']}) at step {row['steps']:,}, {row['images_seen']:,} images, {row['minutes']:g} minutes")
    print(f"wrote {Path(args.out) / (args.row + '.json')}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from slotattn.report import ReportError, write_report  # imports matplotlib: only when a report is drawn

    try:
        path = write_report(args.run_dirs, args.out)
    except ReportError as err:
        raise ConfigError(str(err)) from err  # main prints it as one line
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0


def cmd_import_tf(args: argparse.Namespace) -> int:
    overrides = {}
    for text in args.overrides:
        key, value = parse_override(text)
        if not key.startswith("model."):
            raise ConfigError(f"import-tf: --set takes model.* keys only (what the checkpoint cannot hold), got '{key}'")
        overrides[key.removeprefix("model.")] = value
    path = import_tf_to_safetensors(args.checkpoint, args.task, args.out, **overrides)
    print(f"imported {args.checkpoint} ({args.task}) -> {path} (+ {path.with_suffix('.json')})")
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default where it has one (not for flags, nor for None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if (action.default in (None, False, [], argparse.SUPPRESS) or isinstance(action, argparse._HelpAction)
                or "default" in (action.help or "")):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slotattn", description=" ".join(__doc__.split("\n\n")[0].split()),
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"slotattn {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubParser)
    # One function per subcommand, in the order `slotattn --help` lists them.
    for add_command in (_add_train_command, _add_eval_command, _add_visualize_command, _add_export_command,
                        _add_generate_command, _add_convert_command, _add_study_command, _add_reproduce_command,
                        _add_report_command, _add_import_tf_command, _add_demo_command):
        add_command(sub)
    return parser


class _SubParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for log files)")


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set train.steps=2000 (repeatable)")


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML recipe")
    p.add_argument("--config", help=f"a recipe ({', '.join(recipe_names())}) or a YAML file of overrides of the "
                                    "paper defaults; required unless --resume")
    _add_overrides(p)
    p.add_argument("--run-dir", help="where logs, figures and checkpoints go (default runs/<dataset>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a --run-dir that holds another run, replacing that run's files")
    p.add_argument("--device", help="override train.device: auto | cpu | cuda | cuda:N")
    _add_no_progress(p)
    p.set_defaults(func=cmd_train)


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="ARI, FG-ARI and mBO of a checkpoint over a held-out split")
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    p.add_argument("--data", help="dataset directory (default: the config's eval split, generated if unset)")
    p.add_argument("--num", type=int, help="number of examples (default data.num_eval)")
    p.add_argument("--out", help="also write the metrics as JSON here")
    p.add_argument("--num-slots", type=int, help="slots at test time (default: as trained)")
    p.add_argument("--num-iterations", type=int, help="Slot Attention iterations at test time (default: as trained)")
    p.add_argument("--device", help="override train.device")
    _add_no_progress(p)
    _add_overrides(p)
    p.set_defaults(func=cmd_eval)


def _add_visualize_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("visualize", help="figure of input, reconstruction, slots and segmentation")
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    p.add_argument("--num", type=int, default=8, help="examples (rows)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--data", help="dataset directory (default: the config's eval split)")
    p.add_argument("--device", help="override train.device")
    p.set_defaults(func=cmd_visualize)


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a checkpoint's model as safetensors + config JSON, for inference")
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    p.add_argument("--out", required=True, help="the .safetensors file to write (the suffix is added if missing)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file of that name")
    p.set_defaults(func=cmd_export)


def _add_generate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write a generated dataset to disk")
    p.add_argument("dataset", choices=sorted(GENERATORS))
    p.add_argument("--variant", choices=sorted({v for vs in VARIANTS.values() for v in vs}),
                   help="multi_dsprites: colored_on_grayscale (default, the paper's) | colored_on_colored | binarized")
    p.add_argument("--num", type=int, required=True, help="number of scenes")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (the same seed gives the same scenes)")
    p.add_argument("--out", required=True, help="output directory (store) or file (tfrecord)")
    p.add_argument("--format", choices=["store", "tfrecord", "clevr"],
                   help="store (default): slotattn's memory-mappable directory; tfrecord: the original DeepMind "
                        "file format; clevr (default for clevr): CLEVR v1.0 images + scenes JSON + masks")
    p.add_argument("--min-objects", type=int, default=3, help="clevr: fewest objects per scene")
    p.add_argument("--max-objects", type=int, default=10, help="clevr: most objects per scene")
    p.add_argument("--width", type=int, default=320, help="clevr: image width (CLEVR v1.0: 480)")
    p.add_argument("--height", type=int, default=240, help="clevr: image height (CLEVR v1.0: 320)")
    p.add_argument("--workers", type=int, default=1, help="clevr: rendering processes (output does not depend on it)")
    p.add_argument("--split", default="train", help="clevr: split name in file names")
    p.add_argument("--resolution", metavar="HxW",
                   help="store format: images at HxW instead of the dataset's own (e.g. 64x64 for the CPU-scale "
                        "CLEVR recipes; a whole-factor downsampling for the others)")
    p.add_argument("--chunk", type=int, default=4096, help="scenes generated and written at a time")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset (a store directory, or the CLEVR split of the same name)")
    _add_no_progress(p)
    p.set_defaults(func=cmd_generate)


def _add_convert_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert original dataset files to slotattn's store format, once")
    conv = p.add_subparsers(dest="source", required=True)
    q = conv.add_parser("multi_object", help="a DeepMind multi_object_datasets TFRecord file")
    q.add_argument("--name", required=True, choices=DATASETS)
    q.add_argument("--variant", help="multi_dsprites: binarized | colored_on_grayscale | colored_on_colored; "
                                     "objects_room: train | six_objects | empty_room | identical_color")
    q.add_argument("--input", required=True, help="the .tfrecords file")
    q.add_argument("--chunk", type=int, default=256)
    q = conv.add_parser("clevr", help="CLEVR v1.0 (images/ + scenes/ JSON) for object discovery or set prediction")
    q.add_argument("--root", required=True, help="the CLEVR_v1.0 directory")
    q.add_argument("--split", default="train", help="the split directory (train, val, test)")
    q.add_argument("--official", action="store_true",
                   help=f"--split names an official split {sorted(OFFICIAL_SPLITS)}: train = train minus its first "
                        "512 scenes, train_eval = those 512, validation = val")
    q.add_argument("--task", choices=sorted(TASKS), default="set_prediction")
    q.add_argument("--frame-size", default="320x480", help="HxW of the PNG frames (CLEVR v1.0: 320x480)")
    q = conv.add_parser("clevr6", help="CLEVR6 (train + eval stores) from multi_object_datasets clevr_with_masks")
    q.add_argument("--input", required=True, help="clevr_with_masks_train.tfrecords")
    q.add_argument("--train-size", type=int, default=70_000)
    q.add_argument("--eval-size", type=int, default=320)
    q.add_argument("--filter-before-split", action="store_true",
                   help="apply the <= 6 objects filter before taking the train/eval scenes")
    for q in conv.choices.values():
        q.add_argument("--out", required=True, help="output directory")
        q.add_argument("--overwrite", action="store_true")
        _add_no_progress(q)
    p.set_defaults(func=cmd_convert)


def _add_study_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="train and evaluate one study of the paper's analysis over several seeds")
    p.add_argument("name", choices=sorted(STUDIES))
    p.add_argument("--scale", choices=sorted(SCALES), default="smoke", help="smoke (seconds) | cpu | paper")
    p.add_argument("--out", required=True, help="study directory (runs + results.json); rerun to resume")
    p.add_argument("--seeds", type=int, help="number of seeds (default: the scale's)")
    p.add_argument("--config", help="recipe instead of the scale's, e.g. multi_dsprites")
    _add_overrides(p)
    _add_no_progress(p)
    p.set_defaults(func=cmd_study)


def _add_reproduce_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="a row of the paper's results: train (resumable), evaluate, write the row")
    p.add_argument("row", choices=sorted(reproduce.ROWS))
    p.add_argument("--out", required=True, help="directory of the runs and the rows' JSON (rerun to continue)")
    p.add_argument("--minutes", type=float, help="training time of this call (default: to the recipe's last step)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--data", help="a dataset directory instead of scenes generated on the fly")
    p.add_argument("--num-eval", type=int, help="held-out scenes (default: the paper's protocol)")
    _add_overrides(p)
    _add_no_progress(p)
    p.set_defaults(func=cmd_reproduce)


def _add_report_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="Markdown + HTML report from study or run directories")
    p.add_argument("run_dirs", nargs="+", help="study directories (results.json) and/or run directories")
    p.add_argument("--out", required=True, help="report directory")
    p.set_defaults(func=cmd_report)


def _add_import_tf_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-tf", help="convert an official TF2 Slot Attention checkpoint to slotattn safetensors")
    p.add_argument("--checkpoint", required=True, help="checkpoint prefix, e.g. /tmp/object_discovery/ckpt-500")
    p.add_argument("--task", required=True, choices=["object_discovery", "set_prediction"])
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="model.KEY=VALUE",
                   help="what the checkpoint cannot hold, if not the official train.py's (resolution, num_slots, ...)")
    p.set_defaults(func=cmd_import_tf)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate Tetrominoes, train for a few minutes on this machine, evaluate, draw; "
                       "then the shipped weights on the same scenes")
    p.add_argument("--minutes", type=float, help="training time budget (default: configs/demo.yaml)")
    p.add_argument("--out", default="demo_run", help="output directory (default ./demo_run)")
    p.add_argument("--num-train", type=int, default=60_000, help="training scenes to generate")
    p.add_argument("--resume", action="store_true", help="continue the demo's previous run")
    _add_no_progress(p)
    _add_overrides(p)
    p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, StudyError, FileExistsError, ValueError) as err:
        # Every error the library raises for bad input is a ValueError subclass that says what was expected and
        # what was found: one line, no traceback (-v shows it).
        if args.verbose:
            raise
        print(f"slotattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"slotattn {args.command}: stopped: {err}", file=sys.stderr)
        return 3
    except TrainingInterrupted as err:
        print(f"slotattn {args.command}: interrupted: {err}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
