#!/usr/bin/env bash
# The prepared GPU check of the reproduction issue: Tetrominoes and CLEVR6 rows of the paper's Table 1 with the
# paper's recipe (`slotattn reproduce`), for a few minutes each, plus the device and its training throughput.
# Sized for one lent H200 and ~8 minutes of run time (the device tool's limit is 10 minutes a command).
#
# Before the call, once, in the repository root on the development machine (the device image has PyTorch, numpy,
# scipy, safetensors, jaxtyping, einops, ... but not google-crc32c, which slotattn imports):
#   mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl google-crc32c==1.9.0
# Then the device tool: run(command="bash reproduction/gpu_rows.sh", carry=[".whl"], timeout_s=600).
# Smoke test on a CPU (EXTRA: further --set arguments, recorded in the rows):
#   DEVICE=cpu MIN_TETRO=0.1 MIN_CLEVR=0.1 NUM_EVAL=4 EXTRA="--set train.batch_size=2 --set train.eval_batch_size=4" \
#       OUT=/tmp/gpu_smoke WORK=/tmp/gpu_smoke_work bash reproduction/gpu_rows.sh
#
# Writes to $OUT (default runs/gpu): env.txt, tetrominoes.json, clevr6.json (rows as in
# benchmarks/results/reproduce/), throughput.json, log.txt. Runs continue where they stopped if rerun on the
# same machine (WORK below); a fresh machine starts them afresh.
set -uo pipefail
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
MIN_TETRO=${MIN_TETRO:-3}
MIN_CLEVR=${MIN_CLEVR:-2.5}
WORK=${WORK:-/tmp/slotattn_gpu_rows}
mkdir -p "$OUT" "$WORK"
if ! python3 -c "import google_crc32c" 2> /dev/null && ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
EVAL=()
if [ -n "${NUM_EVAL:-}" ]; then EVAL=(--num-eval "$NUM_EVAL"); fi
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"

python3 - > "$OUT/env.txt" 2>&1 <<'EOF'
import os, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cpus", os.cpu_count())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
EOF
cat "$OUT/env.txt"

run_row() {  # row, minutes, data workers
    echo "== $1: $2 minutes on $DEVICE" | tee -a "$OUT/log.txt"
    python3 -m slotattn.cli reproduce "$1" --device "$DEVICE" --minutes "$2" --out "$WORK" --no-progress \
        "${EVAL[@]}" "${EXTRA_ARGS[@]}" --set "data.num_workers=$3" 2>&1 | tail -n 25 | tee -a "$OUT/log.txt"
    cp "$WORK/$1.json" "$OUT/" 2>/dev/null || echo "no row written for $1" | tee -a "$OUT/log.txt"
}
run_row tetrominoes "$MIN_TETRO" 4
run_row clevr6 "$MIN_CLEVR" "$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))"   # the renderer is CPU-bound: all cores but two

python3 - "$WORK" > "$OUT/throughput.json" <<'EOF'
import json, statistics, sys
from pathlib import Path
from slotattn.training.runlog import read_metrics
result = {}
for name in ("tetrominoes", "clevr6"):
    run_dir = Path(sys.argv[1]) / name / "run"
    if (run_dir / "metrics.jsonl").exists():
        rows = [r for r in read_metrics(run_dir) if r["split"] == "train"]
        result[name] = {"steps": rows[-1]["step"] if rows else 0,
                        "median_train_images_per_s": statistics.median(r["img_per_s"] for r in rows) if rows else None}
print(json.dumps(result, indent=1))
EOF
cat "$OUT/throughput.json"
