"""Where PPO's learning signal goes: validity or geometry, from a run's saved records.

GRPO's advantage of a program is its score minus its group's mean, over the group's standard
deviation (a group: the programs sampled for one image). In a group with an invalid program
(``invalid_penalty``, -1 by default) next to valid ones (totals about 0.1-0.4), the invalid one
sets the spread, and the valid ones' differences in geometry get a small share of the group's
advantage. From the programs of ``<run>/records/it*/records.jsonl`` this bench reports, per run:

- ``validity_share_of_reward_variance``: the part of the within-group variance of the score
  that is between valid and invalid programs (the law of total variance within each group);
- ``geometry_share_of_advantage``: the part of the sum of squared advantages that lies among a
  group's valid programs (their spread around their own mean), overall and in the groups with
  an invalid program, at the run's penalty and at each ``--penalties`` value (the valid
  programs' scores do not depend on it);
- ``all_valid_groups``, and among the valid programs of a group the IoU's standard deviation and
  its best minus its mean (how much better a program PPO could reinforce was sampled).

Writes ``bench/results/advantage_split.json``::

    .venv/bin/python bench/advantage_split.py runs/demo/ppo [more runs] [--penalties -1 -0.2 0]
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402


def load_groups(run: str) -> list[list[dict]]:
    """The recorded programs of ``run``, grouped by iteration and target image."""
    groups = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(run, "records", "it*", "records.jsonl"))):
        with open(path) as fh:
            for line in fh:
                record = json.loads(line)
                groups[(record["extra"]["iteration"], record["target_id"])].append(record)
    if not groups:
        raise SystemExit(f"advantage_split: no records under {run}/records/it*/records.jsonl")
    return list(groups.values())


def geometry_share(groups: list[list[dict]], penalty: float | None) -> tuple[float, float]:
    """Share of the squared GRPO advantages (:func:`rl.core_algos.compute_grpo_outcome_advantage`,
    as PPO computes them) among valid programs: overall, and in mixed groups (``penalty`` None: the
    recorded scores)."""
    import torch

    from rl.core_algos import compute_grpo_outcome_advantage

    total = geometry = mixed_total = mixed_geometry = 0.0
    for group in groups:
        valid = np.array([r["valid"] > 0 for r in group])
        scores = torch.tensor([r["total"] if penalty is None or r["valid"] > 0 else penalty for r in group])
        one_token = torch.ones(len(group), 1)
        advantage = compute_grpo_outcome_advantage(scores, [0] * len(group), one_token)[:, 0].double().numpy()
        among_valid = ((advantage[valid] - advantage[valid].mean()) ** 2).sum() if valid.sum() >= 2 else 0.0
        total, geometry = total + (advantage**2).sum(), geometry + among_valid
        if not valid.all():
            mixed_total, mixed_geometry = mixed_total + (advantage**2).sum(), mixed_geometry + among_valid
    return geometry / total, mixed_geometry / max(mixed_total, 1e-12)


def measure(run: str, penalties: list[float]) -> dict:
    """This bench's figures for one run folder."""
    groups = load_groups(run)
    between = within = 0.0
    spreads, headroom = [], []
    for group in groups:
        scores, valid = np.array([r["total"] for r in group]), np.array([r["valid"] > 0 for r in group])
        inside = sum(part.mean() * scores[part].var() for part in (valid, ~valid) if part.any())
        within, between = within + inside, between + scores.var() - inside
        iou = np.array([r["iou"] for r in group])[valid]
        if len(iou) >= 2:
            spreads.append(iou.std())
            headroom.append(iou.max() - iou.mean())
    shares = {"recorded": geometry_share(groups, None)}
    shares.update({f"{p:+g}": geometry_share(groups, p) for p in penalties})
    return {
        "groups": len(groups), "programs": sum(len(g) for g in groups),
        "validity_share_of_reward_variance": round(between / (between + within), 3),
        "geometry_share_of_advantage": {k: {"all_groups": round(a, 3), "mixed_groups": round(m, 3)}
                                        for k, (a, m) in shares.items()},
        "all_valid_groups": round(float(np.mean([all(r["valid"] > 0 for r in g) for g in groups])), 3),
        "valid_iou_std_in_group": round(float(np.mean(spreads)), 3),
        "valid_iou_best_minus_mean_in_group": round(float(np.mean(headroom)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="PPO run folders (with records/it*/records.jsonl)")
    parser.add_argument("--penalties", type=float, nargs="*", default=[-1.0, -0.2, 0.0])
    parser.add_argument("--out", default="bench/results/advantage_split.json")
    args = parser.parse_args(argv)
    results = {}
    for run in args.runs:
        results[run] = measure(run, args.penalties)
        print(run, json.dumps(results[run]))
    write_json(args.out, {"runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
