"""What a corpus build reports: the ``build.json`` dict, per-family counts, timings, a summary.

Pure functions of a build's settings, rows and chunk metadata (used by :mod:`corpus.build`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from corpus.families import FAMILIES


def build_info(settings, rows, metas, assignment, counts, holdout) -> dict:
    """The ``build.json`` dict, without timings."""
    from renderer.openscad import openscad_info

    split_of_id = {r["id"]: s for r, s in zip(rows, assignment.splits, strict=True)}
    rejects = [x for m in metas for x in m["rejects"]]
    failed = [i for m in metas for i in m["failed"]]
    return {
        "kind": "build",
        "command": command_line(settings),
        "settings": {**asdict(settings), "workers": settings.workers, "holdout": holdout},
        "openscad": openscad_info().version,
        "splits": counts,
        "counts": {
            "requested": settings.n,
            "rendered": len(rows),
            "failed": len(failed),
            "rejects": len(rejects),
            "dropped_code_duplicate": assignment.dropped_code_duplicate,
            "dropped_ood_overlap": assignment.dropped_ood_overlap,
            "geometry_groups": assignment.geometry_groups,
            "largest_geometry_group": assignment.largest_group,
        },
        "families": per_family(settings.families, rows, metas, split_of_id),
        "failed_ids": failed,
        "reject_examples": rejects[:50],
    }


def per_family(families, rows, metas, split_of_id) -> dict:
    """Per family: rows, tries, rejects and their statuses, reject rate, failed parts, split counts."""
    attempts = sum((Counter(m["attempts"]) for m in metas), Counter())
    table = {}
    for family in sorted(families):
        rejects = [x for m in metas for x in m["rejects"] if x["family"] == family]
        ids = [r["id"] for r in rows if r["family"] == family]
        table[family] = {
            "rows": len(ids),
            "attempts": attempts[family],
            "rejects": len(rejects),
            "reject_rate": round(len(rejects) / attempts[family], 4) if attempts[family] else 0.0,
            "reject_status": dict(Counter(x["status"] for x in rejects)),
            "failed": sum(i.startswith(f"{family}-") for m in metas for i in m["failed"]),
            "splits": dict(Counter(split_of_id[i] or "dropped" for i in ids)),
        }
    return table


def timing(rows, metas, seconds: float, ray_start: float, resumed) -> dict:
    """Wall time (every chunk's render time plus this run's assembly), parts/s, OpenSCAD time."""
    chunk_seconds = sum(m["seconds"] for m in metas)
    return {
        "this_run_seconds": round(seconds, 2),
        "chunk_seconds": round(chunk_seconds, 2),
        "parts_per_second": round(len(rows) / chunk_seconds, 3) if chunk_seconds else None,
        "openscad_seconds_total": round(sum(r["render_seconds"] for r in rows), 2),
        "ray_start_seconds": round(ray_start, 2),
        "chunks_resumed": resumed,
    }


def command_line(settings) -> str:
    """The command that reproduces a build with these settings."""
    holdout = ",".join(settings.holdout_families())
    families = "" if set(settings.families) == set(FAMILIES) else f" --families {','.join(settings.families)}"
    return (
        f"python -m corpus.build --n {settings.n} --out {settings.out} --seed {settings.seed} "
        f"--size {settings.size}{families} --holdout_families {holdout} --timeout {settings.timeout:g} "
        f"--max_tries {settings.max_tries} --chunk_size {settings.chunk_size} "
        f"--fractions {','.join(f'{f:g}' for f in settings.fractions)}"
    )



def summary(info: dict) -> str:
    """A few lines on what a build made."""
    c, t = info["counts"], info["timing"]
    return (
        f"{c['rendered']}/{c['requested']} parts rendered "
        f"({c['rejects']} rejected tries, {c['failed']} failed); "
        f"splits {info['splits']}\n"
        f"wall {t['chunk_seconds']:.1f} s rendering, {t['parts_per_second']} parts/s; "
        f"dataset in {info['settings']['out']}"
    )
