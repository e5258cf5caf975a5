"""Reward report of OpenSCAD's bundled examples scored against themselves and each other.

Every bundled example that renders within ``--max-seconds`` becomes a target;
each is then scored against itself and against ``--others`` other examples,
through the Ray render pool, with view images saved. Writes records, the HTML
report and a headless-Chromium screenshot under ``--out``
(default ``bench/results/report_examples/``).

    .venv/bin/python bench/report_examples.py [--others 3] [--max-seconds 4]
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.screenshot import screenshot  # noqa: E402
from renderer.openscad import RenderLimits, run  # noqa: E402
from renderer.pool import RenderPool, ScoreRequest  # noqa: E402
from reward.records import SampleRecord, write_records  # noqa: E402
from reward.report import build_report  # noqa: E402
from reward.score import Scorer  # noqa: E402


def load_examples(root: str, max_seconds: float) -> dict[str, tuple[str, object]]:
    """``name -> (code, mesh)`` for every example that renders ok within ``max_seconds``."""
    examples = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "*.scad"), recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as fh:
            code = fh.read()
        result = run(code, RenderLimits(timeout_s=max_seconds))
        if result.ok:
            examples[os.path.relpath(path, root).removesuffix(".scad")] = (code, result)
    return examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/openscad/examples")
    parser.add_argument("--others", type=int, default=3, help="other examples each target is scored against")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="skip slower examples")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="bench/results/report_examples")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    examples = load_examples(args.root, args.max_seconds)
    names = sorted(examples)
    print(f"{len(names)} examples render within {args.max_seconds} s")
    rng = random.Random(0)
    views = os.path.join(args.out, "views")
    cache = os.path.join(args.out, "render_cache")
    pool = RenderPool(Scorer(threads=1), workers=args.workers, cache_dir=cache)
    requests, ids = [], []
    for target in names:
        pool.add_target(target, examples[target][1].vertices, examples[target][1].faces)
        others = rng.sample([n for n in names if n != target], min(args.others, len(names) - 1))
        for pred in [target, *others]:
            sample_id = f"{pred} -> {target}"
            stem = f"{len(ids):04d}"
            requests.append(ScoreRequest(examples[pred][0], target, os.path.join(views, f"{stem}_pred.png"),
                                         os.path.join(views, f"t_{names.index(target):03d}.png")))
            ids.append(sample_id)
    results = pool.score(requests)
    records = [
        SampleRecord.from_breakdown(
            sample_id, request.target_id, request.code, result,
            target_views=os.path.relpath(request.target_views_path, args.out),
            pred_views=os.path.relpath(request.views_path, args.out),
            extra={"self": sample_id.split(" -> ")[0] == request.target_id},
        )
        for sample_id, request, result in zip(ids, requests, results, strict=True)
    ]
    records_path = write_records(os.path.join(args.out, "records.jsonl"), records)
    title = "OpenSCAD examples vs each other"
    page = build_report(records_path, os.path.join(args.out, "report"), title=title)
    shot = screenshot(page, os.path.join(args.out, "report_screenshot.png"))
    self_scores = [r.total for r in records if r.extra["self"]]
    cross_scores = [r.total for r in records if not r.extra["self"]]
    print(f"{len(records)} samples in {time.perf_counter() - start:.0f} s; mean total self "
          f"{sum(self_scores) / len(self_scores):.3f}, other {sum(cross_scores) / len(cross_scores):.3f}")
    print(f"report {page}\nscreenshot {shot}")
    pool.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
