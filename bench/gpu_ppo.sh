#!/bin/bash
# bench/gpu_ppo.sh: a short GPU run of the main job's training stages on a machine that has
# neither network nor OpenSCAD: SFT on the GPU through Ray Train (python -m rl.sft --gpus 1),
# then PPO with the learner on the GPU and OpenSCAD render actors on the CPU cores
# (python -m rl.ppo --gpus 1), each stage timed, under one wall-clock budget.
#
# What it expects (nothing is downloaded):
#   - the Python packages the machine lacks (ray, open3d-cpu, datasets and what they need),
#     unpacked into $SITE (default /tmp/site). Each .tar.xz named in $PAYLOAD (space-separated;
#     default .dev/partA.tar.xz .dev/partB.tar.xz) that exists is unpacked there first, so the
#     payload may arrive over several calls that share $SITE (GPU_PPO_UNPACK_ONLY=1: only that);
#   - the shared libraries open3d needs that a bare GPU image lacks (libEGL, libGL, libusb), as
#     Debian packages in $DEBS (default .gl), fetched here with
#     `apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 libusb-1.0-0`;
#     each .deb found there is unpacked into / first (on the H100 image, `import open3d` failed
#     on libEGL.so.1, then on libusb-1.0.so.0, without them);
#   - a corpus built by python -m corpus.build, $CORPUS (default .dev/corpus_gpu); the main
#     job's: --n 1500 --families clip,panel,pipe_fitting,plate,profile,washer --holdout_families clip;
#   - OpenSCAD: $SCADLOOP_OPENSCAD, else the bundle of scripts/bundle_openscad.py (first argument,
#     else $OPENSCAD_BUNDLE, else the newest dist/openscad-bundle-*.tar.xz), unpacked into
#     $OPENSCAD_DIR (default /tmp/openscad). Where the bubblewrap sandbox cannot start, it sets
#     SCADLOOP_UNSANDBOXED=1 and says so (a throwaway machine rendering our own policy's programs).
#
# Usage, from the repository root:
#   bash bench/gpu_ppo.sh [BUNDLE.tar.xz]
# Sizes (environment): SFT_STEPS (300), SFT_BATCH (64), PPO_ITERS (15), PPO_BATCH (16), PPO_K (8),
# PPO_MINIBATCH (32), PPO_WORKERS (CPUs - 2), BUDGET_S (390: the whole run; SFT may take 60 % of
# it, PPO is stopped when it runs out, and metrics.jsonl then holds the iterations done; exit
# status 11, 10 or 12 says SFT, PPO or the overlap bench was stopped so, never 124, which callers
# read as their own timeout). OVERLAP_ITERS (0: skipped) > 0 then runs bench/ppo_overlap.py --gpu
# from the SFT checkpoint at the PPO sizes, OVERLAP_CHUNKS ("1 2 4") rollout_chunks beside the
# blocking variant, writing ppo_overlap_gpu.json (OVERLAP_FLAGS, "--gpu": "" in a CPU rehearsal).
# SFT_FLAGS ("--gpus 1 --bf16") and PPO_FLAGS ("--gpus 1") choose the learners; a CPU rehearsal
# of this script passes "--ray_workers 1" to both (the same Ray Train path, on gloo).
# Results go to $OUT (default runs/gpu_ppo_out): run.log, versions.txt, nvidia_smi.csv (memory
# every 2 s), sft_summary.json, ppo_summary.json, metrics.jsonl, ppo_config.json (and
# ppo_overlap_gpu.json).
set -uo pipefail

started=$(date +%s)
stamp() { echo "[gpu_ppo $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*"; }

SITE=${SITE:-/tmp/site}
CORPUS=${CORPUS:-.dev/corpus_gpu}
OUT=${OUT:-runs/gpu_ppo_out}
RUNS=${RUNS:-runs}
SFT_NAME=${SFT_NAME:-sft_gpu}
PPO_NAME=${PPO_NAME:-ppo_gpu}
SFT_STEPS=${SFT_STEPS:-300}
SFT_BATCH=${SFT_BATCH:-64}
PPO_ITERS=${PPO_ITERS:-15}
PPO_BATCH=${PPO_BATCH:-16}
PPO_K=${PPO_K:-8}
PPO_MINIBATCH=${PPO_MINIBATCH:-32}
CPUS=$(nproc)
PPO_WORKERS=${PPO_WORKERS:-$(( CPUS > 3 ? CPUS - 2 : 1 ))}
SFT_FLAGS=${SFT_FLAGS:---gpus 1 --bf16}
PPO_FLAGS=${PPO_FLAGS:---gpus 1}
BUDGET_S=${BUDGET_S:-390}
OVERLAP_ITERS=${OVERLAP_ITERS:-0}
OVERLAP_CHUNKS=${OVERLAP_CHUNKS:-1 2 4}
OVERLAP_FLAGS=${OVERLAP_FLAGS---gpu}
OPENSCAD_DIR=${OPENSCAD_DIR:-/tmp/openscad}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$SITE"

# --- shared libraries (Debian packages) and the payload of Python packages --------------------
for deb in "${DEBS:-.gl}"/*.deb; do
  [ -f "$deb" ] && dpkg -x "$deb" / && unpacked_debs=1
done
[ -n "${unpacked_debs:-}" ] && ldconfig
for archive in ${PAYLOAD-.dev/partA.tar.xz .dev/partB.tar.xz}; do
  if [ -f "$archive" ]; then
    stamp "unpacking $archive into $SITE"
    tar -xJf "$archive" -C "$SITE" || { echo "gpu_ppo: cannot unpack $archive" >&2; exit 1; }
  fi
done
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

versions() {
  $PY - <<'EOF'
import importlib, importlib.metadata as md, sys
print("python", sys.version.split()[0], sys.executable)
names = ("torch", "transformers", "accelerate", "peft", "tokenizers", "numpy", "pyarrow", "pandas", "fsspec",
         "huggingface-hub", "scipy", "scikit-image", "ray", "open3d-cpu", "datasets", "pydantic", "jsonschema")
found = []
for name in names:
    try:
        found.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        found.append(f"{name} MISSING")
print("; ".join(found))
for module in ("torch", "open3d", "ray", "datasets"):
    try:
        print(f"import {module}: ok, {importlib.import_module(module).__file__}")
    except Exception as error:  # noqa: BLE001 - reported
        print(f"import {module}: FAILED, {error!r}")
import torch
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "cpus $CPUS; bwrap on PATH: $(command -v bwrap || echo none)"
}

if [ -n "${GPU_PPO_UNPACK_ONLY:-}" ]; then
  versions
  stamp "unpacked only (GPU_PPO_UNPACK_ONLY): $(du -sh "$SITE" | cut -f1) in $SITE: $(ls "$SITE" | grep -vc dist-info) packages"
  exit 0
fi
missing=""
for need in "$SITE/open3d" "$SITE/ray" "$SITE/datasets" "$CORPUS/build.json"; do
  [ -e "$need" ] || missing="$missing $need"
done
if [ -n "$missing" ]; then
  echo "gpu_ppo: missing:$missing (was the machine given back between the payload's calls?)" >&2
  exit 3
fi

exec > >(tee "$OUT/run.log") 2>&1
versions | tee "$OUT/versions.txt"

# --- OpenSCAD -------------------------------------------------------------------------------
if [ -z "${SCADLOOP_OPENSCAD:-}" ]; then
  bundle=${1:-${OPENSCAD_BUNDLE:-$(ls -t dist/openscad-bundle-*.tar.xz 2>/dev/null | head -n 1)}}
  if [ -z "$bundle" ] || [ ! -f "$bundle" ]; then
    echo "gpu_ppo: no OpenSCAD: set SCADLOOP_OPENSCAD, or pass a bundle (dist/openscad-bundle-*.tar.xz)" >&2
    exit 1
  fi
  stamp "unpacking $bundle into $OPENSCAD_DIR"
  mkdir -p "$OPENSCAD_DIR" && tar -xJf "$bundle" -C "$OPENSCAD_DIR" || exit 1
  binary=$(find "$OPENSCAD_DIR" -maxdepth 4 -path '*/bin/openscad' \( -type f -o -type l \) | head -n 1)
  [ -n "$binary" ] || { echo "gpu_ppo: no bin/openscad in $bundle" >&2; exit 1; }
  export SCADLOOP_OPENSCAD=$binary
fi
stamp "SCADLOOP_OPENSCAD=$SCADLOOP_OPENSCAD ($("$SCADLOOP_OPENSCAD" --version 2>&1 | tail -n 1))"

# The renderer's own check (the sandbox prefix every render uses; it raises where bwrap cannot start).
if ! reason=$($PY -c 'from renderer.openscad import RenderLimits, sandbox_prefix
sandbox_prefix(RenderLimits())' 2>&1); then
  echo "gpu_ppo: the bubblewrap sandbox cannot start here: $(echo "$reason" | tail -n 1)"
  echo "gpu_ppo: so SCADLOOP_UNSANDBOXED=1: OpenSCAD runs WITHOUT the sandbox on this machine"
  export SCADLOOP_UNSANDBOXED=1
fi
$PY -c 'from renderer.openscad import run
r = run("cube([1, 2, 3]);")
print("render check:", r.status, len(r.faces), "faces in", round(r.seconds, 3), "s", r.stderr[-300:] if not r.ok else "")
raise SystemExit(0 if r.ok else 1)' || { echo "gpu_ppo: OpenSCAD does not render a cube" >&2; exit 1; }

# --- GPU memory readings, and the results to $OUT whatever happens --------------------------
smi_pid=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -l 2 \
    > "$OUT/nvidia_smi.csv" 2>&1 &
  smi_pid=$!
fi
copy_results() {
  [ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null
  cp -f "$RUNS/$SFT_NAME/sft_summary.json" "$OUT/" 2>/dev/null
  cp -f "$RUNS/$PPO_NAME/ppo_summary.json" "$RUNS/$PPO_NAME/metrics.jsonl" \
        "$RUNS/$PPO_NAME/ppo_config.json" "$OUT/" 2>/dev/null
  local peak
  peak=$(awk -F', ' 'NR > 1 && $2 + 0 > max { max = $2 + 0 } END { print max + 0 }' "$OUT/nvidia_smi.csv" 2>/dev/null)
  stamp "peak GPU memory used (nvidia-smi every 2 s): ${peak:-n/a} MiB; in $OUT: $(ls "$OUT" | tr '\n' ' ')"
}
trap copy_results EXIT

# --- SFT on the GPU -------------------------------------------------------------------------
rm -rf "${RUNS:?}/$SFT_NAME" "${RUNS:?}/$PPO_NAME"
stamp "SFT: $SFT_STEPS steps of batch $SFT_BATCH, $SFT_FLAGS"
timeout -k 20 $(( BUDGET_S * 6 / 10 )) $PY -m rl.sft --corpus_dir "$CORPUS" --build_corpus no --runs_dir "$RUNS" \
  --name "$SFT_NAME" $SFT_FLAGS --per_device_batch_size "$SFT_BATCH" --max_steps "$SFT_STEPS" \
  --eval_steps 0 --save_steps "$SFT_STEPS" --logging_steps 25 --seed 0
code=$?
stamp "SFT exit $code"
case $code in 124|137) stamp "SFT stopped: it took over 60 % of BUDGET_S"; exit 11;; esac
[ $code -eq 0 ] || exit $code
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader

# --- PPO: the learner on the GPU, render actors on the CPUs ---------------------------------
left=$(( BUDGET_S - ($(date +%s) - started) ))
[ "$left" -ge 30 ] || { stamp "PPO not started: ${left}s of BUDGET_S left"; exit 10; }
stamp "PPO: $PPO_ITERS iterations of $PPO_BATCH images x $PPO_K programs, $PPO_WORKERS render actors, $PPO_FLAGS; ${left}s left"
timeout -k 20 "$left" $PY -m rl.ppo --config configs/ppo_demo.yaml --runs_dir "$RUNS" --name "$PPO_NAME" \
  --checkpoint "$RUNS/$SFT_NAME/final" --corpus_dir "$CORPUS" $PPO_FLAGS --workers "$PPO_WORKERS" \
  --iterations "$PPO_ITERS" --batch_size "$PPO_BATCH" --k "$PPO_K" --minibatch_size "$PPO_MINIBATCH" \
  --save_every "$PPO_ITERS" --records_every "$PPO_ITERS" --seed 0
code=$?
stamp "PPO exit $code"
case $code in 124|137) stamp "PPO stopped: BUDGET_S ran out (metrics.jsonl holds the iterations done)"; exit 10;; esac
[ $code -eq 0 ] || exit $code

# --- the learner's idle share, rendering blocking vs overlapped (bench/ppo_overlap.py) ------
[ "$OVERLAP_ITERS" -gt 0 ] || exit 0
left=$(( BUDGET_S - ($(date +%s) - started) ))
[ "$left" -ge 30 ] || { stamp "overlap bench not started: ${left}s of BUDGET_S left"; exit 12; }
stamp "overlap bench: $OVERLAP_ITERS iterations per variant, chunks $OVERLAP_CHUNKS; ${left}s left"
timeout -k 20 "$left" $PY bench/ppo_overlap.py $OVERLAP_FLAGS --checkpoint "$RUNS/$SFT_NAME/final" --corpus_dir "$CORPUS" \
  --workers "$PPO_WORKERS" --batch_size "$PPO_BATCH" --minibatch_size "$PPO_MINIBATCH" \
  --iterations "$OVERLAP_ITERS" --chunks $OVERLAP_CHUNKS --out "$OUT/ppo_overlap_gpu.json"
code=$?
stamp "overlap bench exit $code"
case $code in 124|137) stamp "overlap bench stopped: BUDGET_S ran out"; exit 12;; esac
exit $code
