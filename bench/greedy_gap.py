"""Where a policy's sampled programs stand against its greedy one, from ``rl.eval --k K`` records.

PPO optimises the programs it samples (at ``temperature``); ``rl.eval`` grades the greedy one.
This bench reads the records of evaluations run with ``--k K --temperature T`` and writes, per
evaluation: the greedy program's mean reward, the sampled programs' mean, the best of the k (the
oracle), and the share of samples that beat their image's greedy program by more than
``--margin``. A PPO run whose sampled mean rose while its greedy mean did not has learnt to
avoid bad samples, not to write a better greedy program::

    .venv/bin/python -m rl.eval --checkpoint runs/demo/sft/final --split train --k 8 --temperature 0.7 \\
        --out E1
    .venv/bin/python -m rl.eval --checkpoint runs/demo/ppo/final --split train --k 8 --temperature 0.7 \\
        --out E2
    .venv/bin/python bench/greedy_gap.py --eval sft=E1 --eval ppo=E2 --label main_job

Writes (adds an entry to) ``bench/results/greedy_gap.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "greedy_gap.json")


def gap(eval_dir: str, margin: float) -> dict:
    """The figures of one ``rl.eval`` folder (its ``records.jsonl`` must hold greedy and samples)."""
    from reward.records import read_records

    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in read_records(os.path.join(eval_dir, "records.jsonl")):
        totals[record.target_id][record.extra.get("mode")].append(record.total)
    images = {t: modes for t, modes in totals.items() if modes.get("greedy") and modes.get("sample")}
    if not images:
        raise SystemExit(f"greedy_gap: {eval_dir} has no image with both a greedy and a sampled program "
                         "(run rl.eval with --k 1 or more)")
    greedy = {t: modes["greedy"][0] for t, modes in images.items()}
    samples = {t: modes["sample"] for t, modes in images.items()}
    beating = [sum(s > greedy[t] + margin for s in samples[t]) / len(samples[t]) for t in images]
    with open(os.path.join(eval_dir, "metrics.json"), encoding="utf-8") as fh:
        metrics = json.load(fh)
    return {
        "eval_dir": eval_dir,
        "checkpoint": metrics.get("checkpoint"),
        "split": metrics.get("split"),
        "k": metrics.get("k"),
        "temperature": metrics.get("temperature"),
        "images": len(images),
        "greedy_mean": statistics.mean(greedy.values()),
        "sample_mean": statistics.mean(statistics.mean(s) for s in samples.values()),
        "best_of_k_mean": statistics.mean(max(s) for s in samples.values()),
        "samples_beating_greedy": statistics.mean(beating),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", action="append", required=True, metavar="NAME=EVAL_DIR",
                        help="an rl.eval output folder (with --k >= 1), named; repeat for each policy")
    parser.add_argument("--margin", type=float, default=0.02, help="a sample beats greedy by more than this")
    parser.add_argument("--label", required=True, help="key of the entry in the JSON")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    runs = {}
    for item in args.eval:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"greedy_gap: --eval wants NAME=EVAL_DIR, got {item!r}")
        runs[name] = gap(folder, args.margin)
    add_entry(args.out, args.label, {"margin": args.margin, "runs": runs})


if __name__ == "__main__":
    main()
