"""The per-sample record: one scored program, the source of every report.

Every producer (``rl.eval``, ``rl.ppo``, the benches) writes records as JSON
lines in this shape (:func:`write_records`), and ``python -m reward.report`` reads
them (:func:`load_records`: bad lines are skipped and listed, never fatal). Paths
are relative to the records file's folder, so a run folder can be moved whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


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


_REQUIRED = ("id", "target_id", "code", "status", "total")
_NUMBERS = ("total", "ssim", "chamfer", "iou", "valid", "render_seconds", "score_seconds")


class RecordsError(Exception):
    """A records file that is missing or cannot be read (one line, for the commands that read it)."""


# --- records --------------------------------------------------------------------------------------


@dataclass
class LoadedRecords:
    """The readable records of a JSONL file and the lines that were skipped."""

    records: list[SampleRecord]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """``(line number, why)`` for every non-blank line that was not a valid record."""


def write_records(path: str | Path, records: Iterable[SampleRecord]) -> Path:
    """Write ``records`` as JSON lines to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_dict(), allow_nan=False) + "\n")
    return path


def read_records(path: str | Path) -> list[SampleRecord]:
    """The readable records of the JSONL file at ``path`` (bad lines skipped; see :func:`load_records`)."""
    return load_records(path).records


def load_records(path: str | Path) -> LoadedRecords:
    """Parse ``path``: bad lines are skipped and noted; a missing or unreadable file raises RecordsError."""
    path = Path(path)
    if not path.is_file():
        raise RecordsError(f"records file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise RecordsError(f"cannot read records file {path}: {e.strerror or e}") from e
    loaded = LoadedRecords(records=[])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            loaded.records.append(_parse_record(line))
        except (ValueError, TypeError) as e:
            loaded.skipped.append((number, str(e).splitlines()[0][:200] if str(e) else type(e).__name__))
    return loaded


def _parse_record(line: str) -> SampleRecord:
    """One JSON line -> a checked SampleRecord; ValueError says what is wrong with it."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    record = SampleRecord.from_dict(data)
    for name in _NUMBERS:
        value = getattr(record, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} is not a finite number: {value!r}")
        setattr(record, name, float(value))
    distance = record.chamfer_distance
    if distance is not None and (
        isinstance(distance, bool) or not isinstance(distance, int | float) or not math.isfinite(distance)
    ):
        raise ValueError(f"chamfer_distance is neither null nor a finite number: {distance!r}")
    for name in ("code", "status", "stderr"):
        if not isinstance(getattr(record, name), str):
            raise ValueError(f"{name} is not a string")
    for name in ("target_views", "pred_views"):
        if getattr(record, name) is not None and not isinstance(getattr(record, name), str):
            raise ValueError(f"{name} is not a path")
    record.id, record.target_id = str(record.id), str(record.target_id)
    return record
