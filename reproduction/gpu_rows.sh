#!/usr/bin/env bash
# The prepared GPU check (issue "Ready for the first GPU"): in at most ~9 minutes on one lent GPU machine, writes
# $OUT/gpu_rows.json with, per measurement, training images/s, GPU utilisation (nvidia-smi, sampled every 0.5 s) and
# the share of wall time the training loop waited for data (the engine's `data_wait` in metrics.jsonl):
#   - Tetrominoes, the paper's recipe (batch 64), bf16 (auto on Ampere and later) and fp32, 1.5 minutes each;
#   - CLEVR6, the paper's recipe (128x128, batch 64), from a store rendered first with all CPU cores, 2 minutes;
#   - a 2-process torchrun smoke run (NCCL) when the machine shows at least 2 GPUs, else a line saying so.
# Plus env.txt (torch, GPU, bf16 support) and log.txt. The rows of benchmarks/results/reproduce are not touched.
#
# Before the call, once, in the repository root on the development machine (the device image has PyTorch, numpy,
# scipy, safetensors, jaxtyping, einops, ... but maybe not google-crc32c or markdown, which slotattn imports):
#   mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl google-crc32c==1.9.0 markdown==3.10
# Then the device tool: run(command="bash reproduction/gpu_rows.sh", carry=[".whl"], timeout_s=600).
# Smoke test on a CPU (everything shorter and smaller; the GPU-only parts say they were skipped):
#   DEVICE=cpu SCALE=0.02 EXTRA="--set train.batch_size=2" OUT=/tmp/gpu_smoke WORK=/tmp/gpu_smoke_work \
#       bash reproduction/gpu_rows.sh
set -uo pipefail
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-1}  # multiplies every time budget (0.02 for a CPU smoke test)
WORK=${WORK:-/tmp/slotattn_gpu_rows}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"  # further --set arguments for every run (the CPU smoke test's smaller batch)
mkdir -p "$OUT" "$WORK"
if ! python3 -c "import google_crc32c, markdown" 2> /dev/null && ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
minutes() { python3 -c "print(round($1 * $SCALE, 3))"; }
CORES=$(nproc)
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")

python3 - > "$OUT/env.txt" 2>&1 <<'EOF'
import os, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cpus", os.cpu_count())
for i in range(torch.cuda.device_count()):
    print("gpu", i, torch.cuda.get_device_name(i), "capability", torch.cuda.get_device_capability(i),
          "native bf16", torch.cuda.is_bf16_supported(including_emulation=False))
EOF
cat "$OUT/env.txt"

sample_gpu() {  # name: nvidia-smi utilisation every 0.5 s into $WORK/NAME.smi until killed
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 500 > "$WORK/$1.smi" &
        echo $!
    fi
}

train() {  # name, minutes, recipe, extra arguments...: one fresh training run of at most MINUTES
    local name=$1 budget=$2 recipe=$3
    shift 3
    echo "== $name: $budget minutes, $recipe on $DEVICE $*" | tee -a "$OUT/log.txt"
    local smi
    smi=$(sample_gpu "$name")
    python3 -m slotattn train --config "$recipe" --run-dir "$WORK/$name" --overwrite --no-progress --device "$DEVICE" \
        --set "train.max_minutes=$budget" --set train.log_every=20 --set train.eval_every=1000000 \
        --set train.vis_every=1000000 --set data.num_eval=64 "$@" "${EXTRA_ARGS[@]}" 2>&1 | tail -n 4 \
        | tee -a "$OUT/log.txt"
    [ -n "$smi" ] && kill "$smi" 2> /dev/null
}

train tetrominoes_bf16 "$(minutes 1.5)" tetrominoes --set train.precision=auto
train tetrominoes_fp32 "$(minutes 1.5)" tetrominoes --set train.precision=fp32

# CLEVR6 reads a store: rendering costs ~10 scenes/s per core, so it is made first with every core.
CLEVR_NUM=$(python3 -c "print(max(64, int(6000 * $SCALE)))")
echo "== rendering $CLEVR_NUM CLEVR6 scenes on $CORES processes" | tee -a "$OUT/log.txt"
python3 - "$WORK/clevr6_store" "$CLEVR_NUM" "$CORES" <<'EOF' 2>&1 | tail -n 2 | tee -a "$OUT/log.txt"
import sys, time
from concurrent.futures import ProcessPoolExecutor
import numpy as np
from slotattn.data.build import generator_for
from slotattn.data.store import write_store

out, num, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = max(1, num // (4 * workers))
starts = list(range(0, num, chunk))

def render(i):
    return generator_for("clevr6")(min(chunk, num - starts[i]), np.random.default_rng([0, i]))

if __name__ == "__main__":
    start = time.time()
    with ProcessPoolExecutor(workers) as pool:
        write_store(out, pool.map(render, range(len(starts))), {"dataset": "clevr6"}, num=num, overwrite=True)
    print(f"rendered {num} scenes in {time.time() - start:.0f} s")
EOF
train clevr6 "$(minutes 2)" clevr6 --set "data.path=$WORK/clevr6_store" --set "data.eval_path=$WORK/clevr6_store" \
    --set "data.num_workers=$(( CORES > 2 ? CORES - 2 : 1 ))"

if [ "$GPUS" -ge 2 ]; then
    echo "== torchrun, 2 processes (NCCL)" | tee -a "$OUT/log.txt"
    python3 -m torch.distributed.run --standalone --nproc_per_node=2 -m slotattn train --config debug \
        --run-dir "$WORK/ddp" --overwrite --no-progress --set train.steps=20 2>&1 | tail -n 3 | tee -a "$OUT/log.txt"
else
    echo "== torchrun smoke run skipped: this machine shows $GPUS GPU(s)" | tee -a "$OUT/log.txt"
fi

python3 - "$WORK" "$GPUS" > "$OUT/gpu_rows.json" <<'EOF'
import json, statistics, sys, time
from pathlib import Path
from slotattn.training.runlog import read_metrics, read_starts

work, gpus = Path(sys.argv[1]), int(sys.argv[2])
result = {"date": time.strftime("%Y-%m-%d"), "runs": {}}
for name in ("tetrominoes_bf16", "tetrominoes_fp32", "clevr6"):
    run_dir = work / name
    if not (run_dir / "metrics.jsonl").exists():
        result["runs"][name] = None
        continue
    logged = [r for r in read_metrics(run_dir) if r["split"] == "train"]
    rows = logged[1:] or logged  # the first window holds the warm-up (cuDNN autotuning, worker start)
    smi = work / f"{name}.smi"
    util = [float(v) for v in smi.read_text().split()] if smi.exists() else []
    result["runs"][name] = {
        "start": read_starts(run_dir)[-1], "steps": max((r["step"] for r in logged), default=0),
        "median_images_per_s": statistics.median(r["img_per_s"] for r in rows) if rows else None,
        "median_data_wait": statistics.median(r["data_wait"] for r in rows) if rows and "data_wait" in rows[0]
        else None,
        "gpu_utilisation_median": statistics.median(util) if util else None}
ddp = work / "ddp" / "metrics.jsonl"
result["torchrun_2_gpus"] = ("skipped: fewer than 2 GPUs" if gpus < 2 else
                             {"ok": ddp.exists() and any(r["step"] == 20 for r in read_metrics(work / "ddp"))})
print(json.dumps(result, indent=1))
EOF
cat "$OUT/gpu_rows.json"
