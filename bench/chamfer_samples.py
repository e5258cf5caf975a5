"""How many surface samples the reward's chamfer term needs: error against the exact term, and time.

The chamfer term measures samples of each mesh against the other mesh's triangles
(:func:`reward.distance.surface_chamfer`), so its only error is that of averaging over the
samples. On the programs of ``bench/reward_throughput.py`` (each corpus family, each program
scored against a target of its family, rendered by the real OpenSCAD), this bench computes the
chamfer distance with independent area-weighted samples (:func:`reward.geometry.sample_surface`,
the reward's sampler before) and with stratified ones (:func:`reward.distance.stratified_samples`)
at several sample counts, two seeds each, and compares each with the converged value (the mean of
two runs at 65,536 independent samples). Writes ``bench/results/chamfer_samples.json``: per
variant, the largest and the mean error of the term ``exp(-d / chamfer_scale)`` and of ``d``, and
the milliseconds per program of sampling plus both distance passes (one thread, best of 5).

    .venv/bin/python bench/chamfer_samples.py [--programs 68] [--counts 512 768 1024 2048]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import family_programs, write_json  # noqa: E402
from renderer.views import Frame, make_scene  # noqa: E402
from reward.distance import spatial_order, stratified_samples, surface_chamfer  # noqa: E402
from reward.geometry import chamfer_reward, clean_mesh_with_areas, sample_surface  # noqa: E402
from reward.score import RewardWeights  # noqa: E402

CONVERGED_POINTS = 65536


def independent_samples(vertices, faces, n, seed=0, areas=None):
    """The reward's sampler before: independent area-weighted draws, then put in spatial order."""
    points = sample_surface(vertices, faces, n, seed, areas)
    return points[spatial_order(points)]


SAMPLERS = {"independent": independent_samples, "stratified": stratified_samples}


class Pair:
    """One program's mesh and its family target, both in the target's frame, with their scenes."""

    def __init__(self, pred, target):
        frame = Frame.of(target.vertices)
        self.target = clean_mesh_with_areas(frame.apply(target.vertices), target.faces)
        self.pred = clean_mesh_with_areas(frame.apply(pred.vertices), pred.faces)
        self.scenes = make_scene(*self.target[:2]), make_scene(*self.pred[:2])

    def chamfer(self, sampler, n: int, seed: int) -> float:
        """Sample both meshes and measure each against the other's triangles."""
        (pv, pf, pa), (tv, tf, ta) = self.pred, self.target
        p, q = sampler(pv, pf, n, seed, pa), sampler(tv, tf, n, seed, ta)
        return surface_chamfer(p, self.scenes[1], q, self.scenes[0], threads=1)


def load_pairs(count: int) -> list[Pair]:
    """``count`` programs cycling through the families, each with its family's target."""
    targets, programs = family_programs(count)
    usable = [(family, pred) for family, pred in programs if pred.status == "ok" and len(pred.faces)]
    return [Pair(pred, targets[family]) for family, pred in usable]


def best_ms(pair: Pair, sampler, n: int, repeats: int = 5) -> float:
    """Milliseconds of one chamfer distance (sampling both meshes, two distance passes), best of
    ``repeats``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pair.chamfer(sampler, n, 0)
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=68)
    parser.add_argument("--counts", type=int, nargs="+", default=[512, 768, 1024, 2048])
    parser.add_argument("--out", default="bench/results/chamfer_samples.json")
    args = parser.parse_args(argv)
    scale = RewardWeights().chamfer_scale
    pairs = load_pairs(args.programs)
    print(f"{len(pairs)} programs rendered; converging each at {CONVERGED_POINTS} samples")
    exact = [np.mean([p.chamfer(independent_samples, CONVERGED_POINTS, seed) for seed in (101, 102)])
             for p in pairs]
    variants = {}
    for name, sampler in SAMPLERS.items():
        for n in args.counts:
            errors = {"term": [], "distance": []}
            for seed in (0, 1):
                for pair, d in zip(pairs, exact, strict=True):
                    value = pair.chamfer(sampler, n, seed)
                    errors["distance"].append(abs(value - d))
                    errors["term"].append(abs(chamfer_reward(value, scale) - chamfer_reward(d, scale)))
            ms = float(np.mean([best_ms(pair, sampler, n) for pair in pairs]))
            row = {key: {"max": round(max(v), 5), "mean": round(float(np.mean(v)), 5)}
                   for key, v in errors.items()}
            variants[f"{name}_{n}"] = {**row, "ms_per_program": round(ms, 2)}
            print(f"{name:11s} {n:5d}: term error max {row['term']['max']:.4f} "
                  f"mean {row['term']['mean']:.5f}, distance error max {row['distance']['max']:.4f}, "
                  f"{ms:.2f} ms per program")
    write_json(args.out, {"programs": len(pairs), "converged_points": CONVERGED_POINTS,
                          "chamfer_scale": scale, "seeds": [0, 1], "variants": variants})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
