"""The exemplar as a candidate at inference: choose between the policy's program and the nearest
training part's by agreement with the input picture (never the target).

For the first ``--n`` rows of a split this bench takes the policy's greedy program (from an
``rl.eval`` run's ``records.jsonl``) and the program of the training part whose four views are
nearest in pixels (:class:`policies.exemplars.ExemplarIndex` of the train split), renders both with
the real OpenSCAD, scores each against the part's four views with
:class:`reward.agreement.AgreementScorer` (what ``rl.predict`` selects on), keeps the better one,
and grades all by the evaluation's protocol. Reported: protocol IoU (invalid = 0) of the policy's
program, of the exemplar, of the chosen one and of the better of the two by the target (the
oracle), and the paired difference chosen - policy with its 95 % interval.

Writes (adds an entry to) ``bench/results/exemplar_candidate.json``::

    .venv/bin/python bench/exemplar_candidate.py --eval runs/demo/eval/ppo_test --corpus runs/demo/corpus
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.common import add_entry  # noqa: E402
from bench.exemplar_copying import greedy_records  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "exemplar_candidate.json")


def measure(eval_dir: str, corpus: str, split: str, n: int) -> dict:
    from corpus.dataset import load, load_mesh
    from policies import PartInput
    from policies.exemplars import ExemplarIndex
    from renderer.openscad import run
    from reward.agreement import AgreementScorer, picture_of
    from reward.intervals import paired_interval
    from reward.metrics import protocol_metrics

    records = greedy_records(eval_dir)
    index = ExemplarIndex.build(load(corpus, "train").select_columns(["id", "views", "code"]))
    rows = load(corpus, split).select_columns(["id", "views", "mesh_path"])
    rows = [row for row in rows if row["id"] in records][:n]
    scorer = AgreementScorer()
    per_row = []
    for row in rows:
        target = load_mesh(corpus, row)
        agreement = scorer.prepare(np.stack([picture_of(view) for view in row["views"]]))
        graded = {}
        candidates = {"policy": records[row["id"]]["code"], "exemplar": index.nearest(PartInput.of(row))}
        for name, code in candidates.items():
            result = run(code)
            iou = protocol_metrics(result, *target, seed=0)["iou"] or 0.0
            graded[name] = (scorer(result, agreement).total, iou)
        chosen = max(graded, key=lambda name: graded[name][0])
        per_row.append({"id": row["id"], "chosen": chosen, "chosen_iou": graded[chosen][1],
                        "oracle_iou": max(v[1] for v in graded.values()),
                        **{f"{k}_agreement": v[0] for k, v in graded.items()},
                        **{f"{k}_iou": v[1] for k, v in graded.items()}})
    policy, chosen = [r["policy_iou"] for r in per_row], [r["chosen_iou"] for r in per_row]
    difference, low, high = paired_interval(policy, chosen)
    return {
        "eval": eval_dir, "corpus": corpus, "split": split, "rows": len(per_row),
        **{f"{k}_protocol_iou": float(np.mean([r[f"{k}_iou"] for r in per_row]))
           for k in ("policy", "exemplar", "chosen", "oracle")},
        "exemplar_chosen_frac": float(np.mean([r["chosen"] == "exemplar" for r in per_row])),
        "chosen_minus_policy": {"difference": difference, "ci95": [low, high]},
        "per_row": per_row,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", required=True, help="an rl.eval folder (records.jsonl of greedy programs)")
    parser.add_argument("--corpus", required=True, help="the corpus it was evaluated on")
    parser.add_argument("--split", default="test", help="the split it was evaluated on (default test)")
    parser.add_argument("--n", type=int, default=200, help="first rows of the split (default 200)")
    parser.add_argument("--out", default=OUT, help="result JSON (other entries are kept)")
    args = parser.parse_args()
    result = measure(args.eval, args.corpus, args.split, args.n)
    add_entry(args.out, f"{args.eval}:{args.split}:{result['rows']}", result)


if __name__ == "__main__":
    main()
