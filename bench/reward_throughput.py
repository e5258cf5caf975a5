"""Throughput of the render pool: programs/s with 1 and 2 Ray workers, time outside OpenSCAD.

Scores the same batch of corpus-family programs (each against a target of the
same family) with ``workers=1`` and ``workers=2``, caching off so OpenSCAD always
runs, after a warm-up batch that starts the actors and prepares the targets.
Writes ``bench/results/reward_throughput.json``:

- ``programs_per_s`` per worker count and the 2-vs-1 ``speedup`` (goal >= 1.8);
- ``outside_openscad_share``: 1 - (OpenSCAD seconds summed over programs) /
  (workers x wall seconds): everything that is not OpenSCAD, idle time included
  (goal <= 10 %); ``score_share``: scoring's part of the workers' busy time
  (scoring seconds / (OpenSCAD + scoring seconds); goal <= 5 %), and
  ``score_ms_per_program``;
- ``terms``: each program's reward terms in the first run;
  ``terms_max_abs_diff_between_runs``: how far any other run moved them (OpenSCAD
  does not emit a program's triangles in the same order twice, which moves the
  chamfer term's samples); with ``--reference`` (an earlier JSON of this bench,
  e.g. before a change to the reward code), ``terms_max_abs_diff``: the largest
  change of each term against it;
- ``ray_start_s``: starting the local Ray cluster in this process, and
  ``actors_start_s``: starting the actors and preparing the targets;
- ``bare_openscad_speedup``: the same programs run by bare ``openscad`` processes,
  two at a time against one at a time: the ceiling this machine puts on any
  2-worker speedup (2 vCPUs may not give 2x), and ``pool_efficiency`` = pool
  speedup / that ceiling.

    .venv/bin/python bench/reward_throughput.py [--programs 68] [--rounds 3] [--out ...] \
        [--reference bench/results/reward_throughput_before.json] [--n-points 2048] \
        [--view-size 128]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import run_bare_openscad, write_json  # noqa: E402
from corpus.families import FAMILIES, generate  # noqa: E402
from renderer.openscad import run  # noqa: E402
from renderer.pool import RenderPool, ScoreRequest  # noqa: E402
from reward.score import RewardWeights, Scorer  # noqa: E402


def make_batch(count: int, pool_targets: list[RenderPool]) -> list[ScoreRequest]:
    """``count`` programs, cycling through the families, each scored against a family target."""
    families = sorted(FAMILIES)
    for family in families:
        target = run(generate(family, 10_000).code)
        for pool in pool_targets:
            pool.add_target(family, target.vertices, target.faces)
    return [ScoreRequest(generate(families[i % len(families)], i).code, families[i % len(families)])
            for i in range(count)]


TERMS = ("total", "ssim", "chamfer", "iou")


def measure(pool: RenderPool, batch: list[ScoreRequest]) -> tuple[dict, dict]:
    """One timed pass over ``batch``: its row of the JSON, and each program's terms."""
    start = time.perf_counter()
    results = pool.score(batch)
    wall = time.perf_counter() - start
    openscad_s = sum(r.seconds for r in results)
    score_s = sum(r.score_seconds for r in results)
    row = {
        "workers": pool.workers,
        "programs": len(batch),
        "wall_s": round(wall, 3),
        "programs_per_s": round(len(batch) / wall, 3),
        "openscad_s": round(openscad_s, 3),
        "score_s": round(score_s, 3),
        "score_ms_per_program": round(1e3 * score_s / len(batch), 2),
        "outside_openscad_share": round(1 - openscad_s / (pool.workers * wall), 4),
        "score_share": round(score_s / (openscad_s + score_s), 4),
        "statuses": {s: sum(1 for r in results if r.status == s) for s in {r.status for r in results}},
    }
    return row, {term: [getattr(r, term) for r in results] for term in TERMS}


def largest_term_changes(terms: dict, others: list[dict]) -> dict:
    """Largest ``|term - other term|`` over the programs and the ``others``, per term."""
    return {t: max((abs(a - b) for other in others for a, b in zip(terms[t], other[t], strict=True)),
                   default=0.0) for t in TERMS}


def bare_openscad_seconds(codes: list[str], parallel: int) -> float:
    """Wall seconds to run ``codes`` with bare ``openscad -o x.stl``, ``parallel`` at a time."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as executor:
        list(executor.map(run_bare_openscad, codes))
    return time.perf_counter() - start


def run_rounds(rounds: int, programs: int, scorer: Scorer) -> tuple[list, list, dict, list]:
    """Alternate 1- and 2-worker pools over the batch (drift hits both alike): the JSON rows, each
    run's terms, the seconds to start each pool and prepare its targets, and the batch."""
    rows, terms, actor_starts, batch = [], [], {}, []
    for round_index in range(rounds):
        for workers in (1, 2):
            start = time.perf_counter()
            pool = RenderPool(scorer, workers=workers)
            batch = make_batch(programs, [pool])
            pool.score(batch[: len(FAMILIES)])  # warm-up: actors up, every target prepared
            actor_starts[workers] = round(time.perf_counter() - start, 2)
            row, run_terms = measure(pool, batch)
            rows.append({"round": round_index, **row})
            terms.append(run_terms)
            pool.close()
            print(f"round {round_index} workers={workers}: {row['programs_per_s']:.2f} programs/s, "
                  f"wall {row['wall_s']:.1f} s, outside OpenSCAD {row['outside_openscad_share']:.1%}, "
                  f"scoring {row['score_share']:.1%} of busy time ({row['score_ms_per_program']:.1f} ms "
                  f"per program), statuses {row['statuses']}")
    return rows, terms, actor_starts, batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=68)
    parser.add_argument("--rounds", type=int, default=3, help="alternating 1- and 2-worker measurements")
    parser.add_argument("--out", default="bench/results/reward_throughput.json")
    parser.add_argument("--reference", help="an earlier JSON of this bench: report how far each term moved")
    parser.add_argument("--n-points", type=int, default=RewardWeights.n_points,
                        help="surface samples per mesh of the chamfer term (RewardWeights.n_points)")
    parser.add_argument("--view-size", type=int, default=RewardWeights.view_size,
                        help="pixels per side of the reward's views (RewardWeights.view_size)")
    args = parser.parse_args(argv)

    from renderer.cluster import ensure_ray

    ray_start_s = ensure_ray(os.cpu_count())
    scorer = Scorer(RewardWeights(n_points=args.n_points, view_size=args.view_size), threads=1)
    rows, terms, actor_starts, batch = run_rounds(args.rounds, args.programs, scorer)

    def median(key: str, workers: int) -> float:
        return statistics.median(r[key] for r in rows if r["workers"] == workers)

    rate = {w: median("programs_per_s", w) for w in (1, 2)}
    outside = {w: median("outside_openscad_share", w) for w in (1, 2)}
    scoring = {w: {"score_share_median": median("score_share", w),
                   "score_ms_per_program_median": median("score_ms_per_program", w)} for w in (1, 2)}
    speedup = rate[2] / rate[1]
    codes = [request.code for request in batch]
    bare = {p: bare_openscad_seconds(codes, p) for p in (1, 2)}
    ceiling = bare[1] / bare[2]
    summary = {"speedup_2_vs_1": round(speedup, 3), "programs_per_s_median": rate,
               "outside_openscad_share_median": outside, "bare_openscad_speedup": round(ceiling, 3),
               "pool_efficiency": round(speedup / ceiling, 3),
               "bare_openscad_wall_s": {str(k): round(v, 2) for k, v in bare.items()},
               "ray_start_s": round(ray_start_s, 2), "rounds": args.rounds,
               "actors_start_and_prepare_s": actor_starts, "cpus": os.cpu_count(), "scoring": scoring,
               "n_points": args.n_points, "view_size": args.view_size,
               "terms_max_abs_diff_between_runs": largest_term_changes(terms[0], terms[1:])}
    if args.reference:
        with open(args.reference) as fh:
            summary["terms_max_abs_diff"] = largest_term_changes(terms[0], [json.load(fh)["terms"]])
        summary["reference"] = args.reference
    print(f"median over {args.rounds} rounds: speedup 2 vs 1 workers {speedup:.2f}x (bare OpenSCAD, 2 vs 1 "
          f"processes: {ceiling:.2f}x; pool efficiency {speedup / ceiling:.0%}); outside OpenSCAD "
          f"{outside[1]:.1%} (1 worker) / {outside[2]:.1%} (2); Ray start-up {ray_start_s:.2f} s; "
          f"actors + target preparation {actor_starts} s; scoring {scoring[1]['score_share_median']:.1%} "
          f"(1 worker) / {scoring[2]['score_share_median']:.1%} (2) of busy time")
    print(f"largest term change between runs (OpenSCAD's triangle order moves the samples): "
          f"{summary['terms_max_abs_diff_between_runs']}")
    if args.reference:
        print(f"largest term change against {args.reference}: {summary['terms_max_abs_diff']}")
    write_json(args.out, {"summary": summary, "runs": rows, "terms": terms[0]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
