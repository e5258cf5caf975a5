"""Statistics and reward-hack detectors behind the reward-inspection report.

Pure functions on :class:`reward.records.SampleRecord` lists and, for the
image detectors, grayscale view arrays (``(H, W) uint8``, white background)
looked up by record id. Nothing here reads files or draws anything:
``reward/report.py`` loads the records and images and assembles the page.

Owns: the summary figures (:func:`summarise`), Pearson and Spearman
correlations (:func:`correlations`), and the "likely reward hacks" detectors
(:func:`find_hacks` and one small function per detector). The thresholds are
the module constants below.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from reward.records import SampleRecord

TERMS = ("total", "ssim", "chamfer", "iou")
"""The reward terms summarised and plotted (each in [0, 1] for a valid sample, 1 best)."""

# --- detector thresholds --------------------------------------------------------------------------

HIGH_SSIM = 0.7
"""(a) An SSIM at or above this ..."""
LOW_IOU = 0.3
"""... with an IoU at or below this: the views look right but the volume is wrong."""
BACKGROUND_LEVEL = 250
"""A pixel at or above this gray level (0-255) is background; below it, part of the silhouette."""
BLANK_FRACTION = 0.995
"""(b) A valid prediction whose views are more than this fraction background rendered (almost) nothing."""
HUGE_RATIO = 2.5
"""(c) A prediction whose silhouette covers more than this many times the target's is huge ..."""
HUGE_FRACTION = 0.9
"""... as is one whose silhouette covers more than this fraction of the image, whatever the target."""
SAME_PROGRAM_MIN_TARGETS = 3
"""(d) One (normalised) program scored against at least this many distinct targets ..."""
SAME_PROGRAM_TARGET_SHARE = 0.2
"""... or against at least this share of all targets (and at least 2) is a one-size-fits-all answer."""
DEGENERATE_STATUS = "degenerate"
"""(e) The status the scorer gives an ok run whose mesh has faces but no usable one."""


def is_valid(record: SampleRecord) -> bool:
    """Whether the program produced usable geometry (and so earned the terms, not the penalty)."""
    return record.valid > 0


# --- statistics -----------------------------------------------------------------------------------


def describe(values: Sequence[float]) -> dict | None:
    """``{mean, median, min, max, n}`` of ``values``; None when there are none."""
    if len(values) == 0:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def summarise(records: Sequence[SampleRecord]) -> dict:
    """The report's summary figures (JSON-ready; None where there is nothing to average).

    ``terms`` and ``chamfer_distance`` are over valid samples only; ``total_mean_all``
    counts every sample, failed ones at their penalty. Times are over every sample.
    """
    valid = [r for r in records if is_valid(r)]
    distances = [r.chamfer_distance for r in valid if r.chamfer_distance is not None]
    n = len(records)

    def _times(attr: str) -> dict | None:
        stats = describe([getattr(r, attr) for r in records])
        return None if stats is None else {"mean": stats["mean"], "median": stats["median"]}

    return {
        "count": n,
        "valid": len(valid),
        "valid_pct": 100.0 * len(valid) / n if n else None,
        "distinct_targets": len({r.target_id for r in records}),
        "total_mean_all": float(np.mean([r.total for r in records])) if n else None,
        "terms": {term: describe([getattr(r, term) for r in valid]) for term in TERMS},
        "chamfer_distance": describe(distances),
        "render_seconds": _times("render_seconds"),
        "score_seconds": _times("score_seconds"),
        "status_counts": dict(Counter(r.status for r in records).most_common()),
    }


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``values``, ties sharing their mean rank (as ``scipy.stats.rankdata``)."""
    arr = np.asarray(values, dtype=np.float64)
    ranks = np.empty(arr.size, dtype=np.float64)
    ranks[np.argsort(arr, kind="mergesort")] = np.arange(1, arr.size + 1)
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None for fewer than 3 pairs or a constant side."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson of average ranks); None as for :func:`pearson`."""
    if len(x) < 3:
        return None
    return pearson(average_ranks(x), average_ranks(y))


def correlations(records: Sequence[SampleRecord]) -> dict[str, dict]:
    """Pearson and Spearman between ssim, chamfer and iou over valid samples, keyed ``"a/b"``."""
    valid = [r for r in records if is_valid(r)]
    out = {}
    for a, b in (("ssim", "chamfer"), ("ssim", "iou"), ("chamfer", "iou")):
        x, y = [getattr(r, a) for r in valid], [getattr(r, b) for r in valid]
        out[f"{a}/{b}"] = {"n": len(valid), "pearson": pearson(x, y), "spearman": spearman(x, y)}
    return out


# --- reward-hack detectors ------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One flagged sample and why, in one line."""

    id: str
    reason: str


@dataclass
class HackCheck:
    """One detector's verdict: what it looks for and the samples it flagged."""

    key: str
    title: str
    rule: str
    flags: list[Flag] = field(default_factory=list)


def background_fraction(image: np.ndarray) -> float:
    """Fraction of pixels at or above :data:`BACKGROUND_LEVEL` (0-255 gray levels)."""
    return float(np.mean(np.asarray(image) >= BACKGROUND_LEVEL)) if np.size(image) else 1.0


def silhouette_fraction(image: np.ndarray) -> float:
    """Fraction of pixels darker than the background: how much of the views the part covers."""
    return 1.0 - background_fraction(image)


def high_ssim_low_iou(records: Sequence[SampleRecord]) -> list[Flag]:
    """(a) Valid samples whose views match (SSIM >= HIGH_SSIM) but whose volume does not (IoU <= LOW_IOU)."""
    return [
        Flag(r.id, f"ssim {r.ssim:.2f} >= {HIGH_SSIM} but iou {r.iou:.2f} <= {LOW_IOU}")
        for r in records
        if is_valid(r) and r.ssim >= HIGH_SSIM and r.iou <= LOW_IOU
    ]


def blank_renders(
    records: Sequence[SampleRecord], pred_images: Mapping[str, np.ndarray | None]
) -> list[Flag]:
    """(b) Valid samples whose prediction views are almost all background (samples without images skipped)."""
    flags = []
    for r in records:
        image = pred_images.get(r.id)
        if not is_valid(r) or image is None:
            continue
        blank = background_fraction(image)
        if blank > BLANK_FRACTION:
            flags.append(Flag(r.id, f"{100 * blank:.2f}% of the prediction's pixels are background"))
    return flags


def huge_renders(
    records: Sequence[SampleRecord],
    pred_images: Mapping[str, np.ndarray | None],
    target_images: Mapping[str, np.ndarray | None],
) -> list[Flag]:
    """(c) Valid samples whose prediction silhouette dwarfs the target's or fills the image."""
    flags = []
    for r in records:
        pred = pred_images.get(r.id)
        if not is_valid(r) or pred is None:
            continue
        covered = silhouette_fraction(pred)
        target = target_images.get(r.id)
        target_covered = silhouette_fraction(target) if target is not None else None
        if covered > HUGE_FRACTION:
            reason = f"prediction covers {100 * covered:.0f}% of the image (> {HUGE_FRACTION:.0%})"
            flags.append(Flag(r.id, reason))
        elif target_covered and covered > HUGE_RATIO * target_covered:
            ratio = covered / target_covered
            flags.append(Flag(r.id, f"prediction covers {ratio:.1f}x the target's pixels (> {HUGE_RATIO}x)"))
    return flags


_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.S)


def normalise_code(code: str) -> str:
    """``code`` without comments, whitespace collapsed (none around punctuation); strings kept as written."""
    strings: list[str] = []

    def _hide(m: re.Match) -> str:
        if not m.group(0).startswith('"'):
            return " "  # a comment
        strings.append(m.group(0))
        return f"\x00{len(strings) - 1}\x00"  # a placeholder no whitespace rule touches

    collapsed = re.sub(r"\s+", " ", _COMMENT_OR_STRING.sub(_hide, code)).strip()
    squeezed = re.sub(r" ?([^\w\s]) ?", r"\1", collapsed)
    return re.sub(r"\x00(\d+)\x00", lambda m: strings[int(m.group(1))], squeezed)


def repeated_programs(records: Sequence[SampleRecord]) -> list[Flag]:
    """(d) Valid samples whose normalised program was used for many distinct targets.

    A program is flagged when its targets number at least ``SAME_PROGRAM_MIN_TARGETS``
    or at least ``SAME_PROGRAM_TARGET_SHARE`` of all targets in ``records``, and at least 2.
    """
    all_targets = {r.target_id for r in records}
    by_program: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        if is_valid(r) and r.code.strip():
            by_program[normalise_code(r.code)].append(r)
    needed = max(2, min(SAME_PROGRAM_MIN_TARGETS, SAME_PROGRAM_TARGET_SHARE * len(all_targets)))
    flags = []
    for group in by_program.values():
        targets = sorted({r.target_id for r in group})
        if len(targets) < needed:
            continue
        shown = ", ".join(targets[:4]) + (", ..." if len(targets) > 4 else "")
        share = len(targets) / len(all_targets)
        reason = f"same program for {len(targets)} targets ({share:.0%} of all: {shown})"
        flags.extend(Flag(r.id, reason) for r in group)
    return flags


def degenerate(records: Sequence[SampleRecord]) -> list[Flag]:
    """(e) Samples whose mesh the scorer found degenerate (faces, but none usable)."""
    return [
        Flag(r.id, f"status '{DEGENERATE_STATUS}', total {r.total:.2f}")
        for r in records
        if r.status == DEGENERATE_STATUS
    ]


def find_hacks(
    records: Sequence[SampleRecord],
    pred_images: Mapping[str, np.ndarray | None],
    target_images: Mapping[str, np.ndarray | None],
) -> list[HackCheck]:
    """Every detector's verdict, in the report's order (images are looked up by record id)."""
    return [
        HackCheck(
            "high_ssim_low_iou",
            "High SSIM, low IoU",
            f"ssim >= {HIGH_SSIM} and iou <= {LOW_IOU}: the views match, the volume does not",
            high_ssim_low_iou(records),
        ),
        HackCheck(
            "blank_render",
            "Blank or near-blank renders",
            f"valid program whose views are > {BLANK_FRACTION:.1%} background (gray >= {BACKGROUND_LEVEL})",
            blank_renders(records, pred_images),
        ),
        HackCheck(
            "huge_render",
            "Huge renders",
            f"prediction silhouette > {HUGE_RATIO}x the target's, or > {HUGE_FRACTION:.0%} of the image",
            huge_renders(records, pred_images, target_images),
        ),
        HackCheck(
            "same_program",
            "One program for many targets",
            f"the same program (comments and whitespace ignored) for >= {SAME_PROGRAM_MIN_TARGETS} "
            f"targets or >= {SAME_PROGRAM_TARGET_SHARE:.0%} of them",
            repeated_programs(records),
        ),
        HackCheck(
            "degenerate",
            "Degenerate geometry",
            f"status '{DEGENERATE_STATUS}': the mesh has faces but no usable one",
            degenerate(records),
        ),
    ]
