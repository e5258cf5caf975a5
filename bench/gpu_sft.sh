#!/bin/bash
# bench/gpu_sft.sh: several SFT variants trained side by side on one GPU, each for the same number
# of steps, sized so that all of them end inside one wall-clock budget; the policies come back as
# archives, to be evaluated where OpenSCAD is (python -m rl.eval on the full corpus).
#
# A tiny policy cannot fill a GPU (bench/sft_throughput.py: a decoding step costs the same for
# 16 rows or 128), so runs that share it each keep most of their speed. The script first trains
# every variant for CAL_STEPS steps at once, reads their steps/s from sft_summary.json, then
# trains them all again for the steps that fit BUDGET_S at the slowest rate (same steps for all).
#
# What it expects (nothing is downloaded, no OpenSCAD, no Ray):
#   - wheels of the packages the GPU image lacks or has at other versions in .whl/ (datasets, dill,
#     multiprocess, transformers, tokenizers; README "A GPU machine without OpenSCAD or network"),
#     installed into $SITE (default /tmp/site) when present ($WHEELS: another folder, or none);
#   - a corpus SFT can read, $CORPUS (default .dev/corpus10k_sft), made small enough to travel by
#     scripts/slim_corpus.py (train and a few val rows, no meshes).
#
# Usage, from the repository root: bash bench/gpu_sft.sh
# Measured (bench/results/gpu_sft_h100_corpus10k.json): three runs sharing one H100, fp32, batch 64,
# 2,400 steps each in 290-318 s (tile64 7.5-8 steps/s, iso16 8.3 once warm). Then on one H200
# (bench/results/gpu_sft_h200_views.json): the default VARIANTS below, calibrated to 1,846 steps
# (10-12 steps/s each, 26 GiB of GPU memory for the three), then again with --seed 1 added to each:
#   SFT_FLAGS='' BUDGET_S=400 bash bench/gpu_sft.sh
# The iso view (16 tokens) beat the tile at both patch sizes on both seeds (README "The tile at the iso
# view's detail"). Its greedy programs scored below the 2,400-step iso run of 2026-11-27 (test protocol
# IoU 0.428 / 0.459 against 0.538), which differed in its steps and its numbers (written as digits):
# STEPS=2400 with an iso16 variant and one adding --policy.number_tokens digits would tell which.
# Sizes (environment): SFT_CONFIG (configs/sft.yaml, the main job's policy: four views tiled, 64
# image tokens; empty: the PolicyConfig defaults, the iso view and 16 image tokens), VARIANTS
# ("name:flags;name:flags", default below: flags added to the config's), BATCH (64), WORKERS
# (dataloader workers per run, 4), CAL_STEPS (60), BUDGET_S (420: the main runs' wall clock),
# SFT_FLAGS ("--bf16"), STEPS (skip the calibration and train this many steps).
# Results go to $OUT (default runs/gpu_sft_out): run.log, versions.txt, nvidia_smi.csv,
# calibration.json and one <variant>.tar.xz per run (final/, sft_summary.json, its log).
set -uo pipefail

started=$(date +%s)
stamp() { echo "[gpu_sft $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*"; }

SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.whl}
CORPUS=${CORPUS:-.dev/corpus10k_sft}
OUT=${OUT:-runs/gpu_sft_out}
RUNS=${RUNS:-runs/gpu_sft}
BATCH=${BATCH:-64}
WORKERS=${WORKERS:-4}
CAL_STEPS=${CAL_STEPS:-60}
BUDGET_S=${BUDGET_S:-420}
SFT_FLAGS=${SFT_FLAGS:---bf16}
SFT_CONFIG=${SFT_CONFIG-configs/sft.yaml}
VARIANTS=${VARIANTS:-"tile64:;tile_p8:--policy.patch_size 8 --policy.scale_factor 4;iso16:--policy.views iso --policy.image_size 128 --policy.patch_size 8 --policy.scale_factor 4"}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$RUNS"
exec > >(tee "$OUT/run.log") 2>&1

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    || { echo "gpu_sft: cannot install $WHEELS/*.whl into $SITE" >&2; exit 1; }
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -f "$CORPUS/build.json" ] || { echo "gpu_sft: no corpus at $CORPUS (scripts/slim_corpus.py makes one)" >&2; exit 3; }
$PY - <<'EOF' | tee "$OUT/versions.txt"
import importlib.metadata as md, sys, torch
print("python", sys.version.split()[0], "; ".join(f"{n} {md.version(n)}" for n in ("torch", "transformers", "tokenizers", "datasets", "accelerate", "peft")))
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
smi_pid=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -l 2 > "$OUT/nvidia_smi.csv" 2>&1 &
  smi_pid=$!
fi

IFS=';' read -ra specs <<< "$VARIANTS"
# train_all PREFIX STEPS TIME_LIMIT: every variant at once, each logging to $RUNS/PREFIX<name>.log
train_all() {
  local prefix=$1 steps=$2 limit=$3 pids=() spec name flags
  for spec in "${specs[@]}"; do
    name=${spec%%:*}; flags=${spec#*:}
    rm -rf "${RUNS:?}/$prefix$name"
    # shellcheck disable=SC2086
    timeout -k 10 "$limit" $PY -m rl.sft ${SFT_CONFIG:+--config "$SFT_CONFIG"} --corpus_dir "$CORPUS" --build_corpus no --runs_dir "$RUNS" \
      --name "$prefix$name" $SFT_FLAGS --per_device_batch_size "$BATCH" --max_steps "$steps" \
      --dataloader_workers "$WORKERS" --eval_steps 0 --save_steps "$steps" --logging_steps 50 --seed 0 $flags \
      > "$RUNS/$prefix$name.log" 2>&1 &
    pids+=($!)
  done
  local code=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || code=$?; done
  return $code
}

if [ -z "${STEPS:-}" ]; then
  stamp "calibration: ${#specs[@]} variants at once, $CAL_STEPS steps of batch $BATCH"
  train_all cal_ "$CAL_STEPS" 150 || { stamp "calibration failed"; tail -n 30 "$RUNS"/cal_*.log; exit 1; }
  STEPS=$($PY - "$RUNS" "$BUDGET_S" "$OUT/calibration.json" <<'EOF'
import glob, json, sys
runs, budget, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows = [json.load(open(p)) for p in sorted(glob.glob(f"{runs}/cal_*/sft_summary.json"))]
# the steady rate (second half of the steps): the mean of 30 steps on an H100 was 1.5 steps/s
# against 8 once warm, and sized a 420 s budget at 518 steps that trained in 84 s
rate = min(r.get("steady_steps_per_s") or r["global_step"] / r["train_seconds"] for r in rows)
overhead = max(r["wall_seconds"] - r["global_step"] / rate for r in rows)
steps = int((budget - overhead - 20) * rate * 0.9)
json.dump({"steps_per_s_slowest": rate, "overhead_s": overhead, "steps": steps, "runs": rows}, open(out, "w"), indent=1)
print(steps)
EOF
) || exit 1
fi
stamp "training ${#specs[@]} variants at once for $STEPS steps of batch $BATCH (budget ${BUDGET_S}s)"
train_all "" "$STEPS" $(( BUDGET_S + 60 ))
code=$?
stamp "training exit $code"
[ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null
for spec in "${specs[@]}"; do
  name=${spec%%:*}
  tail -n 4 "$RUNS/$name.log"
  tar -cf - -C "$RUNS" "$name.log" "$name/final" "$name/sft_summary.json" "$name/sft_config.json" 2>/dev/null \
    | xz -T0 -3 > "$OUT/$name.tar.xz"
done
ls -la "$OUT"
exit $code
