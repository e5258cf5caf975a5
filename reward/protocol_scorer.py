"""Scoring generated programs for evaluation: the reward plus the cadrille protocol, on the RenderPool.

:class:`ProtocolScorer` is the pool's scorer (picklable, so Ray actors carry it): it wraps
:class:`reward.score.Scorer` (reward terms in the target's frame) and adds
:func:`reward.metrics.protocol_metrics` (unit-cube normalisation, 8192 points, squared
chamfer, IoU) while the OpenSCAD mesh is still at hand, so a program runs once for both::

    pool = RenderPool(ProtocolScorer(), workers=0)
    pool.add_target(row["id"], *load_mesh(corpus_dir, row))
    scored = pool.score([ScoreRequest(code, row["id"])])[0]   # ScoredSample
    figures = summarise_breakdowns([scored.breakdown])          # valid_frac, iou_mean, ...

:class:`EvalScorer` (``rl.eval``'s scorer) adds, from the same render, the program's
:class:`reward.agreement.Agreement` with what inference holds (the input picture or mesh), so
the selection among k programs needs no second render; a target registered with the input only
scores refinement candidates (agreement alone, nothing against the hidden target), and
:class:`Agreements` shows such a pool to :mod:`rl.refine` as an agreement pool.

Nothing here runs OpenSCAD or scores by itself: it composes :mod:`reward.score`,
:mod:`reward.metrics` and :mod:`reward.agreement` (the pool in :mod:`renderer.pool` runs the
programs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renderer.fit import extents_of
from reward.agreement import Agreement, AgreementScorer, AgreementTarget
from reward.metrics import protocol_metrics
from reward.score import RewardBreakdown, Scorer


@dataclass
class ScoredSample:
    """One program's outcome: the reward breakdown, the protocol record and (:class:`EvalScorer`
    with an input) the agreement with the input."""

    breakdown: RewardBreakdown | None
    """None only for an :class:`EvalScorer` target given the input alone (a refinement candidate)."""
    protocol: dict
    """:func:`reward.metrics.protocol_metrics` record: valid, status, cd (squared, not x1e3), iou."""
    agreement: Agreement | None = None
    """:class:`EvalScorer` with an input: the agreement of the same render with it; else None."""
    extents: tuple[float, float, float] | None = None
    """Bounding-box size (mm, x y z) of the program's render, when it rendered (what
    :func:`renderer.fit.fit_program` fits to a known size); else None."""


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
        return ScoredSample(breakdown, self._protocol(result, prepared), extents=_extents(result))

    def score_with_views(self, result, prepared: _Target) -> tuple[ScoredSample, np.ndarray]:
        """``(scored, views)``: :meth:`__call__` and the prediction's ``(V, H, W)`` views, from the
        render the reward used (:meth:`reward.score.Scorer.score_with_views`)."""
        breakdown, views = self.scorer.score_with_views(result, prepared.reward)
        return ScoredSample(breakdown, self._protocol(result, prepared), extents=_extents(result)), views

    def target_views(self, prepared: _Target) -> np.ndarray:
        return self.scorer.target_views(prepared.reward)

    def _protocol(self, result, prepared: _Target | None) -> dict:
        if not self.protocol or prepared is None:
            return {"valid": False, "status": str(result.status), "cd": None, "iou": None}
        return protocol_metrics(result, prepared.vertices, prepared.faces, threads=self.threads)


@dataclass
class EvalTarget:
    """What :class:`EvalScorer` compares a program with (plain arrays: it pickles to Ray workers)."""

    target: _Target | None
    """The hidden target (reward and protocol), or None: score the agreement only."""
    inputs: AgreementTarget | None
    """What inference holds (the input picture, or a mesh given as input), or None: no agreement."""


class EvalScorer:
    """RenderPool scorer of ``rl.eval``: one OpenSCAD run per program gives the figures against the
    hidden target (:class:`ProtocolScorer`) and the agreement with the input (``agreement``).

    A target is registered as ``pool.add_target(id, mesh, inputs)``: ``mesh = (vertices, faces)``
    of the hidden target or None, ``inputs = (pictures, input_mesh)`` as
    :meth:`reward.agreement.AgreementScorer.prepare` takes them, or None. With ``mesh`` a program
    gets a :class:`ScoredSample` (with its ``agreement`` when ``inputs`` is given); without, a
    :class:`ScoredSample` holding only the agreement (``breakdown`` None; a refinement candidate).
    """

    def __init__(self, protocol: ProtocolScorer | None = None, agreement: AgreementScorer | None = None):
        self.protocol = protocol or ProtocolScorer()
        self.agreement = agreement or AgreementScorer()

    def prepare(self, mesh, inputs) -> EvalTarget:
        target = self.protocol.prepare(*mesh) if mesh is not None else None
        return EvalTarget(target, self.agreement.prepare(*inputs) if inputs is not None else None)

    def __call__(self, result, prepared: EvalTarget | None) -> ScoredSample:
        """The scored sample of one OpenSCAD ``result`` (``prepared`` None: the pool failed on it)."""
        if prepared is None:  # an infrastructure fault: every part says so
            scored = self.protocol(result, None)
            scored.agreement = self.agreement(result, None)
            return scored
        if prepared.target is None:
            return ScoredSample(None, {}, self._agreement(result, prepared), _extents(result))
        scored = self.protocol(result, prepared.target)
        scored.agreement = self._agreement(result, prepared)
        return scored

    def score_with_views(self, result, prepared: EvalTarget) -> tuple[ScoredSample, np.ndarray]:
        """``(scored, views)``: :meth:`__call__` and the prediction's views in the hidden target's
        frame (:meth:`ProtocolScorer.score_with_views`)."""
        scored, views = self.protocol.score_with_views(result, prepared.target)
        scored.agreement = self._agreement(result, prepared)
        return scored, views

    def target_views(self, prepared: EvalTarget) -> np.ndarray:
        return self.protocol.target_views(prepared.target)

    def _agreement(self, result, prepared: EvalTarget) -> Agreement | None:
        return self.agreement(result, prepared.inputs) if prepared.inputs is not None else None


class Agreements:
    """A RenderPool of :class:`EvalScorer` seen as :mod:`rl.refine` takes a pool: ``score`` answers
    each request's :class:`reward.agreement.Agreement`, and ``workers`` is the pool's."""

    def __init__(self, pool):
        self.pool = pool
        self.workers = pool.workers

    def score(self, requests: list) -> list[Agreement]:
        return [scored.agreement for scored in self.pool.score(requests)]


def _extents(result) -> tuple[float, float, float] | None:
    """The render's bounding-box size when it rendered a mesh with faces; else None."""
    if str(getattr(result, "status", "")) != "ok" or len(getattr(result, "faces", ())) == 0:
        return None
    extents = extents_of(result.vertices)
    return None if extents is None else tuple(float(e) for e in extents)


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
