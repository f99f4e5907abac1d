"""Every number the README and the docs quote from a committed results JSON equals that JSON.

QUOTES is the registry, one entry per quoted text: (page, text, JSON file, values). `text` is the text as the page
has it, with `{...}` fields in `str.format` syntax; `values` fill the fields in order. A value is a key path into
the JSON (`a.b.0`, `list[key=value,key=value].c`, `*` for every element) or, for a derived number (a ratio, a
sample std, a percentage), a function of the parsed JSON. The test formats the values into the text and asserts
that the result is on the page, with whitespace and line breaks collapsed. So a number edited on a page, or a JSON
rewritten without the page, fails here.

Besides Python's format specs, a field can end in `E` (scientific with a short exponent: `{:.2E}` gives 1.96e-4)
or `k` (thousands: `{:.0k}` gives 609k). Numbers that come from no committed JSON (the demo transcript, benchmark
notes kept as prose) carry their date and machine on the page and are not listed here.
"""

import importlib
import json
import math
import re
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
PAPER_IMAGES = 500_000 * 64  # the paper's training: 500k steps of batch 64 (Sec. 4 / appendix)

README, PAPER_EXACT, PERFORMANCE = "README.md", "docs/paper_exact.md", "docs/performance.md"
REPRODUCTION, MODELS, BENCHMARKS = "docs/reproduction.md", "docs/models.md", "benchmarks/README.md"

LOCKSTEP = f"{RESULTS}/parity/lockstep.json"
STATISTICAL = f"{RESULTS}/parity/statistical.json"
PRECISION = "studies/precision/results/full/summary.json"
PRECISION_RUNS = "studies/precision/results/full/runs"
SPEED = f"{RESULTS}/run_quick_1core.json"
SPEED_CLEVR6 = f"{RESULTS}/run_quick_clevr6_mirrored.json"
CURVE_PAPER = f"{RESULTS}/learning_curve_paper_bs16.json"
CARD_TETRO = f"{RESULTS}/pretrained/tetrominoes.json"
CARD_MDS = f"{RESULTS}/pretrained/multi_dsprites.json"
ROW_TETRO = f"{RESULTS}/reproduce/tetrominoes.json"
ROW_MDS = f"{RESULTS}/reproduce/multi_dsprites.json"
CURVE_S0 = f"{RESULTS}/reproduce/tetrominoes_cpu_s0.json"
CURVE_S1 = f"{RESULTS}/reproduce/tetrominoes_cpu_s1.json"
CURVE_CLIP1_S0 = f"{RESULTS}/reproduce/tetrominoes_cpu_clip1_s0.json"
CURVE_CLIP1 = [f"{RESULTS}/reproduce/tetrominoes_cpu_clip1_s{seed}.json" for seed in range(3)]
SEEDS_CLIP1 = f"{RESULTS}/reproduce/tetrominoes_cpu_clip1_seeds.json"
SEEDS = f"{RESULTS}/reproduce/tetrominoes_cpu_seeds.json"
STEP14K = f"{RESULTS}/reproduce/tetrominoes_cpu_s0_step14000_evals.json"
COLOUR = f"{RESULTS}/reproduce/tetrominoes_colour_ceiling.json"
CLIP1_S0_CKPT = "tetro_clip1_s0_step_00025736"  # the shipped `tetrominoes` in the colour-ceiling JSON
CLIP1_CKPTS = [f"tetro_clip1_s{seed}_step_00025736" for seed in range(3)]  # seeds 0-2 of the chosen recipe
CURVE_MDS = f"{RESULTS}/reproduce/multi_dsprites_cpu_ft.json"
CURVE_MDS_CLIP1 = f"{RESULTS}/reproduce/multi_dsprites_cpu_clip1.json"
DEMO_RUNS = f"{RESULTS}/demo_runs.json"
DEMO_STUDY = "studies/demo/results/full/summary.json"
DEMO_BASE_COST_RUN = "studies/demo/results/full/runs/lr1e-3_wu100_s0.json"  # cost 1, the base's batch: the budget
CPU_STUDY = "studies/tetrominoes_cpu/results/full/summary.json"
PRECISION_NATIVE = f"{RESULTS}/precision_speed_native.json"
PRECISION_AVX2 = f"{RESULTS}/precision_speed_avx2.json"

Value = str | Callable[[Any], Any]


@dataclass(frozen=True)
class Quote:
    page: str
    text: str
    file: str
    values: tuple[Value, ...]

    def __str__(self) -> str:
        return f"{self.page}: {self.text!r} <- {self.file}"


def q(page: str, text: str, file: str, *values: Value) -> Quote:
    return Quote(page, text, file, values)


# -- reading and formatting -------------------------------------------------------------------------------------------


@cache
def load(file: str) -> Any:
    return json.loads((ROOT / file).read_text())


def _literal(text: str) -> Any:
    return {"None": None, "true": True, "false": False}.get(text, int(text) if re.fullmatch(r"-?\d+", text) else text)


def get(data: Any, path: str) -> Any:
    """The value at a key path: `a.b`, `list.0`, `list[k=v,k2=v2]` (the one element that matches), `*` (a list of
    every element's value for the rest of the path)."""
    if not path:
        return data
    head, _, rest = path.partition(".")
    if head == "*":
        items = data.values() if isinstance(data, dict) else data
        return [get(item, rest) for item in items]
    match = re.fullmatch(r"([^\[]*)(?:\[(.+)\])?", head)
    key, selector = match.group(1), match.group(2)
    if key:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if selector:
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        found = [item for item in data if all(item.get(k) == _literal(v) for k, v in wanted.items())]
        assert len(found) == 1, f"{path}: {len(found)} elements match [{selector}]"
        data = found[0]
    return get(data, rest)


def sd(values: list[float]) -> float:
    """Sample standard deviation (n - 1), the one the pages quote."""
    return statistics.stdev(values)


def bf16_slowdowns(precision_speed: dict) -> list[float]:
    """How many times slower bf16 autocast trained than float32, per row of a precision_speed JSON."""
    return [1 / row["bf16_speedup"] for row in precision_speed["rows"]]


class Num:
    """A number formatted with Python's specs plus `E` (short exponent) and `k` (thousands)."""

    def __init__(self, value: Any):
        self.value = value

    def __format__(self, spec: str) -> str:
        if spec.endswith("E"):
            if self.value == 0:
                return "0"
            mantissa, exponent = format(self.value, spec[:-1] + "e").split("e")
            return f"{mantissa}e{int(exponent)}"
        if spec.endswith("k"):
            return format(self.value / 1000, spec[:-1] + "f") + "k"
        return format(self.value, spec)


def expected(quote: Quote) -> str:
    data = load(quote.file)
    values = [v(data) if callable(v) else get(data, v) for v in quote.values]
    return quote.text.format(*(Num(v) for v in values))


def normalised(text: str) -> str:
    return " ".join(text.split())


# -- derived numbers ------------------------------------------------------------------------------------------------


def lockstep_param_ratio(step: int) -> Callable[[Any], float]:
    """slotattn fp32's parameter distance from TF over slotattn fp64's from fp32, at one of TF's checkpoints."""
    return lambda d: (d["runs"]["float32"]["param_diff"][str(step)]["max_abs_diff"]
                      / d["float64_vs_float32"][str(step)]["max_abs_diff"])


LOCKSTEP_STEPS = (10, 30, 100, 200, 300)


def lockstep_ratios(d: Any) -> list[float]:
    return [lockstep_param_ratio(s)(d) for s in LOCKSTEP_STEPS]


def loss_rel(d: Any, run: str, other: str, step: int, largest: bool) -> float:
    """Relative loss difference of `run` against `other` (its loss the denominator) at a step, or the largest over
    steps 1..step; runs are "tf" or slotattn's "float32" / "float64"."""
    losses = {"tf": d["tf"]["loss"], **{name: r["loss"] for name, r in d["runs"].items()}}
    rel = [abs(a - b) / abs(b) for a, b in zip(losses[run], losses[other])]
    return max(rel[:step]) if largest else rel[step - 1]


def stat_values(group: str, step: int) -> Callable[[Any], list[float]]:
    return lambda d: [next(e["fg_ari"] for e in runs if e["step"] == step) for runs in d["runs"][group].values()]


def stat_cell(group: str, step: int) -> tuple[Value, ...]:
    """mean, sample std, min, max of one group at one evaluation (3 seeds)."""
    values = stat_values(group, step)
    return (lambda d: statistics.mean(values(d)), lambda d: sd(values(d)), lambda d: min(values(d)),
            lambda d: max(values(d)))


STAT_STEPS = (250, 500, 750, 1000, 1250, 1500)


def torch_init_gap(d: Any) -> list[float]:
    """How far the torch-init group's mean FG-ARI lies above the official model's, at each evaluation."""
    torch_init, tf = ([statistics.mean(stat_values(g, s)(d)) for s in STAT_STEPS]
                      for g in ("slotattn_torch_init", "official_tf"))
    return [a - b for a, b in zip(torch_init, tf)]


def welch(key: str) -> Callable[[Any], list[float]]:
    return lambda d: [d["summary"][key][str(s)] for s in STAT_STEPS]


def speed_row(d: Any, recipe: str, model: str) -> dict:
    return next(r for r in d["recipes"] if r["recipe"] == recipe and r["model"] == model)


def speed_ratio(recipe: str, model: str, against: str = "reference", key: str = "train_images_per_s") -> Callable:
    return lambda d: speed_row(d, recipe, model)[key] / speed_row(d, recipe, against)[key]


def module_row(d: Any, model: str) -> dict:
    return next(r for r in d["module"] if r["model"] == model)


def module_vs_lucidrains(model: str) -> Callable[[Any], float]:
    """How many times faster than lucidrains' module a module variant runs forward + backward."""
    return lambda d: module_row(d, "lucidrains")["forward_backward_ms"] / module_row(d, model)["forward_backward_ms"]


def precision_curves(d: Any, precision: str) -> list[list[dict]]:
    """The precision study's curves of one candidate ("fp32" or "bf16"), seeds in order."""
    curves = d["candidates"][precision]["curves"]
    return [curves[seed] for seed in sorted(curves)]


def precision_step(d: Any, precision: str, step: int) -> list[float]:
    """FG-ARI of every seed of a precision study candidate at one evaluation step."""
    return [next(e["fg_ari"] for e in curve if e["step"] == step) for curve in precision_curves(d, precision)]


def precision_minutes(precision: str) -> list[float]:
    """Training minutes of every run of a precision study candidate (its per-run JSON)."""
    return [json.loads(path.read_text())["train_minutes"]
            for path in sorted((ROOT / PRECISION_RUNS).glob(f"{precision}_s*.json"))]


def precision_gaps(d: Any, final: bool) -> list[float]:
    gaps = []
    for fp32, bf16 in zip(precision_curves(d, "fp32"), precision_curves(d, "bf16")):
        pairs = list(zip(fp32, bf16))
        assert all(a["step"] == b["step"] for a, b in pairs)
        gaps += [abs(a["fg_ari"] - b["fg_ari"]) for a, b in (pairs[-1:] if final else pairs)]
    return gaps


def card_eval(num_iterations: int, eval_seed: int | None = None, key: str = "fg_ari") -> str:
    return f"evaluation[eval_seed={eval_seed},num_iterations={num_iterations}].{key}"


def stored_colour(checkpoint: str, num_iterations: int, subset: str) -> Callable:
    """A model's FG-ARI as the colour-ceiling JSON stores it."""
    return lambda d: next(m["fg_ari"][subset] for m in d["models"]
                          if checkpoint in m["checkpoint"] and m["num_iterations"] == num_iterations)


COLOUR_TABLE = [("old recipe, seed 0, step 38,055", "tetro_s0_step_00038055"),
                ("old recipe, seed 0, step 60,065", "tetro_s0_step_00060065"),
                ("old recipe, seed 1, step 8,135", "tetro_s1_step_00008135"),
                *[(f"chosen recipe, seed {seed}, step 25,736", f"tetro_clip1_s{seed}_step_00025736")
                  for seed in range(3)]]
COLOUR_SUBSETS = ("all", "colours_separate", "touching_same_colour")


def ambiguous_in_table(d: dict) -> list[float]:
    """The stored values of the page's colour table, in its order, whose fourth decimal is 5 (their third decimal
    depends on digits the JSON dropped); the shipped checkpoint's "all" is excluded (the card's value stands in)."""
    values = [stored_colour(ckpt, t, subset)(d) for _, ckpt in COLOUR_TABLE for subset in COLOUR_SUBSETS
              for t in (3, 5, 7) if not (ckpt == CLIP1_S0_CKPT and subset == "all")]
    return [v for v in values if round(v * 1e4) % 10 == 5]


def colour(checkpoint: str, num_iterations: int, subset: str) -> Callable:
    """A model's FG-ARI in the colour-ceiling JSON. That JSON stores its means rounded to 4 decimals (its `rounding`);
    for the shipped checkpoint's "all" the card's unrounded evaluation of the same scenes with the same slot noise
    (training seed 0) stands in, checked to agree with the stored value to those 4 decimals."""
    def value(d):
        stored = stored_colour(checkpoint, num_iterations, subset)(d)
        if checkpoint == CLIP1_S0_CKPT and subset == "all":
            card = get(load(CARD_TETRO), card_eval(num_iterations))
            assert abs(card - stored) <= 5e-5 + 1e-12, (card, stored)
            return card
        return stored
    return value


def touching(d: dict) -> float:
    """The share of the colour-ceiling split's scenes where two same-coloured pieces touch, from its counts."""
    return d["touching_same_colour"] / d["num"]


def shortfall_share(checkpoint: str, num_iterations: int) -> Callable:
    """Of a model's shortfall from FG-ARI 1 over all scenes, the share the same-colour touching scenes cause."""
    return lambda d: (100 * touching(d) * (1 - colour(checkpoint, num_iterations, "touching_same_colour")(d))
                      / (1 - colour(checkpoint, num_iterations, "all")(d)))


def perfect_touching(checkpoint: str, num_iterations: int) -> Callable:
    """A model's FG-ARI over all scenes if it scored 1 on every same-colour touching scene."""
    return lambda d: (1 - touching(d)) * colour(checkpoint, num_iterations, "colours_separate")(d) + touching(d)


def clip1_seeds(d: dict, num_iterations: int) -> tuple[float, float]:
    """Mean and sample std of FG-ARI over seeds 0-2 of the chosen recipe in the colour-ceiling JSON."""
    values = [colour(c, num_iterations, "all")(d) for c in CLIP1_CKPTS]
    return statistics.mean(values), statistics.stdev(values)


def step_of(checkpoint: str) -> Callable:
    """The step in the file name of a colour-ceiling checkpoint (step_00008135.pt -> 8135)."""
    return lambda d: int(re.search(r"step_(\d+)\.pt", next(m["checkpoint"] for m in d["models"]
                                                              if checkpoint in m["checkpoint"])).group(1))


def resume_step(state: str) -> int:
    """The step of the one checkpoint in a committed resume state (the curve's minutes are its last logged step's)."""
    (record,) = (ROOT / RESULTS / "reproduce" / "resume" / state / "checkpoints").glob("step_*.json")
    return json.loads(record.read_text())["step"]


def curve_at(step: int, key: str = "fg_ari") -> str:
    return f"curve[step={step}].{key}"


def share_of_paper(key: str = "images_seen") -> Callable:
    return lambda d: 100 * d[key] / PAPER_IMAGES


def fine_tune_images(d: Any) -> int:
    return d["images_seen"] - d["started_from"]["images"]


def fine_tune_rate(d: Any) -> float:
    """Images/s of the Multi-dSprites fine-tuning (the row's images and minutes less those it started from)."""
    return fine_tune_images(d) / (60 * (d["minutes"] - d["started_from"]["minutes"]))


def demo_clip_comparison() -> list[Callable[[Any], float]]:
    """Mean and sample std of the demo recipe with and without clipping (seeds 0-2), the t-test's p, and the
    smallest difference it calls significant at 5 % (two-sided, pooled std, n = 3 each)."""
    from scipy import stats

    def seeds(d, name):
        return [d["candidates"][name]["fg_ari"][str(seed)] for seed in range(3)]

    clip, plain = "torch_enc3_lr1e-3_wu100_clip1", "torch_enc3_lr1e-3_wu100"

    def smallest_significant(d):
        pooled = math.sqrt((statistics.variance(seeds(d, clip)) + statistics.variance(seeds(d, plain))) / 2)
        return stats.t.ppf(0.975, 4) * pooled * math.sqrt(2 / 3)

    return [lambda d: statistics.mean(seeds(d, clip)), lambda d: statistics.stdev(seeds(d, clip)),
            lambda d: statistics.mean(seeds(d, plain)), lambda d: statistics.stdev(seeds(d, plain)),
            lambda d: stats.ttest_ind(seeds(d, clip), seeds(d, plain)).pvalue, smallest_significant]


BAND_TRAP = 0.5  # "bands" (cross-scene ARI) above this: the slots split every scene alike, by position
PLAIN = ("base", "bs32", "implicit", "warmup250")  # official init, lr 4e-4, no clipping


def study_runs(d: dict, banded: bool | None = None, plain: bool | None = None) -> list[dict]:
    """The CPU-recipe study's runs as {candidate, seed, fg_ari, bands}: all, or those in (not in) the band trap,
    of the candidates in (not in) PLAIN."""
    runs = [{"candidate": name, "seed": seed, "fg_ari": c["fg_ari"][seed],
             "bands": c["measures"]["cross_scene_ari"][seed]}
            for name, c in d["candidates"].items() for seed in c["fg_ari"]]
    return [r for r in runs if (banded is None or (r["bands"] > BAND_TRAP) == banded)
            and (plain is None or (r["candidate"] in PLAIN) == plain)]


def unbanded_with_bands(d: dict) -> list[dict]:
    """The runs outside the trap whose bands are above 0.1: background split by region (the page's list)."""
    named = {("lr1e-3", "0"), ("lr1e-3", "1"), ("implicit", "0"), ("base", "1")}
    runs = [r for r in study_runs(d, banded=False) if r["bands"] > 0.1]
    assert {(r["candidate"], r["seed"]) for r in runs} == named, runs
    return runs


def band_trap_fisher_p(d: dict) -> float:
    from scipy.stats import fisher_exact

    plain, other = study_runs(d, plain=True), study_runs(d, plain=False)
    trapped = [len([r for r in group if r["bands"] > BAND_TRAP]) for group in (plain, other)]
    return fisher_exact([[trapped[0], len(plain) - trapped[0]], [trapped[1], len(other) - trapped[1]]]).pvalue


CPU_RUNS = "studies/tetrominoes_cpu/results/full/runs"
CLIPPED = ("clip1", "torch_init_clip1")  # the CPU-recipe study's candidates that clip the gradient norm


def cpu_run_files() -> list[dict]:
    """The CPU-recipe study's per-run JSONs (studies/tetrominoes_cpu/results/full/runs/*.json)."""
    return [json.loads(path.read_text()) for path in sorted((ROOT / CPU_RUNS).glob("*.json"))]


def clipped_against_plain() -> list[Callable[[Any], Any]]:
    """From the per-run JSONs: clipped runs in the band trap, clipped runs, the trap's threshold, PLAIN runs in the
    trap, PLAIN runs, and Fisher's exact p (two-sided) of that 2 x 2 table."""
    from scipy.stats import fisher_exact

    def groups():
        runs = cpu_run_files()
        clipped = [r for r in runs if r["candidate"] in CLIPPED]
        plain = [r for r in runs if r["candidate"] in PLAIN]
        return [(len([r for r in g if r["measures"]["cross_scene_ari"] > BAND_TRAP]), len(g))
                for g in (clipped, plain)]

    def p(d):
        (a, n), (b, m) = groups()
        return fisher_exact([[a, n - a], [b, m - b]]).pvalue

    return [lambda d: groups()[0][0], lambda d: groups()[0][1], lambda d: BAND_TRAP, lambda d: groups()[1][0],
            lambda d: groups()[1][1], p]


def demo_seeds(name: str, seeds=range(3)) -> Callable[[Any], list[float]]:
    return lambda d: [d["candidates"][name]["fg_ari"][str(seed)] for seed in seeds]


def smallest_significant(a: list[float], b: list[float]) -> float:
    """The smallest difference of two means a two-sided t-test (pooled std, 5 %) calls significant, n = 3 each."""
    from scipy import stats

    assert len(a) == len(b) == 3
    pooled = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
    return stats.t.ppf(0.975, 4) * pooled * math.sqrt(2 / 3)


def widest_seed_spread(d: dict) -> float:
    """The largest spread (max - min) of final FG-ARI over the seeds of one candidate of the demo-recipe study."""
    return max(max(c["fg_ari"].values()) - min(c["fg_ari"].values()) for c in d["candidates"].values())


def last_two_gaps(d: dict) -> list[int]:
    """Steps between a demo-study run's last two evaluations, for the runs with five; the runs with four are the
    5x5 model's batch 8 and 16 (steps divisible by 4)."""
    curves = {(name, seed): curve for name, c in d["candidates"].items() for seed, curve in c["curves"].items()}
    assert {len(c) for c in curves.values()} == {4, 5}
    assert {name for (name, _), c in curves.items() if len(c) == 4} == {"torch_bs8_lr1e-3_wu200",
                                                                       "torch_bs16_lr1e-3_wu200"}
    return [c[-1]["step"] - c[-2]["step"] for c in curves.values() if len(c) == 5]


def relative_cost(name: str) -> Callable[[Any], float]:
    """A demo-study candidate's cost per image relative to the base, as its image budget encodes it."""
    return lambda d: d["budget_images"] / d["candidates"][name]["images"]


def largest_jump(d: dict) -> tuple[float, dict, dict]:
    """The largest change of FG-ARI between two evaluations 1,000 steps apart (at whole thousands)."""
    at_thousands = [e for e in d["curve"] if e["step"] % 1000 == 0]
    pairs = [(a, b) for a, b in zip(at_thousands, at_thousands[1:]) if b["step"] - a["step"] == 1000]
    a, b = max(pairs, key=lambda pair: abs(pair[1]["fg_ari"] - pair[0]["fg_ari"]))
    return abs(b["fg_ari"] - a["fg_ari"]), a, b


def slot_draw_effect(d: dict) -> float:
    """How far a run's own evaluation at step 25,736 (slot noise of its training seed) lies from the colour
    analysis's (slot noise of seed 0), the larger of seeds 1 and 2 of the chosen recipe (seed 0's are one draw)."""
    colour_json = load(COLOUR)
    own = [load(CURVE_CLIP1[seed])["curve"][-1] for seed in (1, 2)]
    assert all(e["step"] == step_of(CLIP1_CKPTS[0])(colour_json) for e in own)
    return max(abs(e["fg_ari"] - colour(c, 3, "all")(colour_json)) for e, c in zip(own, CLIP1_CKPTS[1:]))


# -- the registry ---------------------------------------------------------------------------------------------------

QUOTES: list[Quote] = [
    # README: what the demo does on fresh clones.
    q(README, "**{:.3f}, {:.3f}, {:.3f}** for `train.seed` 0, 1, 2", DEMO_RUNS, "avx2_budget.runs.0.fg_ari",
      "avx2_budget.runs.1.fg_ari", "avx2_budget.runs.2.fg_ari"),
    q(README, "--set train.steps={} --minutes 60", DEMO_RUNS, "avx2_budget.runs.0.steps"),
    q(README, "the default `make demo` ran {:,} steps in 5 minutes, FG-ARI **{:.3f}**", DEMO_RUNS,
      "default.runs.0.steps", "default.runs.0.fg_ari"),
    # README: each demo difference with the study's number (studies/demo/results/full/summary.json).
    q(README, "(paper 5×5): {:.3f}, {:.3f}, {:.3f} against {:.3f}, {:.3f}, {:.3f} (seeds 0–2)", DEMO_STUDY,
      *[f"candidates.{name}.fg_ari.{seed}" for name in ("torch_enc3_lr1e-3_wu100", "lr1e-3_wu100_torch")
        for seed in range(3)]),
    q(README, "Keras'): {:.3f} against {:.3f} (seed 0)", DEMO_STUDY, "candidates.torch_enc3_lr1e-3_wu100.fg_ari.0",
      "candidates.enc3_lr1e-3_wu100.fg_ari.0"),
    q(README, "(paper 4e-4, 10k): {:.3f}, {:.3f} against {:.3f}, {:.3f} (4e-4, warm-up 500)", DEMO_STUDY,
      "candidates.torch_enc3_lr1e-3_wu100.fg_ari.0", "candidates.torch_enc3_lr1e-3_wu100.fg_ari.1",
      "candidates.torch_enc3.fg_ari.0", "candidates.torch_enc3.fg_ari.1"),
    q(README, "per image and reached {:.3f} (seed 0)", DEMO_STUDY, "candidates.torch_lr1e-3_wu100_paperdec.fg_ari.0"),
    q(PERFORMANCE, "the chosen one (`configs/demo.yaml`) gives {:.3f} to {:.3f} ({} seeds)", DEMO_STUDY,
      "candidates.torch_enc3_lr1e-3_wu100.min",
      lambda d: max(d["candidates"]["torch_enc3_lr1e-3_wu100"]["fg_ari"].values()),
      "candidates.torch_enc3_lr1e-3_wu100.n"),
    q(PERFORMANCE, "(in the CPU-recipe study {} of its {} clipped runs ended in the band trap, bands above {:.1f}, "
      "against {} of the {} with the official initialisation, learning rate 4e-4 and no clipping; Fisher's exact test "
      "p = {:.3f}, groups drawn after the runs were seen)", CPU_STUDY, *clipped_against_plain()),
    q(PERFORMANCE, "groups drawn after the runs were seen) gave {:.3f}, {:.3f}, {:.3f} "
      "against {:.3f}, {:.3f}, {:.3f} without (seeds 0–2; mean {:.3f} ± {:.3f} against {:.3f} ± {:.3f}, t-test p = "
      "{:.2f}). A difference below {:.2f} could not", DEMO_STUDY,
      *[f"candidates.{name}.fg_ari.{seed}" for name in ("torch_enc3_lr1e-3_wu100_clip1", "torch_enc3_lr1e-3_wu100")
        for seed in range(3)],
      *demo_clip_comparison()),
    q(PERFORMANCE, "lowest seed is already below {:.3f}, so more seeds", DEMO_STUDY,
      "candidates.torch_enc3_lr1e-3_wu100.min"),
    q(PERFORMANCE, "the old demo recipe completed {} steps of batch {} in that time (2026-12-04). The study "
      "([`studies/demo`](../studies/demo/definition.py)) gives every candidate recipe that many images ({:,},",
      DEMO_BASE_COST_RUN, "steps", "batch_size", "images"),
    q(PERFORMANCE, "the paper's decoder {:.1f}×.", DEMO_STUDY, relative_cost("torch_lr1e-3_wu100_paperdec")),
    q(PERFORMANCE, "so five evaluations with the last two {}–{} steps apart, or four where the steps divide by 4",
      DEMO_STUDY, lambda d: min(last_two_gaps(d)), lambda d: max(last_two_gaps(d))),
    q(PERFORMANCE, "seeds of one recipe lie up to {:.2f} apart", DEMO_STUDY, widest_seed_spread),
    q(PERFORMANCE, "warm-up gave {:.3f} and {:.3f} where 4e-4 with 500 gave {:.3f} and {:.3f} (3×3 kernels, seeds 0 and "
      "1); 2e-3 with clipping gave less ({:.3f}, seed 0)", DEMO_STUDY,
      "candidates.torch_enc3_lr1e-3_wu100.fg_ari.0", "candidates.torch_enc3_lr1e-3_wu100.fg_ari.1",
      "candidates.torch_enc3.fg_ari.0", "candidates.torch_enc3.fg_ari.1",
      "candidates.torch_enc3_lr2e-3_wu100_clip1.fg_ari.0"),
    q(PERFORMANCE, "Batch 8 gave the 5×5 model {:.3f} and {:.3f} (batch 32: {:.3f} and {:.3f}), but the 3×3 one {:.3f} "
      "(batch 32: {:.3f}; 1 seed). Implicit differentiation (`model.implicit_diff`) gave {:.3f} against {:.3f} without",
      DEMO_STUDY, "candidates.torch_bs8_lr1e-3_wu200.fg_ari.0", "candidates.torch_bs8_lr1e-3_wu200.fg_ari.1",
      "candidates.lr1e-3_wu100_torch.fg_ari.0", "candidates.lr1e-3_wu100_torch.fg_ari.1",
      "candidates.torch_enc3_bs8_lr1e-3_wu200.fg_ari.0", "candidates.torch_enc3_lr1e-3_wu100.fg_ari.0",
      "candidates.lr1e-3_wu100_implicit.fg_ari.0", "candidates.lr1e-3_wu100.fg_ari.0"),
    q(PERFORMANCE, "gave {:.3f} ± {:.3f} against {:.3f} ± {:.3f} (seeds 0–2 each); at this n and spread only a difference "
      "above about {:.2f} would have shown", DEMO_STUDY,
      lambda d: statistics.mean(demo_seeds("torch_enc3_lr1e-3_wu100_decay1k")(d)),
      lambda d: statistics.stdev(demo_seeds("torch_enc3_lr1e-3_wu100_decay1k")(d)),
      lambda d: statistics.mean(demo_seeds("torch_enc3_lr1e-3_wu100")(d)),
      lambda d: statistics.stdev(demo_seeds("torch_enc3_lr1e-3_wu100")(d)),
      lambda d: smallest_significant(demo_seeds("torch_enc3_lr1e-3_wu100_decay1k")(d),
                                     demo_seeds("torch_enc3_lr1e-3_wu100")(d))),
    q(PERFORMANCE, "3×3 encoder ({:.1f}× the cost, so fewer images) reached {:.3f} on the weak seed 1", DEMO_STUDY,
      relative_cost("torch_lr1e-3_wu100_enc3_dec32"), "candidates.torch_lr1e-3_wu100_enc3_dec32.fg_ari.1"),
    q(README, "the paper's costs {:.1f}× per image", DEMO_STUDY, relative_cost("torch_lr1e-3_wu100_paperdec")),
    q(README, "(the old recipe's {} there, 2026-12-04,", DEMO_BASE_COST_RUN, "steps"),
    q(README, "batch 8 and 16 reached {:.3f} and {:.3f} (seed 0)", DEMO_STUDY,
      "candidates.torch_enc3_bs8_lr1e-3_wu200.fg_ari.0", "candidates.torch_enc3_bs16_lr1e-3_wu200.fg_ari.0"),
    # README: the shipped models.
    q(README, "`tetrominoes` (FG-ARI {:.3f} on {} held-out scenes)", CARD_TETRO, card_eval(3), card_eval(3, key="num")),
    q(README, "`multi_dsprites` (FG-ARI {:.3f}, objects only partly", CARD_MDS, card_eval(3)),
    q(README, "the paper's model after {:.0k} training images", ROW_TETRO, "images_seen"),
    # docs/paper_exact.md: the summary list.
    q(PAPER_EXACT, "through step 50 of the warm-up (learning rate {:.2E} at step 50)", LOCKSTEP, "tf.lr.49"),
    q(PAPER_EXACT, "the two parameter distances are {:.2f}–{:.2f}× apart at the checkpoints up to step 300", LOCKSTEP,
      lambda d: min(lockstep_ratios(d)), lambda d: max(lockstep_ratios(d))),
    q(PAPER_EXACT, "a Welch test finds no difference (p ≥ {:.2f})", STATISTICAL,
      lambda d: min(welch("slotattn_vs_tf_welch_p")(d))),
    # docs/paper_exact.md: lock-step.
    q(PAPER_EXACT, "| 1 | {:.0E} | {:.0E} | {:.0E} | {:.0E} | {:.0E} | {:.0E} (lr = {:.0f} at step 0) |", LOCKSTEP,
      lambda d: loss_rel(d, "float32", "tf", 1, False), lambda d: loss_rel(d, "float32", "float64", 1, False),
      "runs.float32.param_diff.1.max_abs_diff", "float64_vs_float32.1.max_abs_diff",
      "runs.torch_adam.param_diff.1.max_abs_diff", "runs.float32.param_diff.1.max_abs_update", "tf.lr.0"),
    *[q(PAPER_EXACT, f"| {s} | {{:.1E}} ({{:.1E}}) | {{:.1E}} ({{:.1E}}) | {{:.1E}} | {{:.1E}} | {{:.1E}} | {{:.1E}} |",
        LOCKSTEP, lambda d, s=s: loss_rel(d, "float32", "tf", s, False),
        lambda d, s=s: loss_rel(d, "float32", "tf", s, True),
        lambda d, s=s: loss_rel(d, "float32", "float64", s, False),
        lambda d, s=s: loss_rel(d, "float32", "float64", s, True),
        f"runs.float32.param_diff.{s}.max_abs_diff", f"float64_vs_float32.{s}.max_abs_diff",
        f"runs.torch_adam.param_diff.{s}.max_abs_diff", f"runs.float32.param_diff.{s}.max_abs_update")
      for s in (10, 30, 100, 300)],
    q(PAPER_EXACT, "the learning rate rises from 0 to {:.2E} at step 50 (`tf.lr` in the JSON)", LOCKSTEP, "tf.lr.49"),
    q(PAPER_EXACT, "Per-step losses differ by at most {:.1E} relative over steps 1–50; the float64 run differs from "
      "the float32 one by up to {:.1E}.", LOCKSTEP, lambda d: loss_rel(d, "float32", "tf", 50, True),
      lambda d: loss_rel(d, "float32", "float64", 50, True)),
    q(PAPER_EXACT, "The parameters are {:.2f}× (step 10) and {:.2f}× (step 30) as far from TF", LOCKSTEP,
      lockstep_param_ratio(10), lockstep_param_ratio(30)),
    q(PAPER_EXACT, "stay within {:.2f}–{:.2f}× of each other at all five checkpoints ({:.2f}× at step 100, {:.2f}× at "
      "step 200, {:.2f}× at step 300)", LOCKSTEP, lambda d: min(lockstep_ratios(d)), lambda d: max(lockstep_ratios(d)),
      lockstep_param_ratio(100), lockstep_param_ratio(200), lockstep_param_ratio(300)),
    q(PAPER_EXACT, "the parameters are already {:.0f}× further from TF at step 10 ({:.1E}) than with `KerasAdam` "
      "({:.1E})", LOCKSTEP, lambda d: (d["runs"]["torch_adam"]["param_diff"]["10"]["max_abs_diff"]
                           / d["runs"]["float32"]["param_diff"]["10"]["max_abs_diff"]),
      "runs.torch_adam.param_diff.10.max_abs_diff", "runs.float32.param_diff.10.max_abs_diff"),
    # docs/paper_exact.md: statistical.
    q(PAPER_EXACT, "Three groups × seeds 0, 1, 2 on the same {:,} generated Tetrominoes scenes", STATISTICAL,
      "setup.train_scenes"),
    q(PAPER_EXACT, "the same {} held-out scenes. Rerunning", STATISTICAL, "setup.num_eval"),
    q(PAPER_EXACT, "the population std, {:.2f}× smaller for n = {}.", STATISTICAL,
      lambda d: math.sqrt(d["summary"]["official_tf"]["250"]["n"] / (d["summary"]["official_tf"]["250"]["n"] - 1)),
      "summary.official_tf.250.n"),
    *[q(PAPER_EXACT, f"| {s} | " + " | ".join(["{:.3f} ± {:.3f} [{:.3f}, {:.3f}]"] * 3) + " | {} | {:.2f} | {:.3f} |",
        STATISTICAL, *stat_cell("official_tf", s), *stat_cell("slotattn", s), *stat_cell("slotattn_torch_init", s),
        lambda d, s=s: "yes" if d["summary"]["slotattn_mean_inside_tf_range"][str(s)] else "no",
        f"summary.slotattn_vs_tf_welch_p.{s}", f"summary.slotattn_torch_init_vs_tf_welch_p.{s}")
      for s in STAT_STEPS],
    q(PAPER_EXACT, "the Welch p-values are {:.2f}–{:.2f}.", STATISTICAL,
      lambda d: min(welch("slotattn_vs_tf_welch_p")(d)), lambda d: max(welch("slotattn_vs_tf_welch_p")(d))),
    q(PAPER_EXACT, "The torch-init group's mean is {:.2f}–{:.2f} FG-ARI above TF's", STATISTICAL,
      lambda d: min(torch_init_gap(d)), lambda d: max(torch_init_gap(d))),
    q(PAPER_EXACT, "only at step 250 (p = {:.3f}); after that p is {:.2f}–{:.2f}.", STATISTICAL,
      "summary.slotattn_torch_init_vs_tf_welch_p.250",
      lambda d: min(welch("slotattn_torch_init_vs_tf_welch_p")(d)[1:]),
      lambda d: max(welch("slotattn_torch_init_vs_tf_welch_p")(d)[1:])),
    q(PAPER_EXACT, "slotattn is at {:.3f} ± {:.3f} (n = 3) by step 1,500, against {:.3f} ± {:.3f} for TF.",
      STATISTICAL, *stat_cell("slotattn_torch_init", 1500)[:2], *stat_cell("official_tf", 1500)[:2]),
    # docs/performance.md: speed.
    q(PERFORMANCE, "Each number is the median of {} interleaved repeats.", SPEED,
      lambda d: len(d["recipes"][0]["train_seconds"])),
    *[q(PERFORMANCE, f"| {label} | {{:.2f}}× | {{:.2f}}× |", file, speed_ratio(recipe, "slotattn-fast"),
        speed_ratio(recipe, "slotattn-fp32"))
      for label, recipe, file in [("Tetrominoes 35×35", "tetrominoes", SPEED),
                                  ("Multi-dSprites 64×64", "multi_dsprites", SPEED),
                                  ("CLEVR6 128×128 (mirrored decoder)", "clevr6", SPEED_CLEVR6)]],
    q(PERFORMANCE, "forward + backward: {:.2f}× faster than lucidrains' `slot-attention` 1.4.0 on the default path, "
      "{:.2f}× in float32 against float32.", SPEED,
      module_vs_lucidrains("slotattn-fast"), module_vs_lucidrains("slotattn-fp32")),
    q(PERFORMANCE, "peak at {:.1f}× and {:.1f}× float32 ({:.0f} vs {:.0f} and {:.0f} vs {:.0f} GFLOP/s", SPEED,
      lambda d: d["peaks"]["matmul_gflops_bf16"] / d["peaks"]["matmul_gflops_fp32"],
      lambda d: d["peaks"]["conv_gflops_bf16"] / d["peaks"]["conv_gflops_fp32"],
      "peaks.matmul_gflops_bf16", "peaks.matmul_gflops_fp32", "peaks.conv_gflops_bf16", "peaks.conv_gflops_fp32"),
    q(PERFORMANCE, "training drops from {:.2f} to {:.2f} GFLOP per image (Multi-dSprites {:.2f} → {:.2f})", SPEED,
      lambda d: speed_row(d, "tetrominoes", "reference")["train_gflop_per_image"],
      lambda d: speed_row(d, "tetrominoes", "slotattn-fp32")["train_gflop_per_image"],
      lambda d: speed_row(d, "multi_dsprites", "reference")["train_gflop_per_image"],
      lambda d: speed_row(d, "multi_dsprites", "slotattn-fp32")["train_gflop_per_image"]),
    q(PERFORMANCE, "(module forward {:.2f} → {:.2f} GFLOP at N = {})", SPEED, "module[model=reference].forward_gflop",
      "module[model=slotattn-fp32].forward_gflop", "module[model=reference].num_inputs"),
    # The CPU-recipe study (studies/tetrominoes_cpu; the table itself is rendered, see below).
    q(README, "learned on all {} seeds (FG-ARI {:.3f}–{:.3f} after {:,} images; without clipping {:.3f} and {:.3f})",
      CPU_STUDY, "candidates.clip1.n", "candidates.clip1.min",
      lambda d: max(d["candidates"]["clip1"]["fg_ari"].values()),
      "candidates.clip1.images", "candidates.base.fg_ari.0", "candidates.base.fg_ari.1"),
    q(REPRODUCTION, "It has the highest lowest seed ({:.3f}), the highest mean ({:.3f} ± {:.3f}, n = {}) and the "
      "fastest learning along the way ({:.3f}). Learning rate 1e-3 ({:.3f}, {:.3f}) and PyTorch's initialisation "
      "with clipping ({:.3f}, {:.3f})", CPU_STUDY, "candidates.clip1.min", "candidates.clip1.mean",
      "candidates.clip1.std", "candidates.clip1.n", "candidates.clip1.along_the_way", "candidates.lr1e-3.fg_ari.0",
      "candidates.lr1e-3.fg_ari.1", "candidates.torch_init_clip1.fg_ari.0", "candidates.torch_init_clip1.fg_ari.1"),
    q(REPRODUCTION, "in {} runs the slots split the image into bands by position (bands {:.2f}–{:.2f};", CPU_STUDY,
      lambda d: len(study_runs(d, banded=True)), lambda d: min(r["bands"] for r in study_runs(d, banded=True)),
      lambda d: max(r["bands"] for r in study_runs(d, banded=True))),
    q(REPRODUCTION, "Four of them stayed flat and ended at FG-ARI {:.3f}–{:.3f}; the fifth (250-step warm-up, seed 0, "
      "diagonal bands) climbed slowly to {:.3f}.", CPU_STUDY,
      lambda d: sorted(r["fg_ari"] for r in study_runs(d, banded=True))[0],
      lambda d: sorted(r["fg_ari"] for r in study_runs(d, banded=True))[3], "candidates.warmup250.fg_ari.0"),
    q(REPRODUCTION, "All {} are among the {} runs that start from the official initialisation with the base's learning "
      "rate 4e-4 and no clipping", CPU_STUDY, lambda d: len(study_runs(d, banded=True, plain=True)),
      lambda d: len(study_runs(d, plain=True))),
    q(REPRODUCTION, "None of the {} runs with clipping, a learning rate of 1e-3 or PyTorch's initialisation fell in "
      "(bands ≤ {:.2f}, FG-ARI ≥ {:.3f}). Fisher's exact test, {} of {} against {} of {}: p = {:.3f} (two-sided).",
      CPU_STUDY, lambda d: len(study_runs(d, plain=False)),
      lambda d: max(r["bands"] for r in study_runs(d, plain=False)),
      lambda d: min(r["fg_ari"] for r in study_runs(d, plain=False)),
      lambda d: len(study_runs(d, banded=True, plain=True)), lambda d: len(study_runs(d, plain=True)),
      lambda d: len(study_runs(d, banded=True, plain=False)), lambda d: len(study_runs(d, plain=False)),
      band_trap_fisher_p),
    q(REPRODUCTION, "reached {:.3f} and {:.3f} by step 8,000 (128,000 images) for seeds 0 and 1", SEEDS,
      "common_steps[step=8000].fg_ari.tetrominoes_cpu_s0", "common_steps[step=8000].fg_ari.tetrominoes_cpu_s1"),
    q(REPRODUCTION, "Bands of {:.2f}–{:.2f} came with FG-ARI {:.3f}–{:.3f} (learning rate 1e-3, both seeds; implicit "
      "differentiation, seed 0; the base, seed 1).", CPU_STUDY,
      lambda d: min(r["bands"] for r in unbanded_with_bands(d)),
      lambda d: max(r["bands"] for r in unbanded_with_bands(d)),
      lambda d: min(r["fg_ari"] for r in unbanded_with_bands(d)),
      lambda d: max(r["fg_ari"] for r in unbanded_with_bands(d))),
    q(REPRODUCTION, "Every run sees {:,} freshly generated training images", CPU_STUDY, "candidates.base.images"),
    q(REPRODUCTION, "Seeds 0–2 are the study's three runs of that recipe ({:,} images each)", CPU_STUDY,
      "candidates.clip1.images"),
    q(REPRODUCTION, "one core per run): {} runs, every candidate on {} seeds and clipping on {}.", CPU_STUDY,
      lambda d: len(study_runs(d)), lambda d: min(c["n"] for c in d["candidates"].values()), "candidates.clip1.n"),
    q(REPRODUCTION, "went {:.3f} → {:.3f} between its last two.", f"{CPU_RUNS}/torch_init_s0.json",
      "curve.-2.fg_ari", "curve.-1.fg_ari"),
    # bf16 against fp32 with AVX2 kernels (benchmarks/precision_speed.py): each table row, in two halves.
    *[q(PERFORMANCE, f"| {label} | {threads} | {{:.0f}} → {{:.0f}} | {{:.2f}}× | {{:.0f}} → {{:.1f}} | {{:.2f}}× |",
        PRECISION_NATIVE, *[f"rows[recipe={recipe},threads={threads}].{k}" for k in
                            ("fp32_images_per_s", "bf16_images_per_s", "bf16_speedup")],
        *[lambda d, k=k, r=recipe, t=threads: get(load(PRECISION_AVX2), f"rows[recipe={r},threads={t}].{k}")
          for k in ("fp32_images_per_s", "bf16_images_per_s", "bf16_speedup")])
      for label, recipe in [("demo (32)", "demo"), ("paper's Tetrominoes (16)", "tetrominoes_cpu")]
      for threads in (1, 2)],
    q(README, "with AVX2 kernels emulated on the Xeon, bf16 autocast trained {:.0f}–{:.0f}× slower", PRECISION_AVX2,
      lambda d: min(bf16_slowdowns(d)), lambda d: max(bf16_slowdowns(d))),
    q(PERFORMANCE, "With emulated AVX2 kernels bfloat16 autocast trained {:.0f}–{:.0f}× slower than float32",
      PRECISION_AVX2,
      lambda d: min(bf16_slowdowns(d)), lambda d: max(bf16_slowdowns(d))),
    q(PERFORMANCE, "the default path trained Tetrominoes {:.2f}× faster than the float32 path ({:.2f} vs {:.2f} img/s",
      SPEED, speed_ratio("tetrominoes", "slotattn-fast", "slotattn-fp32"),
      lambda d: speed_row(d, "tetrominoes", "slotattn-fast")["train_images_per_s"],
      lambda d: speed_row(d, "tetrominoes", "slotattn-fp32")["train_images_per_s"]),
    # docs/performance.md: bf16 learning curves, per evaluation step (the study's own table is rendered, see below).
    *[q(PERFORMANCE, "| {} | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} |", PRECISION, lambda d, step=step: step,
        *[lambda d, p=p, f=f, step=step: f(precision_step(d, p, step))
          for p in ("fp32", "bf16") for f in (statistics.mean, sd)])
      for step in STAT_STEPS],
    q(PERFORMANCE, "Each run trained {:.1f}–{:.1f} minutes in float32 and {:.1f}–{:.1f} in bf16", PRECISION,
      *[lambda d, p=p, f=f: f(precision_minutes(p)) for p in ("fp32", "bf16") for f in (min, max)]),
    q(PERFORMANCE, "the bf16 run ends within {:.3f} FG-ARI of the float32 run ({:.3f} / {:.3f}, {:.3f} / {:.3f}, "
      "{:.3f} / {:.3f})", PRECISION, lambda d: max(precision_gaps(d, final=True)),
      *[f"candidates.{p}.fg_ari.{seed}" for seed in range(3) for p in ("fp32", "bf16")]),
    q(PERFORMANCE, "At single evaluations the two differ by up to {:.3f} (seed 1, step 1,250)", PRECISION,
      lambda d: max(precision_gaps(d, final=False))),
    q(PERFORMANCE, "The seeds differ from each other by up to {:.3f} at the end (float32: {:.3f} vs {:.3f}).",
      PRECISION,
      lambda d: d["candidates"]["fp32"]["fg_ari"]["0"] - d["candidates"]["fp32"]["fg_ari"]["2"],
      "candidates.fp32.fg_ari.0", "candidates.fp32.fg_ari.2"),
    q(PERFORMANCE, "no effect of bf16 on learning larger than {:.3f} FG-ARI at step {:,}, in 3 paired seeds", PRECISION,
      lambda d: max(precision_gaps(d, final=True)), "candidates.fp32.curves.0.-1.step"),
    q(PERFORMANCE, "bf16 trains {:.1f}× faster on this model ({:.1f} vs {:.1f} img/s, seed 0)", PRECISION,
      lambda d: (d["candidates"]["bf16"]["measures"]["train_img_per_s"]["0"]
                 / d["candidates"]["fp32"]["measures"]["train_img_per_s"]["0"]),
      "candidates.bf16.measures.train_img_per_s.0", "candidates.fp32.measures.train_img_per_s.0"),
    # docs/reproduction.md: the rows.
    q(REPRODUCTION, "| seed 0 of the chosen CPU recipe: {:.1f} at T = 3, {:.1f} at T = 5 ({:,} images, {:.2f} % of the "
      "paper's 32M); seeds 0–2: {:.1f} ± {:.1f} |", CARD_TETRO, lambda d: 100 * get(d, card_eval(3)),
      lambda d: 100 * get(d, card_eval(5)), "images_seen", share_of_paper(),
      lambda d: 100 * clip1_seeds(load(COLOUR), 3)[0], lambda d: 100 * clip1_seeds(load(COLOUR), 3)[1]),
    q(REPRODUCTION, "| {:.1f} ({:,} images, {:.2f} %); a run", ROW_MDS, lambda d: 100 * d["value"], "images_seen",
      share_of_paper()),
    q(REPRODUCTION, "One core of an AMX Xeon trains about {:,.0f} steps of batch 16 an hour in bf16 (the row's run: {:,} "
      "steps in {:.1f} minutes)", ROW_TETRO, lambda d: round(d["steps"] / d["minutes"] * 60, -2), "steps", "minutes"),
    q(REPRODUCTION, "an AVX2 core about {:,.0f} in float32 (the old recipe's seed 0: {:,} steps in {:.0f} minutes)",
      CURVE_S0, lambda d: round(38000 / get(d, curve_at(38000, "minutes")) * 60, -2), lambda d: 38000,
      curve_at(38000, "minutes")),
    q(REPRODUCTION, "float32 on one core of a 2-core AMD EPYC VM (AVX2) to step {:,}", COLOUR,
      step_of("tetro_s0_step_00038055")),
    q(REPRODUCTION, "| needs a GPU ({:.0f} GFLOP per training image, {:.1f} img/s on a CPU core: "
      "`run_quick_clevr6_mirrored.json`) |", SPEED_CLEVR6,
      "recipes[recipe=clevr6,model=slotattn-fast].train_gflop_per_image",
      "recipes[recipe=clevr6,model=slotattn-fast].train_images_per_s"),
    # docs/reproduction.md: Tetrominoes seed 0.
    *[q(REPRODUCTION, f"{{:.3f}} @ {k}k", CURVE_S0, curve_at(1000 * k)) for k in (1, 2, 4, 6, 9, 14, 16, 19, 26, 28, 32,
                                                                                 34, 36, 38)],
    # seed 0 continued on 2026-12-07, and seed 0 of the chosen recipe (clipping) continued from its study run
    *[q(REPRODUCTION, f"{{:.3f}} @{sep}{k}k", CURVE_S0, curve_at(1000 * k))
      for k, sep in ((39, " "), (47, " "), (51, " "), (58, " "), (59, "\n"), (60, " "))],
    q(REPRODUCTION, "At step {:,} its {:.3f} lies inside the chosen recipe's three seeds ({:.3f}–{:.3f}): one seed of the "
      "old recipe, in float32 on other hardware until step {:,}", CURVE_S0,
      lambda d: get(load(SEEDS_CLIP1), "common_steps.-1.step"),
      lambda d: get(d, curve_at(get(load(SEEDS_CLIP1), "common_steps.-1.step"))),
      lambda d: min(get(load(SEEDS_CLIP1), "common_steps.-1.fg_ari").values()),
      lambda d: max(get(load(SEEDS_CLIP1), "common_steps.-1.fg_ari").values()),
      lambda d: step_of("tetro_s0_step_00038055")(load(COLOUR))),
    q(REPRODUCTION, "the final checkpoint, step {:,} ({:,} images, {:.0f} minutes in all), scores {:.3f} at T = 3",
      CURVE_S0, lambda d: step_of("tetro_s0_step_00060065")(load(COLOUR)),
      lambda d: 16 * step_of("tetro_s0_step_00060065")(load(COLOUR)), "minutes",
      lambda d: colour("tetro_s0_step_00060065", 3, "all")(load(COLOUR))),
    *[q(REPRODUCTION, f"{{:.3f}} @{sep}{k}k", CURVE_CLIP1_S0, curve_at(1000 * k))
      for k, sep in ((14, " "), (15, " "), (20, " "), (21, " "), (24, "\n"), (25, " "))],
    *[q(REPRODUCTION, f"{{:.3f}} @ {k}k", CURVE_CLIP1_S0, curve_at(1000 * k)) for k in (26, 29, 30, 35, 38, 39)],
    q(REPRODUCTION, "stopped at step {:,} ({:.0k} images, {:.0f} minutes in all). The row and the shipped weights "
      "stay at step {:,}", CURVE_CLIP1_S0, lambda d: resume_step("tetrominoes_cpu_clip1_s0"),
      lambda d: 16 * resume_step("tetrominoes_cpu_clip1_s0"), "minutes", lambda d: load(ROW_TETRO)["steps"]),
    q(REPRODUCTION, "| CPU run of seed 0 resumable (step {:,}) |", CURVE_CLIP1_S0,
      lambda d: resume_step("tetrominoes_cpu_clip1_s0")),
    # seeds 0-2 of the chosen recipe at step 25,736
    q(REPRODUCTION, "runs on 2026-12-07 on the AMX Xeon's other core: {:.1f} and {:.1f} minutes in all)", CURVE_CLIP1[1],
      "minutes", lambda d: load(CURVE_CLIP1[2])["minutes"]),
    q(REPRODUCTION, "FG-ARI {:.3f}, {:.3f}, {:.3f} at T = 3, **{:.3f} ± {:.3f}** (mean ± sample std, n = 3); at T = 5 "
      "{:.3f}, {:.3f}, {:.3f}, {:.3f} ± {:.3f}.", COLOUR, *[colour(c, 3, "all") for c in CLIP1_CKPTS],
      lambda d: clip1_seeds(d, 3)[0], lambda d: clip1_seeds(d, 3)[1], *[colour(c, 5, "all") for c in CLIP1_CKPTS],
      lambda d: clip1_seeds(d, 5)[0], lambda d: clip1_seeds(d, 5)[1]),
    q(REPRODUCTION, "gave {:.3f} for seed 1 and {:.3f} for seed 2", CURVE_CLIP1[1], "curve.-1.fg_ari",
      lambda d: load(CURVE_CLIP1[2])["curve"][-1]["fg_ari"]),
    q(REPRODUCTION, "at step 25,000, the last evaluation all three have, {:.3f} ± {:.3f} ({:.3f}, {:.3f}, {:.3f})",
      SEEDS_CLIP1, "common_steps.-1.mean", "common_steps.-1.std",
      *[f"common_steps.-1.fg_ari.tetrominoes_cpu_clip1_s{seed}" for seed in range(3)]),
    q(REPRODUCTION, "**Seeds 0–2 of the chosen recipe at step {:,}** ({:,} images each;", ROW_TETRO, "steps",
      "images_seen"),
    q(REPRODUCTION, "the colour JSON keeps 4 decimals ({:.4f} for seed 0 at T = 3)", COLOUR,
      stored_colour(CLIP1_S0_CKPT, 3, "all")),
    q(REPRODUCTION, "The draw of the initial slots alone moved a checkpoint's score by up to {:.3f} here", COLOUR,
      slot_draw_effect),
    q(REPRODUCTION, "Single evaluations 1,000 steps apart jump by up to {:.3f} ({:.3f} @ {:.0f}k, {:.3f} @ {:.0f}k;",
      CURVE_CLIP1_S0, lambda d: largest_jump(d)[0], lambda d: largest_jump(d)[1]["fg_ari"],
      lambda d: largest_jump(d)[1]["step"] / 1000, lambda d: largest_jump(d)[2]["fg_ari"],
      lambda d: largest_jump(d)[2]["step"] / 1000),
    q(REPRODUCTION, "{:.3f} at step {:,}** ({:.0k} images, {:.1f} minutes)", ROW_TETRO, "value", "steps",
      "images_seen", "minutes"),
    q(REPRODUCTION, "(`docs/models.md`: {:.3f} at T = 5, {:.3f} / {:.3f} at T = 3 / 5 on an unrelated seed)",
      CARD_TETRO, card_eval(5), card_eval(3, 20261204), card_eval(5, 20261204)),
    # docs/reproduction.md: colours.
    q(REPRODUCTION, "In {:.1f} % of the {} held-out generated scenes ({} scenes) two pieces of the same colour touch",
      COLOUR, lambda d: 100 * touching(d), "num", "touching_same_colour"),
    q(REPRODUCTION, "Segmenting by same-colour regions scores {:.3f} over all scenes", COLOUR,
      "colour_regions_fg_ari.all"),
    q(REPRODUCTION, "| scenes colours separate ({:.1f} %) | same-colour touching ({:.1f} %) |", COLOUR,
      lambda d: 100 - 100 * touching(d), lambda d: 100 * touching(d)),
    *[q(REPRODUCTION, f"| {label} | 3 / 5 / 7 | " + " | ".join(["{:.3f} / {:.3f} / {:.3f}"] * 3) + " |", COLOUR,
        *[colour(ckpt, t, subset) for subset in COLOUR_SUBSETS for t in (3, 5, 7)])
      for label, ckpt in COLOUR_TABLE],
    q(REPRODUCTION, "on the {:.1f} % of scenes where colours separate the pieces, the chosen recipe's seed 0 scores "
      "{:.3f} at T = 3 and {:.3f} at T = 5; on the {:.1f} % where two same-coloured pieces touch it scores {:.3f}",
      COLOUR, lambda d: 100 - 100 * touching(d), colour(CLIP1_S0_CKPT, 3, "colours_separate"),
      colour(CLIP1_S0_CKPT, 5, "colours_separate"), lambda d: 100 * touching(d),
      colour(CLIP1_S0_CKPT, 3, "touching_same_colour")),
    q(REPRODUCTION, "it scores {:.3f} ({:.3f} at T = 5), seeds",  COLOUR, colour(CLIP1_S0_CKPT, 3, "touching_same_colour"),
      colour(CLIP1_S0_CKPT, 5, "touching_same_colour")),
    q(REPRODUCTION, "seeds 1 and 2 {:.2f} and {:.2f}. At T = 3", COLOUR,
      *[colour(c, 3, "touching_same_colour") for c in CLIP1_CKPTS[1:]]),
    q(REPRODUCTION, "those scenes cause only {:.0f} % of seed 0's shortfall from 1 (seeds 1 and 2: {:.0f} % and {:.0f} %); "
      "scored perfectly, they would lift it to {:.3f} ({:.3f}, {:.3f}), still short of 0.99", COLOUR,
      *[shortfall_share(c, 3) for c in CLIP1_CKPTS], *[perfect_touching(c, 3) for c in CLIP1_CKPTS]),
    q(REPRODUCTION, "At T = 5 they cause {:.0f} % of seed 0's shortfall, and with {:.3f} on the rest, 0.99 on *all* "
      "generated scenes would need about {:.2f} on them", COLOUR, shortfall_share(CLIP1_S0_CKPT, 5),
      colour(CLIP1_S0_CKPT, 5, "colours_separate"),
      lambda d: (0.99 - (1 - touching(d)) * colour(CLIP1_S0_CKPT, 5, "colours_separate")(d)) / touching(d)),
    q(REPRODUCTION, "moved only from {:.3f} to {:.3f} on them (T = 3) between steps 38,055 and 60,065", COLOUR,
      colour("tetro_s0_step_00038055", 3, "touching_same_colour"),
      colour("tetro_s0_step_00060065", 3, "touching_same_colour")),
    q(REPRODUCTION, "where its fourth is 5 ({}) the third decimal above can be one off", COLOUR,
      lambda d: ", ".join(f"{v:.4f}" for v in ambiguous_in_table(d))),
    q(REPRODUCTION, "slot noise ({:.3f} where the JSON's {:.4f} would print {:.3f})", COLOUR,
      colour(CLIP1_S0_CKPT, 3, "all"), stored_colour(CLIP1_S0_CKPT, 3, "all"), stored_colour(CLIP1_S0_CKPT, 3, "all")),
    q(REPRODUCTION, "after 32M training images ({:.1f}× the row's {:,})", ROW_TETRO,
      lambda d: PAPER_IMAGES / d["images_seen"], "images_seen"),
    q(REPRODUCTION, "{:.3f} / {:.3f} / {:.3f} at T = 3 / 5 / 7 on the held-out seed, {:.3f} / {:.3f} / {:.3f} on "
      "scenes of seed 4242", STEP14K, *[f"[eval_seed={seed},num_iterations={t}].fg_ari" for seed in (1000003, 4242)
                                for t in (3, 5, 7)]),
    # docs/reproduction.md: Tetrominoes seed 1 and both seeds.
    *[q(REPRODUCTION, f"{{:.3f}} @ {k}k", CURVE_S1, curve_at(1000 * k)) for k in (1, 2, 3, 4, 6, 7, 8)],
    q(REPRODUCTION, "stopped at step {:,} ({:.0k} images, {:.0f} minutes)", COLOUR, step_of("tetro_s1_step_00008135"),
      lambda d: 16 * step_of("tetro_s1_step_00008135")(d), lambda d: load(CURVE_S1)["minutes"]),
    q(REPRODUCTION, "FG-ARI {:.3f} ± {:.3f} at step 8,000 (mean ± sample std, n = {}: {:.3f} and {:.3f})", SEEDS,
      "common_steps[step=8000].mean", lambda d: sd(list(get(d, "common_steps[step=8000].fg_ari").values())),
      lambda d: len(get(d, "common_steps[step=8000].fg_ari")), "common_steps[step=8000].fg_ari.tetrominoes_cpu_s0",
      "common_steps[step=8000].fg_ari.tetrominoes_cpu_s1"),
    # docs/reproduction.md: Multi-dSprites, and the run from scratch with clipping.
    q(REPRODUCTION, "a run from scratch with clipping: {:.1f} ({:,} images) |", CURVE_MDS_CLIP1,
      lambda d: 100 * d["curve"][-1]["fg_ari"], lambda d: 16 * d["checkpoint_step"]),
    q(REPRODUCTION, "bf16, median {:.1f} training images/s): FG-ARI", CURVE_MDS_CLIP1, "median_train_img_per_s"),
    *[q(REPRODUCTION, f"{{:.3f}} @ {k:,}", CURVE_MDS_CLIP1, curve_at(k))
      for k in (1000, 2000, 4000, 5500, 7000, 10000, 11000)],
    q(REPRODUCTION, "stopped at step {:,} ({:,} images, {:.0f} minutes). It passed the shipped weights' {:.3f} after "
      "{:,} images", CURVE_MDS_CLIP1, "checkpoint_step",
      lambda d: 16 * d["checkpoint_step"], "minutes", lambda d: load(ROW_MDS)["value"],
      lambda d: next(c["images"] for c in d["curve"] if c["fg_ari"] > load(ROW_MDS)["value"])),
    q(REPRODUCTION, "has stayed between {:.2f} and {:.2f} since", CURVE_MDS_CLIP1,
      lambda d: min(c["fg_ari"] for c in d["curve"] if c["step"] >= 5500) // 0.01 / 100,
      lambda d: -(-max(c["fg_ari"] for c in d["curve"] if c["step"] >= 5500) // 0.01) / 100),
    q(REPRODUCTION, "its last evaluation is {:.3f} above the shipped {:.3f}", CURVE_MDS_CLIP1,
      lambda d: d["curve"][-1]["fg_ari"] - load(ROW_MDS)["value"], lambda d: load(ROW_MDS)["value"]),
    q(REPRODUCTION, "({:.3f} → {:.3f} in 1,000 steps)", CURVE_MDS_CLIP1, curve_at(10000), curve_at(11000)),
    q(REPRODUCTION, "after {:.2f} % of the paper's 32M images; at this speed those would take ~{:.0f} CPU-days",
      CURVE_MDS_CLIP1, lambda d: 100 * 16 * d["checkpoint_step"] / PAPER_IMAGES,
      lambda d: PAPER_IMAGES / d["median_train_img_per_s"] / 86400),
    # docs/reproduction.md: Multi-dSprites.
    q(REPRODUCTION, "one core, ~{:.1f} img/s", ROW_MDS, fine_tune_rate),
    q(REPRODUCTION, "The shipped weights of 2026-11-26 ({:.0k} images in {:.0f} minutes,", ROW_MDS,
      "started_from.images", "started_from.minutes"),
    q(REPRODUCTION, "Where it stands: {:.2f} against the issue's 0.85", CURVE_MDS_CLIP1, "curve.-1.fg_ari"),
    q(REPRODUCTION, "FG-ARI {:.3f} @ {:,}, {:.3f} @ {:,}, {:.3f} @ {:,}, {:.3f} @ {:,}, {:.3f} @ {:,}", CURVE_MDS,
      *[v for i in range(5) for v in (f"curve.{i}.fg_ari", f"curve.{i}.step")]),
    q(REPRODUCTION, "**{:.3f} at step {:,}** ({:.0k} new images, {:.0k} in all, {:.0f} minutes in all)", ROW_MDS,
      "value", "steps", fine_tune_images, "images_seen", "minutes"),
    q(REPRODUCTION, "The paper's 32M images are ~{:.0f} CPU-days at this speed.", ROW_MDS,
      lambda d: PAPER_IMAGES / fine_tune_rate(d) / 86400),
    # docs/reproduction.md: the paper's recipe on one core.
    *[q(REPRODUCTION, f"| {s} | {{:.1f}} | {{:,}} | {{:.3f}} | {{:.3f}} | {{:.3f}} |", CURVE_PAPER,
        curve_at(s, "minutes"), lambda d, s=s: 16 * s, curve_at(s), curve_at(s, "ari"), curve_at(s, "mbo"))
      for s in (1000, 2000, 2500, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 9500, 10000, 10182)],
    q(REPRODUCTION, "FG-ARI 0.90 was reached at step {:,} ({:.1f} minutes); 0.97 not within the run.", CURVE_PAPER,
      lambda d: d["reached"]["0.9"]["step"], lambda d: d["reached"]["0.9"]["minutes"]),
    q(REPRODUCTION, "The best evaluation was {:.3f} at step {:,} ({:.1f} minutes); the last (step {:,}, {:.0f} "
      "minutes) gave {:.3f}.", CURVE_PAPER, "best.fg_ari", "best.step", "best.minutes", "final_step", "minutes",
      "curve.-1.fg_ari"),
    q(REPRODUCTION, "Throughput: median {:.1f} training images/s", CURVE_PAPER, "median_train_img_per_s"),
    q(REPRODUCTION, "ARI with the background stays low (≤ {:.3f})", CURVE_PAPER,
      lambda d: max(e["ari"] for e in d["curve"])),
    q(REPRODUCTION, "The run saw {:,} images, {:.2f} % of the paper's 32M", CURVE_PAPER, lambda d: 16 * d["final_step"],
      lambda d: 100 * 16 * d["final_step"] / PAPER_IMAGES),  # batch 16, as the page says
    # docs/models.md (its card tables are checked by tests/test_pretrained.py).
    q(MODELS, "`tetrominoes` saw {:.2f} % and `multi_dsprites` {:.2f} % of the paper's 32 million", CARD_TETRO,
      share_of_paper(), lambda d: 100 * load(CARD_MDS)["images_seen"] / PAPER_IMAGES),
    q(MODELS, "(ARI with the background: {:.2f})", CARD_TETRO, card_eval(3, key="ari")),
    q(MODELS, "the model costs {:.0f} GFLOP per training image, {:.1f} img/s on a CPU core", SPEED_CLEVR6,
      "recipes[recipe=clevr6,model=slotattn-fast].train_gflop_per_image",
      "recipes[recipe=clevr6,model=slotattn-fast].train_images_per_s"),
    q(MODELS, "({:.1f} % of generated scenes;", COLOUR, lambda d: 100 * touching(d)),
    q(MODELS, "At T = 5 most remaining errors ({:.0f} % of the shortfall from 1)", COLOUR,
      shortfall_share(CLIP1_S0_CKPT, 5)),
    q(MODELS, "at T = 3, the trained T, those scenes are only {:.0f} % of it", COLOUR, shortfall_share(CLIP1_S0_CKPT, 3)),
    q(MODELS, "Only the run's newest state is committed, at step {:,}, past the shipped step {:,}", CARD_TETRO,
      lambda d: resume_step("tetrominoes_cpu_clip1_s0"), "steps"),
    q(MODELS, "So the run can be continued from step {:,} rather than rerun", CARD_TETRO,
      lambda d: resume_step("tetrominoes_cpu_clip1_s0")),
    q(MODELS, "# or continue the shipped run from its committed state (step {:,}):", CARD_TETRO,
      lambda d: resume_step("tetrominoes_cpu_clip1_s0")),
    q(MODELS, "this checkpoint scores FG-ARI {:.3f} at T = 3 and **{:.3f} at T = 5**, on the others {:.3f}", COLOUR,
      colour(CLIP1_S0_CKPT, 3, "colours_separate"), colour(CLIP1_S0_CKPT, 5, "colours_separate"),
      colour(CLIP1_S0_CKPT, 3, "touching_same_colour")),
    # benchmarks/README.md: the speed suite's tables as benchmarks/run.py prints them from the JSON.
    *[q(BENCHMARKS, f"| {r['recipe']} | {r['model']} | {r['precision']} | {r['batch']} | {{:.2f}} | {{:.2f}}× | "
        f"{{:.2f}}× | {{:.2f}} | {{:.2f}}× | {{:.0f}} |", file,
        f"recipes[recipe={r['recipe']},model={r['model']}].train_images_per_s",
        speed_ratio(r["recipe"], r["model"]), speed_ratio(r["recipe"], r["model"], "reference-bf16cl"),
        f"recipes[recipe={r['recipe']},model={r['model']}].infer_images_per_s",
        speed_ratio(r["recipe"], r["model"], key="infer_images_per_s"),
        f"recipes[recipe={r['recipe']},model={r['model']}].train_peak_mib")
      for file in (SPEED, SPEED_CLEVR6) for r in load(file)["recipes"]],
    *[q(BENCHMARKS, f"| {r['recipe']} | {r['model']} | {{:.2f}} | {{:.2f}} | {{:.1f}} | {{:.1f}}% | {{:.1f}}% |", SPEED,
        *[f"recipes[recipe={r['recipe']},model={r['model']}].{k}" for k in
          ("train_gflop_per_image", "infer_gflop_per_image", "train_achieved_gflops")],
        *[lambda d, r=r, k=k: 100 * speed_row(d, r["recipe"], r["model"])[k] for k in
          ("train_fraction_of_matmul_peak", "train_fraction_of_conv_peak")])
      for r in load(SPEED)["recipes"]],
    *[q(BENCHMARKS, f"| {r['model']} | {r['precision']} | {{:,}} | {{:.1f}} | {{:.2f}}× | {{:.1f}} | {{:.2f}}× | "
        f"{{:.2f}}× |", SPEED, f"module[model={r['model']}].params", f"module[model={r['model']}].forward_ms",
        lambda d, r=r: module_row(d, "reference")["forward_ms"] / r["forward_ms"],
        f"module[model={r['model']}].forward_backward_ms",
        lambda d, r=r: module_row(d, "reference")["forward_backward_ms"] / r["forward_backward_ms"],
        lambda d, r=r: module_row(d, "lucidrains")["forward_backward_ms"] / r["forward_backward_ms"])
      for r in load(SPEED)["module"]],
    q(BENCHMARKS, "| matmul 2048×2048 | {:.0f} | {:.0f} |", SPEED, "peaks.matmul_gflops_fp32",
      "peaks.matmul_gflops_bf16"),
    *[q(BENCHMARKS, f"{recipe}: slotattn vs reference with shared weights and slot noise, max |Δ recon| = {{:.1e}}",
        SPEED, f"recipes[recipe={recipe},model=slotattn-fp32].max_recon_difference_vs_reference")
      for recipe in ("tetrominoes", "multi_dsprites")],
    q(BENCHMARKS, "| float32 path ≥ 1.2× plain reference | **{:.2f}×** ✓ | **{:.2f}×** ✓ | {:.2f}× ✗ |", SPEED,
      speed_ratio("tetrominoes", "slotattn-fp32"), speed_ratio("multi_dsprites", "slotattn-fp32"),
      lambda d: speed_ratio("clevr6", "slotattn-fp32")(load(SPEED_CLEVR6))),
    q(BENCHMARKS, "| fast path ≥ 1.3× reference under the same bf16 + channels-last | **{:.2f}×** ✓ | **{:.2f}×** ✓ | "
      "{:.2f}× ✗ |", SPEED, speed_ratio("tetrominoes", "slotattn-fast", "reference-bf16cl"),
      speed_ratio("multi_dsprites", "slotattn-fast", "reference-bf16cl"),
      lambda d: speed_ratio("clevr6", "slotattn-fast", "reference-bf16cl")(load(SPEED_CLEVR6))),
    q(BENCHMARKS, "| fast path ≥ 5× plain float32 reference | {:.2f}× ✗ | {:.2f}× ✗ | {:.2f}× ✗ |", SPEED,
      speed_ratio("tetrominoes", "slotattn-fast"), speed_ratio("multi_dsprites", "slotattn-fast"),
      lambda d: speed_ratio("clevr6", "slotattn-fast")(load(SPEED_CLEVR6))),
    q(BENCHMARKS, "fast path **{:.2f}×** ✓ (float32 vs float32: {:.2f}×)", SPEED,
      module_vs_lucidrains("slotattn-fast"), module_vs_lucidrains("slotattn-fp32")),
    q(BENCHMARKS, "the same run measures bf16 at {:.1f}–{:.1f}× float32 (matmul {:.0f} vs {:.0f}, conv {:.0f} vs "
      "{:.0f} GFLOP/s on one core)", SPEED, lambda d: d["peaks"]["conv_gflops_bf16"] / d["peaks"]["conv_gflops_fp32"],
      lambda d: d["peaks"]["matmul_gflops_bf16"] / d["peaks"]["matmul_gflops_fp32"], "peaks.matmul_gflops_bf16",
      "peaks.matmul_gflops_fp32", "peaks.conv_gflops_bf16", "peaks.conv_gflops_fp32"),
    q(BENCHMARKS, "slotattn-fast reaches {:.0f}–{:.0f} % of that bf16 peak", SPEED,
      lambda d: min(100 * r[k] for r in d["recipes"] if r["model"] == "slotattn-fast"
                    for k in ("train_fraction_of_matmul_peak", "train_fraction_of_conv_peak")),
      lambda d: max(100 * r[k] for r in d["recipes"] if r["model"] == "slotattn-fast"
                    for k in ("train_fraction_of_matmul_peak", "train_fraction_of_conv_peak"))),
    q(BENCHMARKS, "so rewrite 1 removes only {:.1f} % of the FLOPs ({:.1f} → {:.1f} GFLOP/image)", SPEED,
      lambda d: 100 * (1 - speed_row(d, "clevr6", "slotattn-fp32")["train_gflop_per_image"]
                       / speed_row(d, "clevr6", "reference")["train_gflop_per_image"]),
      "recipes[recipe=clevr6,model=reference].train_gflop_per_image",
      "recipes[recipe=clevr6,model=slotattn-fp32].train_gflop_per_image"),
]

PAGES = sorted({quote.page for quote in QUOTES})


@pytest.mark.parametrize("quote", QUOTES, ids=str)
def test_quoted_number_equals_its_json(quote):
    text = normalised(expected(quote))
    page = normalised((ROOT / quote.page).read_text())
    assert text in page, f"{quote.page} should say {text!r} ({quote.file}); the page or the JSON changed"


def test_the_registry_covers_every_page():
    assert set(PAGES) == {README, PAPER_EXACT, PERFORMANCE, REPRODUCTION, MODELS, BENCHMARKS}
    numbers = sum(len(quote.values) for quote in QUOTES)
    assert len(QUOTES) >= 100 and numbers >= 400


def test_a_drifted_number_fails():
    """A page that quotes a number one unit off in its last digit is caught."""
    quote = QUOTES[0]
    text = normalised(expected(quote))
    drifted = re.sub(r"(\d)(?!.*\d)", lambda m: str((int(m.group(1)) + 1) % 10), text)
    assert drifted != text and drifted not in normalised((ROOT / quote.page).read_text())


def test_key_paths_and_formats():
    data = {"a": [{"k": 1, "v": 2.5}, {"k": None, "v": 3}], "b": {"x": {"y": 1}, "z": {"y": 2}}}
    assert get(data, "a[k=1].v") == 2.5 and get(data, "a[k=None].v") == 3 and get(data, "a.-1.v") == 3
    assert get(data, "b.*.y") == [1, 2]
    assert f"{Num(1.959e-4):.2E} {Num(0.0):.1E} {Num(608880):.0k} {Num(6.6e-9):.0E}" == "1.96e-4 0 609k 7e-9"
    assert round(sd([0.8916453849124008, 0.9070200159240909]), 3) == 0.011


def test_the_demos_short_run_note_counts_the_steps_the_readme_expects_on_avx2():
    from slotattn.cli import DEMO_SLOW_MACHINE_STEPS

    assert DEMO_SLOW_MACHINE_STEPS == load(DEMO_RUNS)["avx2_budget"]["runs"][0]["steps"]
    assert f"before {DEMO_SLOW_MACHINE_STEPS:,} steps (a slower or busy machine)" in (ROOT / README).read_text()


STUDY_PAGES = [("tetrominoes_cpu", REPRODUCTION), ("demo", PERFORMANCE), ("precision", PERFORMANCE)]


def study_definition(name: str):
    return importlib.import_module(f"studies.{name}.definition")


@pytest.mark.parametrize("name,page", STUDY_PAGES)
def test_a_study_table_on_a_page_is_the_committed_study(name, page):
    """The page shows the study's committed table.md between the study's markers, and its summary.json and table.md
    are what its committed per-run JSON give (`python -m studies.NAME summary --page PAGE` writes all three)."""
    from studies.study import markdown_table, page_with_table, summarize

    study = study_definition(name).STUDY
    summary = summarize(study)
    assert load(str(study.results().relative_to(ROOT) / "summary.json")) == summary
    table = (study.results() / "table.md").read_text()
    assert table == markdown_table(summary) + "\n"
    text = (ROOT / page).read_text()
    assert text == page_with_table(text, study, table.strip()), f"run python -m studies.{name} summary --page {page}"


def test_the_demo_recipe_is_the_studys_best_candidate():
    """The recipe `configs/demo.yaml` is the demo study's best candidate (highest mean) applied to its base. It also
    has the highest lowest seed, and every other candidate's lowest seed is below it: more seeds of another could
    lower its minimum, never lift it above the recipe's (the page's reason for stopping others short of 3 seeds)."""
    from slotattn import load_config

    study = study_definition("demo").STUDY
    summary = load(DEMO_STUDY)
    best = max(summary["candidates"], key=lambda name: summary["candidates"][name]["mean"])
    assert summary["candidates"][best]["n"] >= 3
    assert all(c["min"] < summary["candidates"][best]["min"] for name, c in summary["candidates"].items() if name != best)
    assert load_config("demo") == load_config(study.base, study.candidates[best])


def test_the_cpu_recipe_studys_candidates_are_the_ones_it_defines():
    """Every candidate in the CPU-recipe study's summary is one its definition has, with the overrides it defines
    and the study's image budget."""
    definition = study_definition("tetrominoes_cpu")
    for name, row in load(CPU_STUDY)["candidates"].items():
        assert row["overrides"] == list(definition.STUDY.candidates[name])
        assert row["images"] == definition.BUDGET_IMAGES
