"""How ``rl.eval`` has its programs scored on the render pool: one request per program, its views'
PNG paths, and no second render of a program already scored for the same target.

A fitted or dimensioned program is often the greedy one unchanged (the greedy program gave no
mesh, or is already at the size it was shown): OpenSCAD and the scorer are deterministic, so such
a program takes the greedy record's score (and a copy of its views' picture) instead of a render.
"""

from __future__ import annotations

import os
import shutil

NUMBERED = ("sample", "retrieved")
"""Modes of which a target has several programs, numbered in their record ids."""
PROBE = "#size-probe"
"""A target registered with nothing to compare against: the pool only renders and measures (the
dimension solve's probes and candidates)."""


def record_name(row_id: str, mode: str, index: int, separator: str = "/") -> str:
    """A program's record id (``separator`` "/") or views file stem ("_"): ``test-3/greedy``,
    ``test-3/sample2``."""
    return f"{row_id}{separator}{mode}" + (f"{index}" if mode in NUMBERED else "")


def views_path(views_dir: str, row_id: str, mode: str, index: int) -> str:
    """Where a program's views picture goes under ``views_dir``."""
    return os.path.join(views_dir, record_name(row_id, mode, index, "_") + ".png")


def score(pool, rows: list[dict], programs: list[tuple], views_dir: str | None,
          known: dict | None = None) -> list:
    """The pool's :class:`reward.protocol_scorer.ScoredSample` of each ``(row index, mode, number,
    text)``, in order, writing views under ``views_dir`` (None: none). ``known`` maps ``(row index,
    text)`` to ``(ScoredSample, views path)`` of programs already scored: those are not rendered
    again (their views file is copied)."""
    from renderer.pool import ScoreRequest

    known = known or {}
    requests, results = [], [None] * len(programs)
    for n, (i, mode, s, text) in enumerate(programs):
        paths = {}
        if views_dir:
            paths = {"views_path": views_path(views_dir, rows[i]["id"], mode, s),
                     "target_views_path": os.path.join(views_dir, f"{rows[i]['id']}_target.png")}
        if (i, text) in known:
            results[n], old_views = known[(i, text)]
            if paths and old_views and os.path.exists(old_views):
                shutil.copyfile(old_views, paths["views_path"])
            continue
        requests.append((n, ScoreRequest(text, rows[i]["id"], **paths)))
    scored = pool.score([request for _, request in requests]) if requests else []
    for (n, _), result in zip(requests, scored, strict=True):
        results[n] = result
    return results


def scored_by_text(rows: list[dict], programs: list[tuple], scored: list, views_dir: str | None,
                   mode: str = "greedy") -> dict:
    """The ``known`` argument of :func:`score` for the programs of ``mode`` among ``programs``."""
    return {(i, text): (result, views_dir and views_path(views_dir, rows[i]["id"], mode, s))
            for (i, m, s, text), result in zip(programs, scored, strict=True) if m == mode}


def measure(pool, codes: list[str]) -> list:
    """The bounding-box size of each program's render on ``pool`` (None: no mesh), scored against
    :data:`PROBE` (a render and a measure, nothing else)."""
    from renderer.pool import ScoreRequest

    return [scored.extents for scored in pool.score([ScoreRequest(code, PROBE) for code in codes])]
