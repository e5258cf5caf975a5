"""The per-sample record: one scored program, the source of every report.

Every producer (``rl.eval``, ``rl.ppo``, the benches) writes records as JSON
lines in this shape, and ``python -m reward.report`` reads them. Paths are
relative to the records file's folder, so a run folder can be moved whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class SampleRecord:
    """One scored program."""

    id: str
    """Unique within the records file (e.g. ``it12/target7/s3``)."""
    target_id: str
    """Which target the program was scored against."""
    code: str
    """The program as generated."""
    status: str
    """The renderer's status (ok, syntax_error, ...)."""
    total: float
    """The reward; ``invalid_penalty`` for a failed program."""
    ssim: float = 0.0
    chamfer: float = 0.0
    """Chamfer term in [0, 1] (1 is best)."""
    iou: float = 0.0
    valid: float = 0.0
    chamfer_distance: float | None = None
    """Raw chamfer distance in target half-diagonals; None when invalid."""
    render_seconds: float = 0.0
    """OpenSCAD wall time."""
    score_seconds: float = 0.0
    """Scoring wall time (views, sampling, occupancy)."""
    target_views: str | None = None
    """PNG with the target's views side by side (relative path)."""
    pred_views: str | None = None
    """PNG with the prediction's views, same cameras and frame (relative path)."""
    stderr: str = ""
    """Tail of OpenSCAD's messages for a failed program."""
    extra: dict = field(default_factory=dict)
    """Producer-specific fields (iteration, sample index, family, ...)."""

    @classmethod
    def from_breakdown(cls, id: str, target_id: str, code: str, breakdown, **kwargs) -> SampleRecord:
        """Build a record from a :class:`reward.score.RewardBreakdown`."""
        return cls(
            id=id,
            target_id=target_id,
            code=code,
            status=str(breakdown.status),
            total=breakdown.total,
            ssim=breakdown.ssim,
            chamfer=breakdown.chamfer,
            iou=breakdown.iou,
            valid=breakdown.valid,
            chamfer_distance=breakdown.chamfer_distance,
            render_seconds=breakdown.seconds,
            score_seconds=breakdown.score_seconds,
            stderr=getattr(breakdown, "detail", ""),
            **kwargs,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SampleRecord:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)}
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        return cls(**{k: v for k, v in data.items() if k in known and k != "extra"}, extra=extra)
