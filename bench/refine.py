"""Render-in-the-loop refinement at inference: greedy vs refined programs, and which optimiser.

Each measurement is an ``rl.eval`` run (``--k 0 --refine N``: the greedy program, then the same
program refined against the input), read back from its records; the refined program is paired
with the greedy one of the same target. Paired differences get the 95 % BCa bootstrap interval
of :func:`reward.intervals.paired_interval` (10,000 resamples of the targets).

- ``measure``: on ``--n`` images of test and of test_ood, from image input (``--against image``:
  the picture only) and from mesh input (``--against mesh``: the target mesh given, as
  ``rl.predict --mesh``), side by side: protocol IoU (invalid = 0), protocol IoU and CD x1e3 over
  targets where both programs are valid, SSIM and IoU in the target frame, the agreement, and
  seconds of refinement per image (``--render_workers`` actors; 2 on the 2-core machine).
- ``optimisers``: the same, for each of ``--optimisers`` (scipy's Powell, CMA-ES), with the same
  budget on ``--n`` images of ``--splits``; pairs each optimiser's refined programs with the
  first optimiser's.

Writes ``bench/results/refine_<mode>.json`` (``--out`` to change) and prints a table::

    .venv/bin/python bench/refine.py optimisers --checkpoint runs/demo/ppo/final --corpus runs/demo/corpus \\
        --n 12 --splits test --out_dir /tmp/refine_eval
    .venv/bin/python bench/refine.py measure --checkpoint runs/demo/ppo/final --corpus runs/demo/corpus \\
        --n 40 --out_dir /tmp/refine_eval
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.common import write_json  # noqa: E402
from configs.eval import EvalConfig  # noqa: E402
from reward.intervals import paired_interval  # noqa: E402
from reward.records import SampleRecord  # noqa: E402
from rl import eval as rl_eval  # noqa: E402
from rl.eval_figures import refine_pairs  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _valid(record) -> bool:
    return bool(record.extra["protocol_valid"]) and record.extra["protocol_iou"] is not None


FIGURES = (  # (label, value of a record, which pairs count: both records must pass)
    ("protocol IoU (invalid = 0)", lambda r: r.extra["protocol_iou"] if _valid(r) else 0.0, lambda r: True),
    ("protocol IoU, both valid", lambda r: r.extra["protocol_iou"], _valid),
    ("protocol CD x1e3, both valid", lambda r: r.extra["protocol_cd"] * 1e3, _valid),
    ("SSIM (target frame), both valid", lambda r: r.ssim, lambda r: r.valid > 0),
    ("IoU (target frame), both valid", lambda r: r.iou, lambda r: r.valid > 0),
    ("agreement with the input", lambda r: r.extra.get("agreement", np.nan), lambda r: r.valid > 0),
)


def read_records(folder: str) -> list[SampleRecord]:
    with open(os.path.join(folder, "records.jsonl"), encoding="utf-8") as fh:
        return [SampleRecord.from_dict(json.loads(line)) for line in fh if line.strip()]


def paired_table(before: list, after: list) -> dict:
    """``{figure: {n, before, after, difference, ci95, excludes_zero}}`` over paired records."""
    table = {}
    for label, value, keep in FIGURES:
        pairs = [(value(b), value(a)) for b, a in zip(before, after, strict=True) if keep(b) and keep(a)]
        pairs = [p for p in pairs if np.isfinite(p).all()]
        if len(pairs) < 2:
            continue
        b, a = np.array(pairs, dtype=float).T
        difference, low, high = paired_interval(b, a)
        table[label] = {"n": len(pairs), "before": float(b.mean()), "after": float(a.mean()),
                        "difference": difference, "ci95": [low, high],
                        "excludes_zero": bool(low > 0 or high < 0)}
        if "CD" in label:  # the protocol reports CD as a median
            table[label].update(before_median=float(np.median(b)), after_median=float(np.median(a)))
    return table


def evaluate(args, split: str, against: str, optimiser: str) -> dict:
    """One ``rl.eval --k 0 --refine N`` run; its paired greedy-vs-refined table and timings."""
    out = os.path.join(args.out_dir, f"{split}_{against}_{optimiser}_{args.renders}")
    config = EvalConfig(checkpoint=args.checkpoint, corpus_dir=args.corpus, split=split, k=0, limit=args.n,
                        out=out, refine=args.renders, refine_seconds=args.seconds, refine_optimiser=optimiser,
                        against=against, render_workers=args.render_workers, views=False,
                        reward_from=args.reward_from)
    started = time.perf_counter()
    metrics = rl_eval.run(config)
    wall = time.perf_counter() - started
    before, after = refine_pairs(read_records(out))
    refine = metrics["refine"]
    return {
        "split": split, "against": against, "optimiser": optimiser, "out": out, "n": len(after),
        "paired": paired_table(before, after),
        "refine_seconds_per_image": refine["seconds_per_image"],
        "renders_per_image": refine["renders_per_image"],
        "stopped": refine["stopped"], "changed_programs": refine["changed_programs"],
        "eval_wall_seconds": wall, "eval_wall_seconds_per_image": wall / max(len(after), 1),
        "_refined": {r.target_id: r for r in after},
    }


def optimiser_pairs(runs: list[dict]) -> list[dict]:
    """Each optimiser's refined programs against the first optimiser's, per split and input."""
    out = []
    for run in runs:
        first = next(r for r in runs if r["split"] == run["split"] and r["against"] == run["against"])
        if run is first:
            continue
        targets = sorted(first["_refined"].keys() & run["_refined"].keys())
        table = paired_table([first["_refined"][t] for t in targets], [run["_refined"][t] for t in targets])
        out.append({"split": run["split"], "against": run["against"], "a": first["optimiser"],
                    "b": run["optimiser"], "paired": table})
    return out


def print_run(run: dict) -> None:
    seconds = run["refine_seconds_per_image"]
    print(f"\n{run['split']} from {run['against']} input, {run['optimiser']}, {run['n']} images: "
          f"refine {seconds['mean']:.1f} s/image (max {seconds['max']:.1f}), "
          f"{run['renders_per_image']['mean']:.0f} renders/image, stopped {run['stopped']}")
    for label, p in run["paired"].items():
        mark = " *" if p["excludes_zero"] else ""
        print(f"  {label:34s} n={p['n']:3d}  greedy {p['before']:8.3f}  refined {p['after']:8.3f}  "
              f"diff {p['difference']:+8.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("measure", "optimisers"))
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--n", type=int, default=40, help="images per split")
    parser.add_argument("--splits", default="test,test_ood")
    parser.add_argument("--against", default="image,mesh")
    parser.add_argument("--optimisers", default="powell,cma")
    parser.add_argument("--optimiser", default="powell", help="the optimiser of measure")
    parser.add_argument("--renders", type=int, default=200, help="render budget per image")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds budget per image")
    parser.add_argument("--render_workers", type=int, default=2)
    parser.add_argument("--reward_from", default=None)
    parser.add_argument("--out_dir", default="/tmp/refine_eval", help="where the rl.eval folders go")
    parser.add_argument("--out", default=None, help="result JSON (default bench/results/refine_<mode>.json)")
    args = parser.parse_args(argv)
    optimisers = args.optimisers.split(",") if args.mode == "optimisers" else [args.optimiser]
    runs = []
    started = time.perf_counter()
    for split in args.splits.split(","):
        for against in args.against.split(","):
            for optimiser in optimisers:
                runs.append(evaluate(args, split, against, optimiser))
                print_run(runs[-1])
    result = {
        "mode": args.mode, "checkpoint": args.checkpoint, "corpus": args.corpus, "n_per_split": args.n,
        "renders": args.renders, "seconds": args.seconds, "render_workers": args.render_workers,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "wall_seconds": time.perf_counter() - started,
        "interval": "95% paired bootstrap, BCa, 10,000 resamples (reward.intervals.paired_interval)",
        "runs": [{k: v for k, v in run.items() if not k.startswith("_")} for run in runs],
    }
    if args.mode == "optimisers":
        result["optimiser_pairs"] = optimiser_pairs(runs)
        for pair in result["optimiser_pairs"]:
            print(f"\n{pair['split']} from {pair['against']} input: {pair['b']} - {pair['a']}")
            for label, p in pair["paired"].items():
                print(f"  {label:34s} n={p['n']:3d}  {pair['a']} {p['before']:8.3f}  "
                      f"{pair['b']} {p['after']:8.3f}  diff {p['difference']:+8.3f} "
                      f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]")
    write_json(args.out or os.path.join(RESULTS, f"refine_{args.mode}.json"), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
