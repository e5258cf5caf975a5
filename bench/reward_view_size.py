"""What the reward's view size changes: the terms, the ranking of predictions, and the time.

The SSIM term compares four views of the prediction with the target's; each view costs its
pixels in rays and in SSIM. On the programs of ``bench/reward_throughput.py`` (each corpus
family, rendered by the real OpenSCAD), every program is scored against every family's target
(right family and wrong family alike, as PPO's samples are) at each view size, with everything
else at the defaults. Against the largest size, per smaller size: the mean and largest change of
the SSIM term and of the total, and per target the Spearman correlation of the totals of all
programs (PPO's group advantages use only how the samples of one target rank) and whether the
best program stays the best. ``score_ms`` is one whole score (best of 3, one thread, own
family's target). Writes ``bench/results/reward_view_size.json``.

    .venv/bin/python bench/reward_view_size.py [--programs 68] [--sizes 128 112 96]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import family_programs, write_json  # noqa: E402
from reward.score import RewardWeights, Scorer  # noqa: E402


def score_all(size: int, targets: dict, programs: list) -> tuple[np.ndarray, float]:
    """``(P, T, 2)`` SSIM term and total of every program against every target, and the mean
    milliseconds of one score against the program's own family (best of 3)."""
    scorer = Scorer(RewardWeights(view_size=size), threads=1)
    prepared = {family: scorer.prepare(t.vertices, t.faces) for family, t in targets.items()}
    terms = np.array([[[(b := scorer(result, prepared[f])).ssim, b.total] for f in sorted(targets)]
                      for _, result in programs])
    times = []
    for family, result in programs:
        best = []
        for _ in range(3):
            start = time.perf_counter()
            scorer(result, prepared[family])
            best.append(time.perf_counter() - start)
        times.append(min(best))
    return terms, 1e3 * float(np.mean(times))


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """How far ``other`` (P, T, 2) moved from ``reference``, and whether it ranks the same."""
    row = {}
    for index, name in enumerate(("ssim", "total")):
        change = other[..., index] - reference[..., index]
        row[name] = {"mean_abs_change": round(float(np.abs(change).mean()), 5),
                     "max_abs_change": round(float(np.abs(change).max()), 5),
                     "mean_change": round(float(change.mean()), 5)}
    totals = reference[..., 1], other[..., 1]
    rhos = [spearmanr(totals[0][:, t], totals[1][:, t])[0] for t in range(reference.shape[1])]
    row["total_spearman_per_target"] = {"mean": round(float(np.mean(rhos)), 4),
                                        "min": round(float(np.min(rhos)), 4)}
    row["same_best_program"] = round(float(np.mean(totals[0].argmax(0) == totals[1].argmax(0))), 3)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=68)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 112, 96])
    parser.add_argument("--out", default="bench/results/reward_view_size.json")
    args = parser.parse_args(argv)
    targets, programs = family_programs(args.programs)
    programs = [(f, r) for f, r in programs if r.status == "ok"]
    print(f"{len(programs)} programs against {len(targets)} targets")
    results, sizes = {}, {}
    for size in args.sizes:
        results[size], ms = score_all(size, targets, programs)
        sizes[str(size)] = {"score_ms": round(ms, 2)}
        print(f"{size} px: {ms:.2f} ms per score")
    reference = args.sizes[0]
    for size in args.sizes[1:]:
        sizes[str(size)].update(agreement(results[reference], results[size]))
        print(f"{size} px against {reference}: {sizes[str(size)]}")
    write_json(args.out, {"programs": len(programs), "targets": len(targets), "reference_size": reference,
                          "defaults": RewardWeights().__dict__, "sizes": sizes})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
