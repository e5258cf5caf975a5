"""Two evaluations of the same split side by side, with paired bootstrap intervals on the differences.

Commands::

    python -m rl.compare runs/sft/final/eval_test runs/ppo/final/eval_test
    python -m rl.compare A_EVAL B_EVAL --names SFT,PPO --out runs/demo/comparison_test
    python -m rl.compare --help

Each argument is an ``rl.eval`` output folder (``metrics.json`` + ``records.jsonl``). The table
has one row per figure of the greedy programs (invalid ratio, reward, IoU and SSIM over valid
programs, median chamfer distance in target half-diagonals, the cadrille protocol's IR,
median CD x1e3 and IoU, and the share of distinct programs, which exposes a policy that writes
one program whatever the image) and one column per evaluation, then ``B - A``. For the reward, the IoU
(an invalid program counts 0) and the invalid ratio, ``B - A`` comes with a 95 % paired
bootstrap interval over the targets both evaluations scored (``scipy.stats.bootstrap``,
``paired=True``, 10,000 resamples, BCa); an interval that excludes 0 is marked ``*``.

Writes ``OUT/comparison.json`` and ``OUT/comparison.md`` (the table, Markdown) when ``--out``
is given; prints the table either way. Bad input is one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from rl.cli import Parser, UsageError, fail, write_json

PROG = "rl.compare"
RESAMPLES = 10_000
FIGURES = (  # (label, key path in metrics.json's greedy section, format)
    ("invalid ratio", ("invalid_ratio",), ".3f"),
    ("reward mean", ("reward_mean",), ".3f"),
    ("IoU mean (valid)", ("iou_mean",), ".3f"),
    ("SSIM mean (valid)", ("ssim_mean",), ".3f"),
    ("CD median, target frame", ("chamfer_distance_median",), ".3f"),
    ("protocol IR", ("protocol", "ir"), ".3f"),
    ("protocol CD x1e3 median", ("protocol", "cd_median_x1e3"), ".2f"),
    ("protocol IoU mean", ("protocol", "iou_mean"), ".3f"),
)
PAIRED = (  # (label, per-record value)
    ("reward", lambda r: r["total"]),
    ("IoU (invalid = 0)", lambda r: r["iou"] if r["valid"] > 0 else 0.0),
    ("invalid", lambda r: 0.0 if r["valid"] > 0 else 1.0),
)


def read_eval(folder: str) -> tuple[dict, dict[str, dict]]:
    """``(metrics, {target_id: greedy record dict})`` of one ``rl.eval`` output folder."""
    metrics_path, records_path = (os.path.join(folder, name) for name in ("metrics.json", "records.jsonl"))
    for path in (metrics_path, records_path):
        if not os.path.isfile(path):
            raise UsageError(f"{folder!r} is not an rl.eval output folder (no {os.path.basename(path)})")
    with open(metrics_path, encoding="utf-8") as fh:
        metrics = json.load(fh)
    greedy = {}
    with open(records_path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("extra", {}).get("mode") == "greedy":
                greedy[record["target_id"]] = record
    return metrics, greedy


def distinct_share(records: dict[str, dict], targets: list[str]) -> float:
    """Distinct greedy programs per target: near 1/len(targets) when one program answers every image."""
    return len({records[t]["code"] for t in targets}) / len(targets)


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """``(mean(b - a), low, high)``: the difference and its 95 % paired bootstrap interval."""
    from scipy.stats import bootstrap

    difference = float(np.mean(b - a))
    if len(a) < 2 or np.all(b - a == (b - a)[0]):
        return difference, difference, difference  # no spread: the interval is the point
    result = bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        paired=True,
        n_resamples=RESAMPLES,
        confidence_level=0.95,
        method="BCa",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return difference, float(low), float(high)


def _lookup(section: dict | None, path: tuple[str, ...]):
    for key in path:
        section = (section or {}).get(key)
    return section


def compare(a_folder: str, b_folder: str, names: tuple[str, str] = ("A", "B")) -> dict:
    """The comparison of two evaluations of one split (see the module docstring)."""
    (a_metrics, a_records), (b_metrics, b_records) = read_eval(a_folder), read_eval(b_folder)
    if a_metrics.get("split") != b_metrics.get("split"):
        raise UsageError(
            f"the evaluations are of different splits: {a_metrics.get('split')!r} "
            f"and {b_metrics.get('split')!r}"
        )
    shared = sorted(a_records.keys() & b_records.keys())
    if not shared:
        raise UsageError("the two evaluations share no target: compare evaluations of the same split")
    rows = []
    for label, path, spec in FIGURES:
        a, b = _lookup(a_metrics.get("greedy"), path), _lookup(b_metrics.get("greedy"), path)
        rows.append(
            {
                "figure": label,
                "a": a,
                "b": b,
                "format": spec,
                "difference": None if a is None or b is None else b - a,
            }
        )
    a, b = distinct_share(a_records, shared), distinct_share(b_records, shared)
    label = "distinct programs / targets"
    rows.append({"figure": label, "a": a, "b": b, "format": ".3f", "difference": b - a})
    paired = {}
    for label, value in PAIRED:
        a = np.array([value(a_records[t]) for t in shared], dtype=float)
        b = np.array([value(b_records[t]) for t in shared], dtype=float)
        difference, low, high = paired_interval(a, b)
        paired[label] = {
            "a_mean": float(a.mean()),
            "b_mean": float(b.mean()),
            "difference": difference,
            "ci95": [low, high],
            "excludes_zero": bool(low > 0 or high < 0),
        }
    return {
        "names": list(names),
        "a": a_folder,
        "b": b_folder,
        "split": a_metrics.get("split"),
        "n_paired": len(shared),
        "figures": rows,
        "paired_bootstrap": paired,
        "resamples": RESAMPLES,
    }


def _num(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table_markdown(comparison: dict) -> str:
    """The comparison as a Markdown table (figures, then the paired intervals)."""
    a_name, b_name = comparison["names"]
    lines = [
        f"split `{comparison['split']}`, greedy programs, {comparison['n_paired']} paired targets",
        "",
        f"| figure | {a_name} | {b_name} | {b_name} - {a_name} |",
        "|---|---:|---:|---:|",
    ]
    for row in comparison["figures"]:
        spec = row["format"]
        difference = _num(row["difference"], "+" + spec)
        lines.append(f"| {row['figure']} | {_num(row['a'], spec)} | {_num(row['b'], spec)} | {difference} |")
    lines += [
        "",
        f"| paired ({comparison['resamples']} bootstrap resamples) | {a_name} | {b_name} | "
        f"{b_name} - {a_name} [95% CI] |",
        "|---|---:|---:|---:|",
    ]
    for label, p in comparison["paired_bootstrap"].items():
        mark = " *" if p["excludes_zero"] else ""
        lines.append(
            f"| {label} | {p['a_mean']:.3f} | {p['b_mean']:.3f} | "
            f"{p['difference']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]{mark} |"
        )
    lines.append("")
    lines.append("`*`: the interval excludes 0.")
    return "\n".join(lines)


def write(comparison: dict, out: str) -> tuple[str, str]:
    """``OUT/comparison.json`` and ``OUT/comparison.md``; their paths."""
    os.makedirs(out, exist_ok=True)
    json_path, md_path = os.path.join(out, "comparison.json"), os.path.join(out, "comparison.md")
    write_json(json_path, comparison)
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(table_markdown(comparison) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog=PROG, description="Compare two rl.eval results of one split, with paired bootstrap CIs."
    )
    parser.add_argument("a", help="rl.eval output folder of the baseline (e.g. the SFT checkpoint's)")
    parser.add_argument("b", help="rl.eval output folder compared with it (e.g. the PPO checkpoint's)")
    parser.add_argument("--names", default="A,B", help="column names of a and b, comma-separated")
    parser.add_argument("--out", default=None, help="folder for comparison.json and comparison.md")
    args = parser.parse_args(argv)
    names = tuple(name.strip() for name in args.names.split(","))
    try:
        if len(names) != 2 or not all(names):
            raise UsageError(f"--names needs two comma-separated names, got {args.names!r}")
        comparison = compare(args.a, args.b, names)
    except UsageError as error:
        fail(PROG, error)
    print(table_markdown(comparison))
    if args.out:
        print(f"{PROG}: written to {', '.join(write(comparison, args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
