"""What fitting the greedy program to the size it was shown adds, from rl.eval output folders.

``rl.eval`` scores, beside each greedy program of a size-reading policy, the same program fitted
to the size it was shown (:mod:`renderer.fit`: each axis scaled so its render's bounding box is
that size; records of mode ``fitted``). This bench pairs them with :func:`rl.compare.compare`:

- per evaluation, greedy against fitted (what the fit adds to one policy's programs), and fitted
  against dimensioned where ``rl.eval --dimension`` ran (:mod:`renderer.dimensions`: the
  program's own numbers solved to the size instead of a scale; records of mode ``dimensioned``);
- per pair of evaluations given with ``--pair A,B`` (e.g. an SFT and a PPO checkpoint on one
  split), the fitted programs of A against those of B (what PPO adds once the size is fitted),
  with ``--greedy_pair A,B`` their greedy programs and with ``--dimensioned_pair A,B`` their
  dimensioned ones::

    .venv/bin/python bench/fit_size.py --evals runs/demo/eval/sft_test runs/demo/eval/ppo_test \\
        --pair runs/demo/eval/sft_test,runs/demo/eval/ppo_test --label main_job

Writes the paired figures (protocol IoU over both-valid targets, IoU with invalid = 0, reward,
invalid ratio, each with its 95 % interval) under ``--label`` in ``bench/results/fit_size.json``,
and for each ``--evals`` folder how near its greedy programs wrote the size they were shown
(``size_written`` of its ``metrics.json``: mean agreement, fraction within 5 % on every axis) and
what dimensioning did (``dimension``: the share at the size in their own numbers, agreement
before and after, renders).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry  # noqa: E402

RESULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fit_size.json")


def paired_figures(comparison: dict) -> dict:
    """The figures of an :func:`rl.compare.compare` result: each side's means and the paired
    differences with their 95 % intervals."""
    return {"n_paired": comparison["n_paired"], "names": comparison["names"], "picks": comparison["picks"],
            "figures": {row["figure"]: [row["a"], row["b"]] for row in comparison["figures"]},
            "paired": comparison["paired_bootstrap"]}


def _metrics(folder: str) -> dict:
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def main(argv: list[str] | None = None) -> int:
    from rl.compare import compare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", nargs="*", default=[], help="rl.eval folders: greedy vs fitted in each")
    parser.add_argument("--pair", action="append", default=[], help="A,B: fitted programs of A vs of B")
    parser.add_argument("--greedy_pair", action="append", default=[], help="A,B: greedy programs of A vs B")
    parser.add_argument("--dimensioned_pair", action="append", default=[],
                        help="A,B: dimensioned programs of A vs of B")
    parser.add_argument("--label", required=True, help="key of the entry in the results file")
    parser.add_argument("--note", default="", help="what the evaluations are (kept with the figures)")
    parser.add_argument("--out", default=RESULT)
    args = parser.parse_args(argv)
    entry = {"note": args.note, "greedy_vs_fitted": {}, "fitted_pairs": {}, "size_written": {}}
    for folder in args.evals:
        comparison = compare(folder, folder, ("greedy", "fitted"), ("greedy", "fitted"))
        entry["greedy_vs_fitted"][folder] = paired_figures(comparison)
        metrics = _metrics(folder)
        entry["size_written"][folder] = metrics.get("size_written")
        if metrics.get("dimensioned"):
            comparison = compare(folder, folder, ("fitted", "dimensioned"), ("fitted", "dimensioned"))
            entry.setdefault("fitted_vs_dimensioned", {})[folder] = paired_figures(comparison)
            entry.setdefault("dimension", {})[folder] = metrics.get("dimension")
    pairings = (("fitted_pairs", args.pair, "fitted"), ("greedy_pairs", args.greedy_pair, "greedy"),
                ("dimensioned_pairs", args.dimensioned_pair, "dimensioned"))
    for key, pairs, pick in pairings:
        for pair in pairs:
            a, b = pair.split(",")
            comparison = compare(a, b, (os.path.basename(a), os.path.basename(b)), (pick, pick))
            entry.setdefault(key, {})[pair] = paired_figures(comparison)
    add_entry(args.out, args.label, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
