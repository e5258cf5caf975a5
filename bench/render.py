"""How much does scadloop add on top of OpenSCAD itself?

For programs of rising complexity (the built-in examples, then one corpus part per
family: what the training loop actually runs), times bare ``openscad -o x.stl`` (the
same CLI invocation ``run`` uses) against ``renderer.openscad.run`` +
``renderer.views.render`` (4 views at 128 px, one thread, as a render worker does), in
interleaved pairs. A program's overhead is the median over pairs of (ours - bare),
divided by the median bare time: pairing cancels most of this VM's timing drift.
Also the cost of the OS sandbox (bubblewrap): ``run`` with and without it, in the same
interleaved rounds per program, and, because OpenSCAD's own run-to-run spread on a long
program is larger than the sandbox's few milliseconds, also over ``--sandbox-pairs``
interleaved pairs of quick programs (a cube and two fast corpus parts): the median paired
difference, against the median corpus program's OpenSCAD time. And the cost of a
render-cache hit. Writes
``bench/results/render.json``.

    .venv/bin/python bench/render.py [--repeats 5] [--out bench/results/render.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import run_bare_openscad, write_json  # noqa: E402
from renderer.cache import RenderCache  # noqa: E402
from renderer.examples import EXAMPLES  # noqa: E402
from renderer.openscad import RenderLimits, openscad_info, run  # noqa: E402
from renderer.views import Frame, render  # noqa: E402

PROGRAMS = {
    "cube": "cube([20, 10, 5]);",
    "l_bracket": EXAMPLES["l_bracket"],
    "rounded_box": EXAMPLES["rounded_box"],
    "flange": EXAMPLES["flange"],
    "gear": EXAMPLES["gear"],
    "pipe_elbow": EXAMPLES["pipe_elbow"],
    "plate_36_holes": "difference() { cube([60, 60, 4]);"
    " for (x = [5:10:55], y = [5:10:55]) translate([x, y, -1]) cylinder(d = 4, h = 6, $fn = 24); }",
    "sphere_minus_cylinders": "difference() { sphere(20, $fn = 64);"
    " for (a = [0:30:150]) rotate([0, 90, a]) cylinder(r = 4, h = 50, center = true, $fn = 32); }",
}


def time_bare(code: str) -> float:
    start = time.perf_counter()
    run_bare_openscad(code)
    return time.perf_counter() - start


def time_ours(code: str, limits: RenderLimits) -> tuple[float, float]:
    start = time.perf_counter()
    result = run(code, limits)
    views_start = time.perf_counter()
    render(result, Frame.of(result.vertices), size=128, threads=1)
    end = time.perf_counter()
    return end - start, end - views_start


def time_run(code: str, limits: RenderLimits) -> float:
    start = time.perf_counter()
    run(code, limits)
    return time.perf_counter() - start


def sandbox_cost(codes: list[str], limits: RenderLimits, pairs: int) -> float:
    """Median over interleaved pairs of (sandboxed - unsandboxed) ``run`` time, in seconds."""
    unsandboxed = dataclasses.replace(limits, unsandboxed=True)
    diffs = []
    for i in range(pairs):
        code = codes[i % len(codes)]
        first, second = (limits, unsandboxed) if i % 2 == 0 else (unsandboxed, limits)
        a, b = time_run(code, first), time_run(code, second)
        diffs.append(a - b if first is limits else b - a)
    return statistics.median(diffs)


def time_cache_hit(code: str, limits: RenderLimits, repeats: int = 200) -> float:
    with tempfile.TemporaryDirectory() as root:
        cache = RenderCache(root)
        cache.run(code, limits)
        start = time.perf_counter()
        for _ in range(repeats):
            cache.run(code, limits)
        return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-corpus", action="store_true", help="only the built-in programs")
    parser.add_argument("--sandbox-pairs", type=int, default=150,
                        help="interleaved pairs of quick programs for the sandbox's cost")
    parser.add_argument("--out", default="bench/results/render.json")
    args = parser.parse_args(argv)

    limits = RenderLimits(unsandboxed=False)
    unsandboxed = dataclasses.replace(limits, unsandboxed=True)
    time_ours(PROGRAMS["cube"], limits)  # warm imports (open3d) outside the timings
    rows = []
    print(f"{'program':<28}{'faces':>7}{'bare_s':>9}{'ours_s':>9}{'views_s':>9}{'overhead':>10}"
          f"{'sandbox_ms':>11}")
    programs = dict(PROGRAMS)
    if not args.no_corpus:
        from corpus.families import FAMILIES, generate

        programs.update({f"corpus/{family}": generate(family, 0).code for family in sorted(FAMILIES)})
    for name, code in programs.items():
        bare, ours, views, diffs, sandbox = [], [], [], [], []
        for _ in range(args.repeats):  # interleaved pairs, so machine load hits both alike
            bare.append(time_bare(code))
            total, view_s = time_ours(code, limits)
            ours.append(total)
            views.append(view_s)
            diffs.append(total - bare[-1])
            sandbox.append(time_run(code, limits) - time_run(code, unsandboxed))
        row = {
            "program": name,
            "faces": len(run(code, limits).faces),
            "bare_median_s": statistics.median(bare),
            "ours_median_s": statistics.median(ours),
            "views_median_s": statistics.median(views),
        }
        row["overhead_median_s"] = statistics.median(diffs)
        row["sandbox_cost_median_s"] = statistics.median(sandbox)
        row["overhead"] = row["overhead_median_s"] / row["bare_median_s"]
        rows.append(row)
        print(f"{name:<28}{row['faces']:>7}{row['bare_median_s']:>9.3f}{row['ours_median_s']:>9.3f}"
              f"{row['views_median_s']:>9.4f}{row['overhead']:>9.1%}"
              f"{row['sandbox_cost_median_s'] * 1e3:>11.1f}")
    hit = time_cache_hit(PROGRAMS["flange"], limits)
    corpus_rows = [r for r in rows if r["program"].startswith("corpus/")] or rows
    quick = [PROGRAMS["cube"]] + [programs[n] for n in ("corpus/washer", "corpus/panel") if n in programs]
    cost = sandbox_cost(quick, limits, args.sandbox_pairs)
    corpus_bare = statistics.median(r["bare_median_s"] for r in corpus_rows)
    summary = {
        "median_overhead": statistics.median(r["overhead"] for r in rows),
        "median_overhead_corpus": statistics.median(
            [r["overhead"] for r in rows if r["program"].startswith("corpus/")] or [float("nan")]
        ),
        "median_bare_s": statistics.median(r["bare_median_s"] for r in rows),
        "median_views_s": statistics.median(r["views_median_s"] for r in rows),
        "total_overhead": sum(r["overhead_median_s"] for r in rows) / sum(r["bare_median_s"] for r in rows),
        "cache_hit_ms": hit * 1000,
        "sandbox_cost_median_ms": cost * 1000,
        "sandbox_cost_pairs": args.sandbox_pairs,
        "sandbox_cost_per_program_median_ms": 1000 * statistics.median(
            r["sandbox_cost_median_s"] for r in rows),
        "median_corpus_program_s": corpus_bare,
        "sandbox_cost_vs_median_corpus_program": cost / corpus_bare,
        "openscad": openscad_info().version,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "repeats": args.repeats,
    }
    print(f"median overhead {summary['median_overhead']:.1%} (corpus parts "
          f"{summary['median_overhead_corpus']:.1%}), total overhead "
          f"{summary['total_overhead']:.1%}, cache hit {summary['cache_hit_ms']:.3f} ms; sandbox "
          f"{summary['sandbox_cost_median_ms']:.1f} ms a run ({args.sandbox_pairs} quick pairs) = "
          f"{summary['sandbox_cost_vs_median_corpus_program']:.1%} of the median corpus program "
          f"({corpus_bare:.3f} s)")
    write_json(args.out, {"summary": summary, "programs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
