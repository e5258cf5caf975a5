"""Does PPO's reward rank a group's programs the way the protocol IoU does?

GRPO moves probability between the programs sampled for one image, by their reward. If the
reward orders them differently from the figure we report (protocol IoU: both meshes centred
and scaled to the unit cube, volumetric IoU), PPO can raise its reward without moving that
figure. This bench re-runs every valid program of a PPO run's saved records
(``<run>/records/it*/records.jsonl``) with OpenSCAD and scores it three ways against its target:
the run's own reward (the target's frame, the run's weights), the same weights with
``scale_free`` (each mesh in its own unit frame, the frame the protocol grades), and the
protocol record. For every pair of valid programs of one group whose protocol IoU differs by
more than ``--margin``, it counts how often each reward (and each reward term) puts them in
the protocol's order (concordance: 1 always, 0.5 a coin), and reports the mean within-group
Spearman correlation.

Writes (adds an entry to) ``bench/results/reward_alignment.json``::

    .venv/bin/python bench/reward_alignment.py --run runs/demo/ppo --corpus runs/demo/corpus --label main_job
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "reward_alignment.json")
TERMS = ("total", "ssim", "chamfer", "iou")


class ThreeWayScorer:
    """RenderPool scorer: the run's reward, its scale-free twin and the protocol record of one render."""

    def __init__(self, weights):
        from reward.score import Scorer

        self.frame = Scorer(weights, threads=1)
        self.free = Scorer(dataclasses.replace(weights, scale_free=True), threads=1)

    def prepare(self, vertices, faces):
        return self.frame.prepare(vertices, faces), self.free.prepare(vertices, faces), (vertices, faces)

    def __call__(self, result, prepared):
        from reward.metrics import protocol_metrics

        frame, free, mesh = prepared
        return {"frame": self.frame(result, frame), "free": self.free(result, free),
                "protocol": protocol_metrics(result, *mesh, threads=1)}


def valid_groups(run: str) -> list[list[dict]]:
    """The valid recorded programs of ``run``, grouped by iteration and target
    (:func:`bench.advantage_split.load_groups`); groups with none are left out."""
    from bench.advantage_split import load_groups

    groups = [[r for r in group if r["status"] == "ok"] for group in load_groups(run)]
    return [group for group in groups if group]


def score_groups(groups, corpus: str, weights) -> list[list[dict]]:
    """Each program's three scores, by group, rendered again by OpenSCAD in this process."""
    from corpus.dataset import load, load_mesh
    from renderer.pool import RenderPool, ScoreRequest

    wanted = {group[0]["target_id"] for group in groups}
    pool = RenderPool(ThreeWayScorer(weights), workers=0)
    rows = load(corpus, "train").select_columns(["id", "mesh_path"])
    for row in rows:
        if row["id"] in wanted:
            pool.add_target(row["id"], *load_mesh(corpus, row))
    return [[figures(r) for r in pool.score([ScoreRequest(r["code"], r["target_id"]) for r in group])]
            for group in groups]


def figures(scored) -> dict:
    out = {"protocol_iou": scored["protocol"]["iou"] if scored["protocol"]["valid"] else None}
    for frame in ("frame", "free"):
        breakdown = scored[frame]
        for term in TERMS:
            out[f"{frame}/{term}"] = float(getattr(breakdown, term))
    return out


def concordance(scored, keys, margin: float) -> dict:
    """Share of pairs (protocol IoU apart by > margin) each key orders as the protocol does."""
    agree = collections.Counter()
    pairs = 0
    rhos = collections.defaultdict(list)
    for programs in scored:
        programs = [p for p in programs if p["protocol_iou"] is not None]
        iou = np.array([p["protocol_iou"] for p in programs])
        for i in range(len(programs)):
            for j in range(i + 1, len(programs)):
                if abs(iou[i] - iou[j]) <= margin:
                    continue
                pairs += 1
                for key in keys:
                    delta = programs[i][key] - programs[j][key]
                    agree[key] += 1.0 if delta * (iou[i] - iou[j]) > 0 else (0.5 if delta == 0 else 0.0)
        if len(programs) >= 3 and np.ptp(iou) > margin:
            for key in keys:
                values = np.array([p[key] for p in programs])
                if np.ptp(values) > 0:
                    rhos[key].append(spearman(values, iou))
    return {"pairs": pairs,
            "concordance": {k: round(agree[k] / pairs, 4) if pairs else None for k in keys},
            "spearman_mean": {k: round(float(np.mean(rhos[k])), 4) if rhos[k] else None for k in keys},
            "groups_ranked": {k: len(rhos[k]) for k in keys}}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank = lambda x: np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)  # noqa: E731
    ra, rb = rank(a), rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    from configs.reward import resolve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a PPO run folder with records/it*/records.jsonl")
    parser.add_argument("--corpus", required=True, help="the corpus the run trained on")
    parser.add_argument("--label", required=True, help="key of the entry in the results file")
    parser.add_argument("--margin", type=float, default=0.05, help="protocol IoU gap that makes a pair")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    weights, _ = resolve(args.run, args.run)
    groups = valid_groups(args.run)
    if not groups:
        raise SystemExit(f"{args.run}: no valid recorded programs under records/it*/records.jsonl")
    scored = score_groups(groups, args.corpus, weights)
    keys = [f"{frame}/{term}" for frame in ("frame", "free") for term in TERMS]
    entry = {"run": args.run, "corpus": args.corpus, "margin": args.margin,
             "groups": len(scored), "programs": sum(len(group) for group in scored),
             **concordance(scored, keys, args.margin),
             "seconds": round(time.perf_counter() - started, 1)}
    add_entry(args.out, args.label, entry)


if __name__ == "__main__":
    main()
