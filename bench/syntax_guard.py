"""What the syntax guard (``rl.eval --syntax_guard``, :mod:`renderer.syntax`) changes, from pairs of
``rl.eval`` folders of one checkpoint and split: one decoded without the guard, one with it.

For each ``--pair PLAIN,GUARDED`` it pairs the greedy programs (and the fitted and dimensioned ones
where both evaluations have them) with :func:`rl.compare.compare`, counts the greedy programs the
guard changed and how their render status moved; with ``--records`` it checks every program of
PPO's or ``rl.eval``'s ``records.jsonl`` files whole (none that rendered should be refused), and with
``--checkpoint`` it times greedy decoding of ``--images`` rows of ``--corpus_dir``'s split both
ways (the guard's cost)::

    .venv/bin/python bench/syntax_guard.py --pair runs/x/plain_test,runs/x/guarded_test \\
        --checkpoint runs/demo/ppo/final --corpus_dir runs/demo/corpus --label main_job

Writes under ``--label`` in ``bench/results/syntax_guard.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry, records_by_mode  # noqa: E402
from bench.fit_size import paired_figures  # noqa: E402

RESULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "syntax_guard.json")


def _greedy(folder: str) -> dict:
    return records_by_mode(os.path.join(folder, "records.jsonl"), ("greedy",))["greedy"]


def changed_programs(plain: str, guarded: str) -> dict:
    """How many greedy programs the guard changed, and their render status before -> after."""
    a, b = _greedy(plain), _greedy(guarded)
    changed = [t for t in a if a[t]["code"] != b[t]["code"]]
    moved = collections.Counter(f"{a[t]['status']} -> {b[t]['status']}" for t in changed)
    status = {side: dict(collections.Counter(r["status"] for r in records.values()))
              for side, records in (("plain", a), ("guarded", b))}
    return {"n": len(a), "changed": sum(moved.values()), "status_moves": dict(moved), "status": status}


def records_check(paths: list[str]) -> dict:
    """What :mod:`renderer.syntax` says of every program in ``records.jsonl`` files (PPO's or
    ``rl.eval``'s), by its render status: how many it accepts whole and how many it refuses."""
    from renderer.syntax import ScadPrefix

    counts: dict = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                verdict = "accepted" if ScadPrefix.accepts(record["code"]) else "refused"
                counts.setdefault(record["status"], {"accepted": 0, "refused": 0})[verdict] += 1
    return {"files": len(paths), "by_status": counts}


def decode_seconds(checkpoint: str, corpus_dir: str, split: str, images: int) -> dict:
    """Seconds to decode ``images`` rows greedily without and with the guard (one batch of 8 at a time)."""
    from corpus.dataset import load
    from policies import load_policy
    from policies.inputs import PartInput
    from renderer.syntax import ScadPrefix

    policy = load_policy(checkpoint)
    parts = [PartInput.of(row) for row in load(corpus_dir, split).select(range(images))]
    policy.sample(parts[:1], greedy=True, grammar=ScadPrefix)  # warm-up, token texts
    seconds = {}
    for name, grammar in (("plain", None), ("guarded", ScadPrefix)):
        started = time.perf_counter()
        for start in range(0, len(parts), 8):
            policy.sample(parts[start:start + 8], greedy=True, grammar=grammar)
        seconds[name] = time.perf_counter() - started
    return {**seconds, "images": len(parts), "ratio": seconds["guarded"] / seconds["plain"]}


def main(argv: list[str] | None = None) -> int:
    from configs.cli import UsageError
    from rl.compare import compare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", action="append", default=[], help="PLAIN,GUARDED: rl.eval folders")
    parser.add_argument("--checkpoint", help="time greedy decoding of this policy both ways")
    parser.add_argument("--corpus_dir", help="corpus of the timed rows")
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--records", nargs="*", default=[], help="records.jsonl files to check whole")
    parser.add_argument("--label", required=True)
    args = parser.parse_args(argv)
    entry = {"pairs": {}}
    for pair in args.pair:
        plain, guarded = pair.split(",")
        figures = {"programs": changed_programs(plain, guarded)}
        for pick in ("greedy", "fitted", "dimensioned"):
            try:
                figures[pick] = paired_figures(compare(plain, guarded, ("plain", "guarded"), (pick, pick)))
            except UsageError as error:  # an evaluation without that mode
                figures[pick] = {"skipped": str(error)}
        entry["pairs"][pair] = figures
    if args.records:
        entry["records"] = records_check(args.records)
    if args.checkpoint:
        entry["decode_seconds"] = decode_seconds(args.checkpoint, args.corpus_dir, args.split, args.images)
    add_entry(RESULT, args.label, entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
