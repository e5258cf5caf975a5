"""Throughput of the render pool: programs/s with 1 and 2 Ray workers, time outside OpenSCAD.

Scores the same batch of corpus-family programs (each against a target of the
same family) with ``workers=1`` and ``workers=2``, caching off so OpenSCAD always
runs, after a warm-up batch that starts the actors and prepares the targets.
Writes ``bench/results/reward_throughput.json``:

- ``programs_per_s`` per worker count and the 2-vs-1 ``speedup`` (goal >= 1.8);
- ``outside_openscad_share``: 1 - (OpenSCAD seconds summed over programs) /
  (workers x wall seconds): everything that is not OpenSCAD, idle time included
  (goal <= 10 %); ``score_share``: scoring's part of the workers' busy time;
- ``ray_start_s``: starting the local Ray cluster in this process, and
  ``actors_start_s``: starting the actors and preparing the targets;
- ``bare_openscad_speedup``: the same programs run by bare ``openscad`` processes,
  two at a time against one at a time: the ceiling this machine puts on any
  2-worker speedup (2 vCPUs may not give 2x), and ``pool_efficiency`` = pool
  speedup / that ceiling.

    .venv/bin/python bench/reward_throughput.py [--programs 68] [--rounds 3] [--out ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import run_bare_openscad, write_json  # noqa: E402
from corpus.families import FAMILIES, generate  # noqa: E402
from renderer.openscad import run  # noqa: E402
from renderer.pool import RenderPool, ScoreRequest  # noqa: E402
from reward.score import Scorer  # noqa: E402


def make_batch(count: int, pool_targets: list[RenderPool]) -> list[ScoreRequest]:
    """``count`` programs, cycling through the families, each scored against a family target."""
    families = sorted(FAMILIES)
    for family in families:
        target = run(generate(family, 10_000).code)
        for pool in pool_targets:
            pool.add_target(family, target.vertices, target.faces)
    return [ScoreRequest(generate(families[i % len(families)], i).code, families[i % len(families)])
            for i in range(count)]


def measure(pool: RenderPool, batch: list[ScoreRequest]) -> dict:
    start = time.perf_counter()
    results = pool.score(batch)
    wall = time.perf_counter() - start
    openscad_s = sum(r.seconds for r in results)
    score_s = sum(r.score_seconds for r in results)
    return {
        "workers": pool.workers,
        "programs": len(batch),
        "wall_s": round(wall, 3),
        "programs_per_s": round(len(batch) / wall, 3),
        "openscad_s": round(openscad_s, 3),
        "score_s": round(score_s, 3),
        "outside_openscad_share": round(1 - openscad_s / (pool.workers * wall), 4),
        "score_share": round(score_s / (openscad_s + score_s), 4),
        "statuses": {s: sum(1 for r in results if r.status == s) for s in {r.status for r in results}},
    }


def bare_openscad_seconds(codes: list[str], parallel: int) -> float:
    """Wall seconds to run ``codes`` with bare ``openscad -o x.stl``, ``parallel`` at a time."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as executor:
        list(executor.map(run_bare_openscad, codes))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=68)
    parser.add_argument("--rounds", type=int, default=3, help="alternating 1- and 2-worker measurements")
    parser.add_argument("--out", default="bench/results/reward_throughput.json")
    args = parser.parse_args(argv)

    from renderer.cluster import ensure_ray

    ray_start_s = ensure_ray(os.cpu_count())
    rows, actor_starts, batch = [], {}, []
    for round_index in range(args.rounds):  # alternate 1 and 2 workers: drift hits both alike
        for workers in (1, 2):
            start = time.perf_counter()
            pool = RenderPool(Scorer(threads=1), workers=workers)
            batch = make_batch(args.programs, [pool])
            pool.score(batch[: len(FAMILIES)])  # warm-up: actors up, every target prepared
            actor_starts[workers] = round(time.perf_counter() - start, 2)
            rows.append({"round": round_index, **measure(pool, batch)})
            pool.close()
            row = rows[-1]
            print(f"round {round_index} workers={workers}: {row['programs_per_s']:.2f} programs/s, "
                  f"wall {row['wall_s']:.1f} s, outside OpenSCAD {row['outside_openscad_share']:.1%}, "
                  f"scoring {row['score_share']:.1%} of busy time, statuses {row['statuses']}")
    rate = {w: statistics.median(r["programs_per_s"] for r in rows if r["workers"] == w) for w in (1, 2)}
    outside = {w: statistics.median(r["outside_openscad_share"] for r in rows if r["workers"] == w)
               for w in (1, 2)}
    speedup = rate[2] / rate[1]
    codes = [request.code for request in batch]
    bare = {p: bare_openscad_seconds(codes, p) for p in (1, 2)}
    ceiling = bare[1] / bare[2]
    summary = {"speedup_2_vs_1": round(speedup, 3), "programs_per_s_median": rate,
               "outside_openscad_share_median": outside, "bare_openscad_speedup": round(ceiling, 3),
               "pool_efficiency": round(speedup / ceiling, 3),
               "bare_openscad_wall_s": {str(k): round(v, 2) for k, v in bare.items()},
               "ray_start_s": round(ray_start_s, 2), "rounds": args.rounds,
               "actors_start_and_prepare_s": actor_starts, "cpus": os.cpu_count()}
    print(f"median over {args.rounds} rounds: speedup 2 vs 1 workers {speedup:.2f}x (bare OpenSCAD, 2 vs 1 "
          f"processes: {ceiling:.2f}x; pool efficiency {speedup / ceiling:.0%}); outside OpenSCAD "
          f"{outside[1]:.1%} (1 worker) / {outside[2]:.1%} (2); Ray start-up {ray_start_s:.2f} s; "
          f"actors + target preparation {actor_starts} s")
    write_json(args.out, {"summary": summary, "runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
