"""Render every part family and report how it fares: validity, OpenSCAD time, code size.

Usage::

    python -m corpus.families                          # 10 seeds per family, table on stdout
    python -m corpus.families --seeds 3 --families gear  # one family
    python -m corpus.families --sheet runs/families_sheet.png   # also a contact sheet
    python -m corpus.families --json runs/families.json         # also the figures as JSON

The contact sheet shows the first valid part of each family (iso, front, right, top
views from ``renderer.views``). Renders run one at a time unless ``--jobs`` is given,
so the times are those of a single OpenSCAD process: wall seconds (what a render pool
waits) and, with one job, the CPU seconds OpenSCAD used (``cpu``), which stay put when
other work shares the machine.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

from configs.cli import fail, parse
from configs.corpus import FamiliesConfig
from corpus.families import FAMILIES, generate, is_valid_mesh

PROG = "corpus.families"


def measure(families: list[str], seeds: int, jobs: int = 1) -> tuple[list[dict], dict]:
    """Render ``seeds`` parts of each family; return one row of figures per family, and
    the first valid ``(part, result)`` of each family (for the contact sheet)."""
    from renderer.openscad import RenderLimits, run

    limits = RenderLimits(timeout_s=60)
    parts = [generate(f, s) for f in families for s in range(seeds)]
    cpu = {}  # id(part) -> OpenSCAD CPU seconds, known when renders run one at a time
    if jobs <= 1:
        results = []
        for part in parts:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            results.append(run(part.code, limits))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[id(part)] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(lambda p: run(p.code, limits), parts))
    rows, examples = [], {}
    for family in families:
        pairs = [(p, r) for p, r in zip(parts, results, strict=True) if p.family == family]
        ok = [is_valid_mesh(r) for _, r in pairs]
        seconds = [r.seconds for _, r in pairs]
        cpu_s = [cpu[id(p)] for p, _ in pairs] if cpu else [float("nan")]
        sizes = [p.code_bytes for p, _ in pairs]
        rows.append(
            {
                "family": family,
                "ok": sum(ok),
                "n": len(pairs),
                "seconds_median": statistics.median(seconds),
                "seconds_max": max(seconds),
                "cpu_median": statistics.median(cpu_s),
                "cpu_max": max(cpu_s),
                "bytes_median": statistics.median(sizes),
                "bytes_max": max(sizes),
                "bytes_min": min(sizes),
                "failures": [
                    f"seed {p.seed}: {r.status}" for (p, r), good in zip(pairs, ok, strict=True) if not good
                ],
            }
        )
        for (p, r), good in zip(pairs, ok, strict=True):
            if good:
                examples[family] = (p, r)
                break
    totals = {
        "parts": len(parts),
        "ok": sum(is_valid_mesh(r) for r in results),
        "seconds_median": statistics.median(r.seconds for r in results),
        "seconds_p95": sorted(r.seconds for r in results)[int(0.95 * (len(results) - 1))],
        "over_3s": sum(r.seconds > 3 for r in results),
        "cpu_median": statistics.median(cpu.values()) if cpu else float("nan"),
        "cpu_over_3s": sum(c > 3 for c in cpu.values()),
        "bytes_min": min(p.code_bytes for p in parts),
        "bytes_median": statistics.median(p.code_bytes for p in parts),
        "bytes_max": max(p.code_bytes for p in parts),
    }
    return rows, {"totals": totals, "examples": examples}


def format_table(rows: list[dict], totals: dict) -> str:
    head = (
        f"{'family':<14} {'ok':>6} {'med s':>6} {'max s':>6} {'med cpu':>8} {'max cpu':>8} "
        f"{'med B':>6} {'max B':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['family']:<14} {r['ok']:>3}/{r['n']:<2} "
            f"{r['seconds_median']:>6.2f} {r['seconds_max']:>6.2f} "
            f"{r['cpu_median']:>8.2f} {r['cpu_max']:>8.2f} {r['bytes_median']:>6.0f} {r['bytes_max']:>6d}"
        )
        lines += [f"    failed {f}" for f in r["failures"]]
    t = totals
    lines.append("-" * len(head))
    lines.append(
        f"all {t['ok']}/{t['parts']} ok; OpenSCAD wall s median {t['seconds_median']:.2f}, "
        f"p95 {t['seconds_p95']:.2f}, {t['over_3s']} over 3 s; cpu s median {t['cpu_median']:.2f}, "
        f"{t['cpu_over_3s']} over 3 s; code bytes {t['bytes_min']}..{t['bytes_max']} "
        f"(median {t['bytes_median']:.0f})"
    )
    return "\n".join(lines)


def save_sheet(examples: dict, path: str, size: int = 128) -> str:
    """A contact sheet of one part per family: a row each, four canonical views."""
    from renderer.views import Frame, render, save_contact_sheet

    rows, labels = [], []
    for family, (part, result) in examples.items():
        views = render(result, Frame.of(result.vertices), size=size)
        rows.append(views.images)
        labels.append(f"{family} seed {part.seed} ({part.params.get('variant', '')}, {part.code_bytes} B)")
    return save_contact_sheet(rows, path, labels)


def main(argv: list[str] | None = None) -> int:
    config = parse(PROG, __doc__.splitlines()[0], FamiliesConfig, argv)
    unknown = sorted(set(config.families) - set(FAMILIES))
    if unknown:
        fail(PROG, f"families: unknown {unknown}; known: {', '.join(sorted(FAMILIES))}")
    families = list(dict.fromkeys(config.families)) or list(FAMILIES)
    rows, extra = measure(families, config.seeds, config.jobs)
    print(format_table(rows, extra["totals"]))
    if config.sheet:
        print(f"contact sheet: {save_sheet(extra['examples'], config.sheet)}")
    if config.json:
        with open(config.json, "w", encoding="utf-8") as fh:
            json.dump({"families": rows, "totals": extra["totals"]}, fh, indent=2)
    return 0 if all(r["ok"] == r["n"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
