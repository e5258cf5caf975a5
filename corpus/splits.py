"""Train / val / test / test_ood splits without leakage, as pure functions.

Used by ``python -m corpus.build`` (and ``python -m corpus.import --split auto``)::

    from corpus.splits import SplitInput, assign, default_holdout
    rows = [SplitInput(id, family, code, geometry_key(extents, area, volume)), ...]
    result = assign(rows, holdout=default_holdout(families, seed=0), seed=0)
    result.splits[i]   # "train" | "val" | "test" | "test_ood" | None (dropped)

Rules, in order:

1. **Held-out families** (``holdout``) go to ``test_ood`` and nowhere else.
2. **Same program**: rows whose :func:`normalize_code` is identical (comments and
   whitespace stripped, numbers rounded to 2 decimals) keep one representative,
   the first in input order; the others are dropped (``dropped_code_duplicate``).
3. **Same geometry**: rows whose :func:`geometry_key` is identical (bounding-box
   extents, surface area and volume to 3 significant figures) form a group that
   goes to one split as a whole. A group that holds a held-out family goes to
   ``test_ood``; its other members are dropped (``dropped_ood_overlap``), so no
   shape of a held-out family is seen in training.
4. Each remaining group's split is drawn from a hash of ``(seed, smallest id in the
   group)`` against ``fractions`` (default 90/5/5): it does not depend on row order
   or on how many rows there are, so a larger build keeps the smaller one's splits
   (unless a new row joins an existing group).

Rounding makes keys stable, not exact: two shapes whose area differs across a
rounding boundary get different keys. The check is for the duplicates a
procedural corpus makes (the same parameters drawn twice, one program written in
two styles), not a general shape-similarity search.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SPLITS = ("train", "val", "test", "test_ood")
"""Every split a build writes, in this order."""
DEFAULT_FRACTIONS = (0.90, 0.05, 0.05)
"""Shares of train, val and test among the rows of families that are not held out."""
DEFAULT_HOLDOUT_COUNT = 2

_TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"'  # string literal
    r"|//[^\n]*"  # line comment
    r"|/\*.*?\*/"  # block comment
    r"|[A-Za-z_$][A-Za-z0-9_$]*"  # identifier
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"  # number
    r"|\S",  # any other character
    re.DOTALL,
)


@dataclass(frozen=True)
class SplitInput:
    """What the split rules need of one row."""

    id: str
    family: str
    code: str
    geometry_key: str
    """:func:`geometry_key` of the row's mesh ('' when unknown: never grouped)."""


@dataclass
class SplitResult:
    """The split of each input row (``None``: dropped) and counts of what was dropped and grouped."""

    splits: list[str | None]
    dropped_code_duplicate: int = 0
    dropped_ood_overlap: int = 0
    geometry_groups: int = 0
    """Groups of two or more rows that share a geometry key."""
    largest_group: int = 1
    counts: dict[str, int] = field(default_factory=dict)


def normalize_code(code: str, decimals: int = 2) -> str:
    """``code`` with comments dropped, tokens joined by single spaces and numbers rounded.

    ``"a=1.004; // x"`` and ``"a = 1.0;"`` both give ``"a = 1 ;"``. String literals are kept.
    """
    tokens = []
    for match in _TOKEN.finditer(code):
        token = match.group()
        if token.startswith(("//", "/*")):
            continue
        if token[0].isdigit() or (token[0] == "." and len(token) > 1):
            token = _round_number(token, decimals)
        tokens.append(token)
    return " ".join(tokens)


def _round_number(token: str, decimals: int) -> str:
    value = round(float(token), decimals)
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def code_key(code: str) -> str:
    """A short hash of :func:`normalize_code` of ``code``."""
    return hashlib.sha256(normalize_code(code).encode("utf-8")).hexdigest()[:16]


def geometry_key(extents: Sequence[float], area: float, volume: float, digits: int = 3) -> str:
    """Bounding-box ``extents (3,)``, surface ``area`` and ``abs(volume)``, each to ``digits``
    significant figures, as one string."""
    values = [*extents, area, abs(volume)]
    return "/".join(f"{float(v):.{digits}g}" for v in values)


def default_holdout(families: Iterable[str], seed: int, count: int = DEFAULT_HOLDOUT_COUNT) -> list[str]:
    """``count`` families drawn from ``families`` (sorted first) with ``seed``; sorted."""
    names = sorted(set(families))
    if count > len(names) - 1:
        raise ValueError(f"cannot hold out {count} of {len(names)} families and still train on one")
    return sorted(random.Random(f"corpus.holdout/{int(seed)}").sample(names, count))


def split_of(anchor: str, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """The in-distribution split (train, val or test) of a group named by ``anchor``."""
    digest = hashlib.sha256(f"{int(seed)}/{anchor}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    total = float(sum(fractions))
    edge = 0.0
    for name, share in zip(SPLITS[:3], fractions, strict=True):
        edge += share / total
        if u < edge:
            return name
    return SPLITS[2]


def fractions_ok(fractions: Sequence[float]) -> bool:
    """Whether ``fractions`` are three (train, val, test) shares >= 0 with a positive sum."""
    values = tuple(float(f) for f in fractions)
    return len(values) == 3 and min(values) >= 0 and sum(values) > 0


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as a (train, val, test) tuple; raises ValueError unless :func:`fractions_ok`."""
    values = tuple(float(f) for f in fractions)
    if not fractions_ok(values):
        raise ValueError(f"split fractions must be three shares >= 0 with a positive sum, got {fractions}")
    return values  # type: ignore[return-value]


def assign(
    rows: Sequence[SplitInput],
    holdout: Iterable[str] = (),
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> SplitResult:
    """Apply the module's rules to ``rows``; see the module docstring."""
    fractions = check_fractions(fractions)
    holdout = set(holdout)
    result = SplitResult(splits=[None] * len(rows))
    kept = _first_of_each_program(rows)
    result.dropped_code_duplicate = len(rows) - len(kept)
    for members in _geometry_groups(rows, kept):
        if len(members) > 1:
            result.geometry_groups += 1
            result.largest_group = max(result.largest_group, len(members))
        _place_group(rows, members, holdout, seed, fractions, result)
    result.counts = {name: sum(s == name for s in result.splits) for name in SPLITS}
    return result


def _first_of_each_program(rows: Sequence[SplitInput]) -> list[int]:
    """Indices of the rows whose normalised program has not appeared earlier."""
    seen: set[str] = set()
    kept = []
    for index, row in enumerate(rows):
        key = code_key(row.code)
        if key not in seen:
            seen.add(key)
            kept.append(index)
    return kept


def _geometry_groups(rows: Sequence[SplitInput], indices: list[int]) -> list[list[int]]:
    """``indices`` grouped by geometry key (an empty key is a group of its own), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index in indices:
        key = rows[index].geometry_key or f"\0{index}"
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def _place_group(rows, members, holdout, seed, fractions, result: SplitResult) -> None:
    ood = [i for i in members if rows[i].family in holdout]
    if ood:
        for i in members:
            result.splits[i] = SPLITS[3] if i in ood else None
        result.dropped_ood_overlap += len(members) - len(ood)
        return
    name = split_of(min(rows[i].id for i in members), seed, fractions)
    for i in members:
        result.splits[i] = name
