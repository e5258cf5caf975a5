"""Print a dataset card for a corpus folder and draw a contact sheet of random samples.

Usage::

    python -m corpus.stats runs/corpus2k           # card on stdout; runs/corpus2k/contact_sheet.png
    python -m corpus.stats runs/corpus2k --samples 24 --seed 1
    python -m corpus.stats runs/my_parts --sheet /tmp/sheet.png

The card gives rows per family and split, the reject rate per family (from
``build.json``: rejected tries / tries), the distribution of code length (bytes) and of
OpenSCAD render time (min / median / p95 / max), and what the build dropped as
duplicates. The contact sheet shows ``--samples`` rows drawn with ``--seed`` from every
split, each with its four canonical views (:func:`renderer.views.save_contact_sheet`).
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter, defaultdict

import numpy as np

from configs.cli import UsageError, fail, parse
from configs.corpus import StatsConfig
from corpus import dataset

PROG = "corpus.stats"


def read_columns(root: str, info: dict) -> dict[str, dict[str, list]]:
    """``{split: {column: values}}`` of the light columns of every split of ``root``
    (the splits ``build.json`` lists, empty ones included, else those with files)."""
    columns = ["id", "family", "code", "render_seconds", "n_faces"]
    tables = {}
    for split in list(info.get("splits", {})) or dataset.available_splits(root):
        table = dataset.load(root, split, decode=False).select_columns(columns)
        tables[split] = table.to_dict()
    return tables


def distribution(values) -> str:
    """``min / median / p95 / max`` of ``values`` (or ``-`` when there are none)."""
    if len(values) == 0:
        return "-"
    v = np.asarray(values, dtype=np.float64)
    figures = (v.min(), np.median(v), np.percentile(v, 95), v.max())
    return " / ".join(_fmt(x) for x in figures)


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def family_table(tables: dict, info: dict) -> str:
    """Rows per family and split, then per family: rendered parts dropped as duplicates, tries,
    rejected tries / tries, and parts whose every try failed."""
    split_names = list(tables)
    counts: dict[str, Counter] = defaultdict(Counter)
    for split, columns in tables.items():
        for family in columns["family"]:
            counts[family][split] += 1
    families = info.get("families", {})
    names = sorted(set(counts) | set(families))
    width = max([len("family"), *map(len, names)])
    head = f"{'family':<{width}} " + " ".join(f"{s:>8}" for s in split_names)
    head += f" {'total':>6} {'dropped':>7} {'tries':>6} {'reject%':>8} {'failed':>6}"
    lines = [head, "-" * len(head)]
    for name in names:
        fam = families.get(name, {})
        cells = " ".join(f"{counts[name][s]:>8}" for s in split_names)
        rate = f"{100 * fam['reject_rate']:.1f}%" if "reject_rate" in fam else "-"
        total = sum(counts[name].values())
        dropped = fam["rows"] - total if "rows" in fam else "-"
        lines.append(
            f"{name:<{width}} {cells} {total:>6} {dropped:>7} {fam.get('attempts', '-'):>6} "
            f"{rate:>8} {fam.get('failed', '-'):>6}"
        )
    totals = " ".join(f"{sum(counts[n][s] for n in names):>8}" for s in split_names)
    tries = sum(f.get("attempts", 0) for f in families.values())
    rejects = sum(f.get("rejects", 0) for f in families.values())
    rate = f"{100 * rejects / tries:.1f}%" if tries else "-"
    failed = sum(f.get("failed", 0) for f in families.values())
    rows = sum(len(t["id"]) for t in tables.values())
    dropped = sum(f.get("rows", 0) for f in families.values()) - rows if families else "-"
    lines += [
        "-" * len(head),
        f"{'all':<{width}} {totals} {rows:>6} {dropped:>7} {tries or '-':>6} {rate:>8} "
        f"{failed if families else '-':>6}",
    ]
    return "\n".join(lines)


def card(root: str, tables: dict, info: dict) -> str:
    """The whole dataset card as text."""
    rows = [(split, i) for split, t in tables.items() for i in range(len(t["id"]))]
    code_bytes = [len(t["code"][i].encode("utf-8")) for s, i in rows for t in [tables[s]]]
    seconds = [tables[s]["render_seconds"][i] for s, i in rows]
    faces = [tables[s]["n_faces"][i] for s, i in rows]
    lines = [f"# corpus card: {root}", ""]
    if info.get("command"):
        lines += [f"built by: {info['command']}", f"openscad: {info.get('openscad', '?')}"]
    if info.get("kind") == "import":
        lines += [f"imported from: {info['source']}"]
    per_split = ", ".join(f"{split} {len(t['id'])}" for split, t in tables.items())
    lines += [f"rows: {len(rows)} ({per_split})"]
    holdout = info.get("settings", {}).get("holdout")
    if holdout:
        lines += [f"held-out families (test_ood only): {', '.join(holdout)}"]
    lines += ["", family_table(tables, info), ""]
    lines += [
        "distributions (min / median / p95 / max):",
        f"  code length, bytes    {distribution(code_bytes)}",
        f"  OpenSCAD time, s      {distribution(seconds)}",
        f"  mesh faces            {distribution(faces)}",
    ]
    lines += _build_lines(info)
    return "\n".join(lines)


def _build_lines(info: dict) -> list[str]:
    counts, timing = info.get("counts", {}), info.get("timing", {})
    lines = []
    if "dropped_code_duplicate" in counts:
        lines += [
            "",
            f"requested {counts['requested']}, rendered {counts['rendered']}, failed {counts['failed']} "
            f"(after {info['settings']['max_tries']} tries), rejected tries {counts['rejects']}",
            f"dropped as duplicate programs {counts['dropped_code_duplicate']}, as overlapping test_ood "
            f"{counts['dropped_ood_overlap']}; shared-geometry groups {counts['geometry_groups']} "
            f"(largest {counts['largest_geometry_group']})",
        ]
    if timing.get("parts_per_second"):
        lines += [
            f"build wall time {timing['chunk_seconds']:.1f} s rendering "
            f"({timing['parts_per_second']} parts/s, OpenSCAD {timing['openscad_seconds_total']:.1f} s "
            f"in total), workers {info['settings']['workers']}"
        ]
    if info.get("failures"):
        lines += ["", f"skipped files: {len(info['failures'])}"]
        lines += [f"  {f['name']}: {f['status']}: {f['detail'][:90]}" for f in info["failures"]]
    return lines


def contact_sheet(root: str, tables: dict, path: str, samples: int = 12, seed: int = 0) -> str | None:
    """Draw ``samples`` rows (seeded, from every split) as a contact sheet at ``path``; None if empty."""
    from renderer.views import save_contact_sheet

    keys = [(split, i) for split, t in tables.items() for i in range(len(t["id"]))]
    if not keys:
        return None
    chosen = sorted(random.Random(seed).sample(keys, min(samples, len(keys))))
    rows, labels = [], []
    for split in dict.fromkeys(s for s, _ in chosen):
        indices = [i for s, i in chosen if s == split]
        table = dataset.load(root, split, decode=False).select(indices)
        for row in table:
            rows.append(np.stack([dataset.decode_png(v["bytes"]) for v in row["views"]]))
            labels.append(
                f"{split}  {row['id']}  ({len(row['code'].encode('utf-8'))} B, {row['n_faces']} faces)"
            )
    return save_contact_sheet(rows, path, labels)


def main(argv: list[str] | None = None) -> int:
    config = parse(PROG, __doc__.splitlines()[0], StatsConfig, argv)
    root = config.corpus
    try:
        if not dataset.available_splits(root):
            raise UsageError(f"{root!r} holds no corpus dataset (no data/*.parquet)")
        import datasets

        datasets.disable_progress_bars()
        info = dataset.read_build_info(root)
        tables = read_columns(root, info)
        print(card(root, tables, info))
        sheet_path = config.sheet or os.path.join(root, "contact_sheet.png")
        sheet = contact_sheet(root, tables, sheet_path, config.samples, config.seed)
    except UsageError as error:
        fail(PROG, str(error))
    if sheet:
        print(f"\ncontact sheet: {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
