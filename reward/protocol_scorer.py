"""Scoring generated programs for evaluation: the reward plus the cadrille protocol, on the RenderPool.

:class:`ProtocolScorer` is the pool's scorer (picklable, so Ray actors carry it): it wraps
:class:`reward.score.Scorer` (reward terms in the target's frame) and adds
:func:`reward.metrics.protocol_metrics` (unit-cube normalisation, 8192 points, squared
chamfer, IoU) while the OpenSCAD mesh is still at hand, so a program runs once for both::

    pool = RenderPool(ProtocolScorer(), workers=0)
    pool.add_target(row["id"], *load_mesh(corpus_dir, row))
    scored = pool.score([ScoreRequest(code, row["id"])])[0]   # ScoredSample
    figures = summarise_breakdowns([scored.breakdown])          # valid_frac, iou_mean, ...

Nothing here runs OpenSCAD or scores by itself: it composes :mod:`reward.score` and
:mod:`reward.metrics` (the pool in :mod:`renderer.pool` runs the programs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reward.metrics import protocol_metrics
from reward.score import RewardBreakdown, Scorer


@dataclass
class ScoredSample:
    """One program's outcome: the reward breakdown and the protocol record."""

    breakdown: RewardBreakdown
    protocol: dict
    """:func:`reward.metrics.protocol_metrics` record: valid, status, cd (squared, not x1e3), iou."""


@dataclass
class _Target:
    reward: object
    vertices: np.ndarray
    faces: np.ndarray


class ProtocolScorer:
    """RenderPool scorer giving a :class:`ScoredSample` per program.

    Parameters
    ----------
    scorer : Scorer or None
        The reward (default ``Scorer(threads=1)``: one Embree thread, as a pool worker owns one CPU).
    protocol : bool
        Compute the cadrille protocol record too (``False`` leaves it invalid/None: faster).
    threads : int
        Embree threads of the protocol's occupancy grid.
    """

    def __init__(self, scorer: Scorer | None = None, protocol: bool = True, threads: int = 1):
        self.scorer = scorer or Scorer(threads=1)
        self.protocol = protocol
        self.threads = threads

    def prepare(self, vertices, faces) -> _Target:
        return _Target(self.scorer.prepare(vertices, faces), np.asarray(vertices), np.asarray(faces))

    def __call__(self, result, prepared: _Target | None) -> ScoredSample:
        """The reward breakdown and the protocol record of one OpenSCAD ``result``."""
        breakdown = self.scorer(result, prepared.reward if prepared is not None else None)
        return ScoredSample(breakdown, self._protocol(result, prepared))

    def score_with_views(self, result, prepared: _Target) -> tuple[ScoredSample, np.ndarray]:
        """``(scored, views)``: :meth:`__call__` and the prediction's ``(V, H, W)`` views, from the
        render the reward used (:meth:`reward.score.Scorer.score_with_views`)."""
        breakdown, views = self.scorer.score_with_views(result, prepared.reward)
        return ScoredSample(breakdown, self._protocol(result, prepared)), views

    def target_views(self, prepared: _Target) -> np.ndarray:
        return self.scorer.target_views(prepared.reward)

    def _protocol(self, result, prepared: _Target | None) -> dict:
        if not self.protocol or prepared is None:
            return {"valid": False, "status": str(result.status), "cd": None, "iou": None}
        return protocol_metrics(result, prepared.vertices, prepared.faces, threads=self.threads)


def _stats(values: list[float], name: str) -> dict:
    return {
        f"{name}_mean": float(np.mean(values)) if values else None,
        f"{name}_median": float(np.median(values)) if values else None,
    }


def summarise_breakdowns(breakdowns: list[RewardBreakdown]) -> dict:
    """Target-frame figures over many programs.

    Returns ``n``, ``valid_frac``, ``invalid_ratio`` and ``reward_mean`` over every program,
    and the mean and median of ``iou``, ``ssim`` and ``chamfer_distance`` (target
    half-diagonals) over the **valid** ones, as the cadrille protocol averages IoU; a figure
    with nothing to average is None. ``status_counts`` counts each renderer status.
    """
    valid = [b for b in breakdowns if b.valid > 0]
    n = len(breakdowns)
    counts: dict[str, int] = {}
    for b in breakdowns:
        counts[str(b.status)] = counts.get(str(b.status), 0) + 1
    figures = {
        "n": n,
        "valid_frac": len(valid) / n if n else None,
        "invalid_ratio": (n - len(valid)) / n if n else None,
        "reward_mean": float(np.mean([b.total for b in breakdowns])) if n else None,
    }
    figures.update(_stats([b.iou for b in valid], "iou"))
    figures.update(_stats([b.ssim for b in valid], "ssim"))
    distances = [b.chamfer_distance for b in valid if b.chamfer_distance is not None]
    figures.update(_stats(distances, "chamfer_distance"))
    figures["status_counts"] = dict(sorted(counts.items()))
    return figures
