"""Does a policy that is shown exemplars edit them, or only copy them?

For each greedy program of an ``rl.eval`` run of a policy with ``policy.exemplars`` on, this bench
looks up the exemplar the policy was shown (its own index, as at evaluation) and reports:

- ``copied_frac``: the program is the exemplar, character for character;
- ``same_structure_frac``: the program is the exemplar with only its numbers changed;
- ``exemplar_protocol_iou``: the exemplar part's own mesh graded against the target with the
  evaluation's protocol (what copying is worth: :mod:`bench.retrieval_baseline`'s lookup, in the
  policy's own index), next to ``policy_protocol_iou`` (invalid = 0) and their paired difference
  with its 95 % interval (``policy_minus_exemplar``).

Writes (adds an entry to) ``bench/results/exemplar_copying.json``::

    .venv/bin/python bench/exemplar_copying.py --checkpoint runs/sft/final --eval runs/eval_test \\
        --corpus runs/demo/corpus --split test
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.common import add_entry  # noqa: E402
from bench.retrieval_baseline import grade  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "exemplar_copying.json")
NUMBER = re.compile(r"\d+(\.\d+)?")


def structure(code: str) -> str:
    """``code`` with every number replaced by ``#`` and surrounding space trimmed."""
    return NUMBER.sub("#", code.strip())


def greedy_records(eval_dir: str) -> dict[str, dict]:
    with open(os.path.join(eval_dir, "records.jsonl"), encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return {r["target_id"]: r for r in records if r["extra"]["mode"] == "greedy"}


def measure(checkpoint: str, eval_dir: str, corpus: str, split: str) -> dict:
    from corpus.dataset import load, load_mesh
    from policies import PartInput, load_policy
    from reward.intervals import paired_interval

    policy = load_policy(checkpoint)
    if policy.exemplars is None:
        raise SystemExit(f"{checkpoint}: policy.exemplars is off; nothing to compare")
    records = greedy_records(eval_dir)
    train_rows = load(corpus, "train").select_columns(["id", "mesh_path"])
    train = {row_id: i for i, row_id in enumerate(train_rows["id"])}
    rows = [r for r in load(corpus, split).select_columns(["id", "views", "mesh_path"]) if r["id"] in records]
    per_row = []
    for row in rows:
        shown = policy.exemplars.nearest_row(PartInput.of(row))
        exemplar_id, exemplar = policy.exemplars.ids[shown], policy.exemplars.codes[shown]
        record = records[row["id"]]
        lookup = grade(corpus, train_rows[train[exemplar_id]], load_mesh(corpus, row))
        per_row.append({
            "id": row["id"], "exemplar": exemplar_id,
            "copied": record["code"].strip() == exemplar.strip(),
            "same_structure": structure(record["code"]) == structure(exemplar),
            "exemplar_iou": lookup["iou"] or 0.0,
            "policy_iou": record["extra"]["protocol_iou"] or 0.0,
        })
    exemplar_iou = [r["exemplar_iou"] for r in per_row]
    policy_iou = [r["policy_iou"] for r in per_row]
    difference, low, high = paired_interval(exemplar_iou, policy_iou)
    return {
        "checkpoint": checkpoint, "eval": eval_dir, "corpus": corpus, "split": split, "rows": len(per_row),
        "copied_frac": float(np.mean([r["copied"] for r in per_row])),
        "same_structure_frac": float(np.mean([r["same_structure"] for r in per_row])),
        "exemplar_protocol_iou": float(np.mean(exemplar_iou)),
        "policy_protocol_iou": float(np.mean(policy_iou)),
        "policy_minus_exemplar": {"difference": difference, "ci95": [low, high]},
        "per_row": per_row,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="policy folder with policy.exemplars on")
    parser.add_argument("--eval", required=True, help="the rl.eval folder of that policy (records.jsonl)")
    parser.add_argument("--corpus", required=True, help="the corpus it was evaluated on")
    parser.add_argument("--split", default="test", help="the split it was evaluated on (default test)")
    parser.add_argument("--out", default=OUT, help="result JSON (other entries are kept)")
    args = parser.parse_args()
    result = measure(args.checkpoint, args.eval, args.corpus, args.split)
    add_entry(args.out, f"{args.checkpoint}:{args.split}", result)


if __name__ == "__main__":
    main()
