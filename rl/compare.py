"""Two evaluations of the same split side by side, with paired bootstrap intervals on the differences.

Commands::

    python -m rl.compare runs/sft/final/eval_test runs/ppo/final/eval_test
    python -m rl.compare A_EVAL B_EVAL --names SFT,PPO --out runs/demo/comparison_test
    python -m rl.compare EVAL EVAL --picks greedy,selected --names greedy,kept   # what selection adds
    python -m rl.compare EVAL EVAL --picks greedy,fitted --names greedy,fitted   # what fitting adds
    python -m rl.compare EVAL EVAL --picks fitted,dimensioned --names scaled,solved
    python -m rl.compare --help

Each argument is an ``rl.eval`` output folder (``metrics.json`` + ``records.jsonl``). Two
evaluations are compared only when they measured the same thing: the same corpus, split and
number of images (``limit``), the same decoding (``k``, ``temperature``, ``top_p``,
``max_new_tokens``), the same reward settings and protocol, and greedy records for the same
targets (``--picks``: or the greedy programs fitted or dimensioned to the size, or the programs
inference selected, see ``rl.eval --fit/--dimension/--k/--retrieve``; for a selected program, sampling
settings may then differ); otherwise the command
stops with a one-line reason (exit 2) and names what differs (re-run one ``rl.eval``, e.g. with
``--reward_from`` the other's run). A target whose program the render pool failed on in either
evaluation (a dead worker, a scoring error: ``extra["infrastructure"]``) is left out of both and
counted. Every figure below is computed from the records of the paired targets, so the table and
the intervals describe the same programs.

The table has one row per figure of the greedy programs (invalid ratio, reward, IoU and SSIM over
valid programs, median chamfer distance in target half-diagonals, the cadrille protocol's IR,
median CD x1e3 and IoU, and the share of distinct programs, which exposes a policy that writes
one program whatever the image) and one column per evaluation, then ``B - A``. For the reward, the
IoU (an invalid program counts 0), the invalid ratio and the protocol's volumetric IoU over the
targets where both programs are valid (the geometry of what both wrote) and the reward over those
same targets (whether what PPO optimised moved where the geometry is compared), ``B - A`` comes with a
95 % paired bootstrap interval over the targets (:func:`reward.intervals.paired_interval`: 10,000
resamples of the targets, BCa); an interval that excludes 0 is marked ``*``.

Writes ``OUT/comparison.json`` and ``OUT/comparison.md`` (the table, Markdown) when ``--out``
is given; prints the table either way. Bad input is one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from configs.cli import UsageError, fail, fmt, parse
from configs.tools import CompareConfig
from reward.intervals import CONFIDENCE, RESAMPLES, paired_interval
from reward.records import SampleRecord
from rl.eval_figures import figures_of
from rl.files import write_json

PROG = "rl.compare"
FIGURES = (  # (label, key path in the figures of rl.eval_figures.figures_of, format)
    ("invalid ratio", ("invalid_ratio",), ".3f"),
    ("reward mean", ("reward_mean",), ".3f"),
    ("IoU mean (valid)", ("iou_mean",), ".3f"),
    ("SSIM mean (valid)", ("ssim_mean",), ".3f"),
    ("CD median, target frame", ("chamfer_distance_median",), ".3f"),
    ("protocol IR", ("protocol", "ir"), ".3f"),
    ("protocol CD x1e3 median", ("protocol", "cd_median_x1e3"), ".2f"),
    ("protocol IoU mean", ("protocol", "iou_mean"), ".3f"),
)
def _always(record) -> bool:
    return True


def _protocol_iou_known(record) -> bool:
    """The program is valid and the protocol measured its volumetric IoU."""
    return bool(record.extra.get("protocol_valid")) and record.extra.get("protocol_iou") is not None


PAIRED = (  # (label, per-record value, which targets: those where both records pass)
    ("reward", lambda r: r.total, _always),
    ("IoU (invalid = 0)", lambda r: r.iou if r.valid > 0 else 0.0, _always),
    ("invalid", lambda r: 0.0 if r.valid > 0 else 1.0, _always),
    ("protocol IoU, both valid", lambda r: r.extra["protocol_iou"], _protocol_iou_known),
    ("reward, both valid", lambda r: r.total, _protocol_iou_known),
)
SAME = (  # (what, metrics.json key): two evaluations that differ in one of these are not paired
    ("corpus", "corpus_dir"),
    ("split", "split"),
    ("images evaluated (limit)", "n_images"),
    ("decoding k", "k"),
    ("decoding temperature", "temperature"),
    ("decoding top_p", "top_p"),
    ("decoding max_new_tokens", "max_new_tokens"),
    ("reward settings", "reward"),
    ("protocol", "protocol_settings"),
)
SAMPLING = ("k", "temperature", "top_p")
"""Settings of :data:`SAME` that only what picked a selected program depends on."""
DECODED = ("greedy", "fitted", "dimensioned")
"""Picks that depend on greedy decoding alone (a fitted program is the greedy one, scaled; a
dimensioned one the greedy one with its numbers solved to the size)."""
SIZED = {"fitted": "fitted no program (rl.eval ran with --fit false, or showed no size)",
         "dimensioned": "dimensioned no program (rl.eval ran with --dimension false, or showed no size)"}


def read_eval(folder: str, pick: str = "greedy") -> tuple[dict, dict[str, SampleRecord]]:
    """``(metrics, {target_id: record})`` of one ``rl.eval`` output folder: each target's greedy
    record, with ``pick`` fitted its greedy program fitted to the size it was shown, or with ``pick``
    selected the one inference kept (``extra["selected"]``)."""
    metrics_path, records_path = (os.path.join(folder, name) for name in ("metrics.json", "records.jsonl"))
    for path in (metrics_path, records_path):
        if not os.path.isfile(path):
            raise UsageError(f"{folder!r} is not an rl.eval output folder (no {os.path.basename(path)})")
    try:
        with open(metrics_path, encoding="utf-8") as fh:
            metrics = json.load(fh)
        with open(records_path, encoding="utf-8") as fh:
            records = [SampleRecord.from_dict(json.loads(line)) for line in fh if line.strip()]
    except (ValueError, TypeError, KeyError) as error:
        raise UsageError(f"{folder!r} holds a broken metrics.json or records.jsonl: {error}") from None
    picked = {}
    for record in records:
        if (record.extra.get("mode") == pick) if pick in DECODED else record.extra.get("selected"):
            if record.target_id in picked:
                raise UsageError(f"{records_path} holds two {pick} records of {record.target_id!r}")
            picked[record.target_id] = record
    if pick == "selected" and not picked:
        raise UsageError(f"{folder!r} selected no program (rl.eval ran with --k 0 and no --retrieve)")
    if pick in SIZED and not picked:
        raise UsageError(f"{folder!r} {SIZED[pick]}")
    return metrics, picked


def _differing(a, b) -> str:
    """``a`` vs ``b`` in a few words (for dicts: only the keys whose values differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        return "; ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys)
    return f"{a!r} vs {b!r}"


def _settled(key: str, value):
    """``value`` of setting ``key``; reward settings with the defaults of fields added since it was
    recorded (an older ``rl.eval`` scored exactly as that default does)."""
    if key != "reward" or not isinstance(value, dict):
        return value
    from configs.reward import as_dict
    from reward.score import RewardWeights

    return {**as_dict(RewardWeights()), **value}


def check_comparable(a: tuple[str, dict, dict], b: tuple[str, dict, dict], greedy: bool = True) -> list[str]:
    """The paired targets of two evaluations ``(folder, metrics, greedy records)``, sorted.

    Raises :class:`UsageError` with a one-line reason when the two did not measure the same thing:
    a setting of :data:`SAME` differs or is not recorded (an older ``rl.eval``), or the greedy
    records are not for the same targets (a missing target would make the table's means and the
    intervals describe different sets). Unless both sides are ``greedy`` programs, the sampling
    settings may differ (what picked the selected programs is what is compared).
    """
    (a_folder, a_metrics, a_records), (b_folder, b_metrics, b_records) = a, b
    for what, key in SAME:
        if not greedy and key in SAMPLING:
            continue
        for folder, metrics in ((a_folder, a_metrics), (b_folder, b_metrics)):
            if key not in metrics:
                raise UsageError(
                    f"{folder}/metrics.json records no {key} (written by an older rl.eval): re-run rl.eval"
                )
        if _settled(key, a_metrics[key]) != _settled(key, b_metrics[key]):
            hint = " (re-run one rl.eval with --reward_from the other's run)" if key == "reward" else ""
            differing = _differing(a_metrics[key], b_metrics[key])
            raise UsageError(f"the evaluations differ in {what}: {differing}{hint}")
    only_a, only_b = sorted(a_records.keys() - b_records.keys()), sorted(b_records.keys() - a_records.keys())
    if only_a or only_b:
        examples = ", ".join(repr(t) for t in (only_a[:1] + only_b[:1]))
        raise UsageError(
            f"the evaluations scored different targets: {len(only_a)} only in {a_folder}, "
            f"{len(only_b)} only in {b_folder} (e.g. {examples})"
        )
    if not a_records:
        raise UsageError(f"{a_folder} and {b_folder} hold no greedy record")
    return sorted(a_records)


def distinct_share(records: dict[str, SampleRecord], targets: list[str]) -> float:
    """Distinct greedy programs per target: near 1/len(targets) when one program answers every image."""
    return len({records[t].code for t in targets}) / len(targets)


def _lookup(section: dict | None, path: tuple[str, ...]):
    for key in path:
        section = (section or {}).get(key)
    return section


def compare(a_folder: str, b_folder: str, names: tuple[str, str] = ("A", "B"),
            picks: tuple[str, str] = ("greedy", "greedy")) -> dict:
    """The comparison of two evaluations of one split (see the module docstring)."""
    a_metrics, a_records = read_eval(a_folder, picks[0])
    b_metrics, b_records = read_eval(b_folder, picks[1])
    shared = check_comparable((a_folder, a_metrics, a_records), (b_folder, b_metrics, b_records),
                              greedy=all(pick in DECODED for pick in picks))
    failed = [t for t in shared if any(r[t].extra.get("infrastructure") for r in (a_records, b_records))]
    shared = [t for t in shared if t not in failed]  # both sides lose the same targets
    if not shared:
        raise UsageError(f"the render pool failed on every target in {a_folder} or {b_folder}")
    protocol = a_metrics["protocol_settings"] is not None
    a_figures = figures_of([a_records[t] for t in shared], protocol)
    b_figures = figures_of([b_records[t] for t in shared], protocol)
    rows = []
    for label, path, spec in FIGURES:
        a, b = _lookup(a_figures, path), _lookup(b_figures, path)
        difference = None if a is None or b is None else b - a
        rows.append({"figure": label, "a": a, "b": b, "format": spec, "difference": difference})
    a, b = distinct_share(a_records, shared), distinct_share(b_records, shared)
    label = "distinct programs / targets"
    rows.append({"figure": label, "a": a, "b": b, "format": ".3f", "difference": b - a})
    paired = {}
    for label, value, keep in PAIRED:
        targets = [t for t in shared if keep(a_records[t]) and keep(b_records[t])]
        if len(targets) < 2:
            continue  # e.g. no protocol, or fewer than two targets valid on both sides
        a = np.array([value(a_records[t]) for t in targets], dtype=float)
        b = np.array([value(b_records[t]) for t in targets], dtype=float)
        difference, low, high = paired_interval(a, b)
        paired[label] = {
            "n": len(targets),
            "a_mean": float(a.mean()),
            "b_mean": float(b.mean()),
            "difference": difference,
            "ci95": [low, high],
            "excludes_zero": bool(low > 0 or high < 0),
        }
    return {
        "names": list(names),
        "picks": list(picks),
        "a": a_folder,
        "b": b_folder,
        "split": a_metrics["split"],
        "corpus_dir": a_metrics["corpus_dir"],
        "reward": a_metrics["reward"],
        "syntax_guard": [bool(m.get("syntax_guard")) for m in (a_metrics, b_metrics)],  # older: none
        "n_paired": len(shared),
        "infra_failed_targets": failed,
        "figures": rows,
        "paired_bootstrap": paired,
        "resamples": RESAMPLES,
        "interval": f"{CONFIDENCE:.0%} paired bootstrap, BCa",
    }


def table_markdown(comparison: dict) -> str:
    """The comparison as a Markdown table (figures, then the paired intervals)."""
    a_name, b_name = comparison["names"]
    lines = [
        f"split `{comparison['split']}`, {' vs '.join(comparison['picks'])} programs, "
        f"{comparison['n_paired']} paired targets"
        + (f" ({len(comparison['infra_failed_targets'])} left out: the render pool failed on them)"
           if comparison["infra_failed_targets"] else "")
        + _guards(comparison.get("syntax_guard"), a_name, b_name),
        "",
        f"| figure | {a_name} | {b_name} | {b_name} - {a_name} |",
        "|---|---:|---:|---:|",
    ]
    for row in comparison["figures"]:
        spec = row["format"]
        difference = fmt(row["difference"], "+" + spec)
        lines.append(f"| {row['figure']} | {fmt(row['a'], spec)} | {fmt(row['b'], spec)} | {difference} |")
    lines += [
        "",
        f"| paired ({comparison['resamples']} bootstrap resamples) | {a_name} | {b_name} | "
        f"{b_name} - {a_name} [95% CI] |",
        "|---|---:|---:|---:|",
    ]
    for label, p in comparison["paired_bootstrap"].items():
        mark = " *" if p["excludes_zero"] else ""
        if p["n"] != comparison["n_paired"]:
            label = f"{label} ({p['n']} targets)"
        lines.append(
            f"| {label} | {p['a_mean']:.3f} | {p['b_mean']:.3f} | "
            f"{p['difference']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]{mark} |"
        )
    lines.append("")
    lines.append("`*`: the interval excludes 0.")
    return "\n".join(lines)


def _guards(guards: list | None, a_name: str, b_name: str) -> str:
    """A note when one side decoded with the syntax guard (rl.eval --syntax_guard) and the other not."""
    if not guards or guards[0] == guards[1]:
        return ""
    sides = zip(guards, (a_name, b_name), strict=True)
    return "; syntax guard " + ", ".join(f"{'on' if on else 'off'} in {name}" for on, name in sides)


def write(comparison: dict, out: str) -> tuple[str, str]:
    """``OUT/comparison.json`` and ``OUT/comparison.md``; their paths."""
    os.makedirs(out, exist_ok=True)
    json_path, md_path = os.path.join(out, "comparison.json"), os.path.join(out, "comparison.md")
    write_json(json_path, comparison)
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(table_markdown(comparison) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    description = "Compare two rl.eval results of one split, with paired bootstrap CIs."
    config = parse(PROG, description, CompareConfig, argv)
    try:
        comparison = compare(config.a, config.b, tuple(name.strip() for name in config.names),
                             tuple(pick.strip() for pick in config.picks))
    except UsageError as error:
        fail(PROG, error)
    print(table_markdown(comparison))
    if config.out:
        print(f"{PROG}: written to {', '.join(write(comparison, config.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
