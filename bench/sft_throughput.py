"""SFT throughput across machines and settings, from the ``sft_summary.json`` each run wrote.

``rl.sft`` measures its own throughput (examples/s and code tokens/s over the steps of that
run, generation evaluations included). This bench gathers runs made elsewhere (a GPU machine
with ``--gpus 1``, this CPU) into one JSON with each run's settings and its ratio to a
baseline run, so the figures sit beside the other benches::

    .venv/bin/python bench/sft_throughput.py --baseline cpu_b8 \\
        --run cpu_b8="2 CPU cores"=runs/sft10k_img \\
        --run h100_b8="1 H100, --gpus 1"=runs/gpu_meas/gpu_b8_s400

Each ``--run`` is ``LABEL=MACHINE=RUN_DIR``; the run folder holds ``sft_summary.json`` and
``sft_config.json`` (for the batch size, precision and corpus). Writes
``bench/results/sft_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402
from rl.checkpoint import read_sft_config  # noqa: E402
from rl.sft import SUMMARY  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "sft_throughput.json")
SETTINGS = ("per_device_batch_size", "gradient_accumulation_steps", "bf16", "gpus", "ray_workers", "threads",
            "dataloader_workers")
POLICY_SIZES = ("vision_hidden", "vision_layers", "text_hidden", "text_layers", "vocab_size")
FIGURES = ("steps_this_run", "train_seconds", "examples_per_s", "tokens_per_s", "train_loss_last",
           "world_size")


def describe_run(machine: str, run_dir: str) -> dict:
    """The settings and figures of one run folder (``sft_summary.json`` + ``sft_config.json``)."""
    with open(os.path.join(run_dir, SUMMARY), encoding="utf-8") as fh:
        summary = json.load(fh)
    config = read_sft_config(run_dir)
    if not config:
        raise SystemExit(f"sft_throughput: {run_dir} holds no sft_config.json")
    return {
        "machine": machine,
        "run_dir": run_dir,
        "corpus_train_examples": summary["train_examples"],
        **{name: config.get(name) for name in SETTINGS},
        "policy": {name: config["policy"].get(name) for name in POLICY_SIZES},
        **{name: summary.get(name) for name in FIGURES},
    }


def compare(runs: dict[str, dict], baseline: str) -> dict:
    """``runs`` with ``tokens_per_s_ratio`` and ``examples_per_s_ratio`` to the ``baseline`` run."""
    base = runs[baseline]
    for run in runs.values():
        for name in ("tokens_per_s", "examples_per_s"):
            run[f"{name}_ratio"] = run[name] / base[name]
    return {"baseline": baseline, "runs": runs}


def parse_run(text: str) -> tuple[str, str, str]:
    parts = text.split("=", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"--run wants LABEL=MACHINE=RUN_DIR, got {text!r}")
    return parts[0], parts[1], parts[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=parse_run, action="append", required=True, help="LABEL=MACHINE=RUN_DIR")
    parser.add_argument("--baseline", required=True, help="the label the ratios are to")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    runs = {label: describe_run(machine, run_dir) for label, machine, run_dir in args.run}
    if args.baseline not in runs:
        parser.error(f"--baseline {args.baseline!r} is not one of the --run labels ({', '.join(runs)})")
    result = compare(runs, args.baseline)
    for label, run in result["runs"].items():
        print(f"{label:20s} {run['machine']:28s} batch {run['per_device_batch_size']:3d} "
              f"bf16 {run['bf16']!s:5s} "
              f"{run['tokens_per_s']:9.0f} tokens/s  {run['examples_per_s']:7.2f} examples/s  "
              f"x{run['tokens_per_s_ratio']:.1f}")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
