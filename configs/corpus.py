"""The corpus commands' configs: ``corpus.build``, ``corpus.import``, ``corpus.stats``, ``corpus.families``.

Every field has a help string (the docstring under it) and is a ``--field VALUE`` option of its
command (fields named in ``POSITIONAL`` are positional arguments); ``__post_init__`` checks each
value once and names the field. The render-actor settings of ``corpus.build`` and
``corpus.import`` are declared once, in :class:`RenderActors`, which both extend. Family names
are checked by the commands themselves (:class:`corpus.build.BuildSettings`,
``corpus.families``), which own the list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from corpus.splits import DEFAULT_FRACTIONS, fractions_ok


def _need(config, ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{name} {why}, got {getattr(config, name)!r}")


def _workers(text: str) -> int | None:
    """``auto`` -> one per CPU, ``N`` (>= 0) -> N; None when ``text`` is neither."""
    if text == "auto":
        return os.cpu_count() or 1
    return int(text) if re.fullmatch(r"\d+", text) else None


@dataclass(kw_only=True)
class RenderActors:
    """The render-actor settings that ``corpus.build`` and ``corpus.import`` share (each command's
    options, listed first; a command may give ``workers`` another default)."""

    workers: str = "auto"
    """Render actors: auto (one per CPU) or N (0: render in this process, no Ray)."""
    ray_address: str | None = None
    """Join this running Ray cluster (HOST:PORT) for the render actors instead of starting a local
    one (also $RAY_ADDRESS; needs RAY_AUTH_MODE=token and the cluster's token; unused with workers 0)."""

    def __post_init__(self):
        _need(self, _workers(self.workers) is not None, "workers", "must be auto or an integer >= 0")

    @property
    def worker_count(self) -> int:
        """``workers`` as a number of render actors (``auto``: one per CPU)."""
        return _workers(self.workers)


@dataclass
class BuildConfig(RenderActors):
    """Build the procedural corpus: programs -> OpenSCAD meshes -> views -> a split datasets folder."""

    n: int
    """Parts to generate."""
    out: str
    """Output folder (created; run the same command again to resume an interrupted build)."""
    seed: int = 0
    """Build seed: family order, part seeds, default held-out families, split hashing."""
    size: int = 128
    """View size in pixels (the reward's default is 128)."""
    families: tuple[str, ...] = ()
    """Families to draw from, comma-separated (empty: all 17)."""
    holdout_families: tuple[str, ...] | None = None
    """Families kept for the test_ood split only, comma-separated (None: two chosen with seed)."""
    timeout: float = 30.0
    """OpenSCAD wall-clock limit per program, seconds."""
    max_tries: int = 5
    """Programs tried per part: the first plus retries with derived seeds."""
    chunk_size: int = 128
    """Parts per chunk (the unit of resumption)."""
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    """Shares of train, val and test among the parts of families not held out, comma-separated."""
    quiet: bool = False
    """No progress bar."""

    def __post_init__(self):
        super().__post_init__()
        _need(self, self.n >= 1, "n", "must be >= 1")
        _need(self, bool(self.out.strip()), "out", "must name a folder")
        _need(self, self.size >= 8, "size", "must be >= 8 pixels")
        _need(self, self.timeout > 0, "timeout", "must be > 0")
        _need(self, self.max_tries >= 1, "max_tries", "must be >= 1")
        _need(self, self.chunk_size >= 1, "chunk_size", "must be >= 1")
        _need(self, fractions_ok(self.fractions), "fractions",
              "must be three shares >= 0 (train, val, test) with a positive sum")


@dataclass
class ImportConfig(RenderActors):
    """Import a folder of OpenSCAD programs (and optional pictures) into the corpus dataset format."""

    POSITIONAL = ("folder",)

    folder: str
    """Folder of name.scad files (and optional name.png pictures)."""
    out: str
    """Output dataset folder (new, empty or an earlier import)."""
    split: str = "test"
    """Split every row goes to, or auto for 90/5/5 train/val/test without leakage."""
    workers: str = field(default="0", kw_only=True)
    # RenderActors.workers (its help is there), with another default: an import renders in this process
    size: int = 128
    """View size in pixels (the reward's default is 128)."""
    timeout: float = 30.0
    """OpenSCAD wall-clock limit per file, seconds."""
    seed: int = 0
    """Split hashing seed of split auto."""

    def __post_init__(self):
        super().__post_init__()
        _need(self, bool(self.folder), "folder", "must name a folder")
        _need(self, bool(self.out.strip()), "out", "must name a folder")
        _need(self, bool(re.fullmatch(r"[A-Za-z0-9_]+", self.split)), "split",
              "must be a name of letters, digits and _")
        _need(self, self.size >= 1, "size", "must be >= 1")
        _need(self, self.timeout > 0, "timeout", "must be > 0")


@dataclass
class StatsConfig:
    """Print a dataset card for a corpus folder and draw a contact sheet of random samples."""

    POSITIONAL = ("corpus",)

    corpus: str
    """A corpus folder written by corpus.build or corpus.import."""
    samples: int = 12
    """Rows on the contact sheet."""
    seed: int = 0
    """Seed of the contact sheet's sample."""
    sheet: str | None = None
    """Contact sheet path (None: CORPUS/contact_sheet.png)."""

    def __post_init__(self):
        _need(self, bool(self.corpus), "corpus", "must name a folder")
        _need(self, self.samples >= 1, "samples", "must be >= 1")


@dataclass
class FamiliesConfig:
    """Render every part family and report how it fares: validity, OpenSCAD time, code size."""

    seeds: int = 10
    """Seeds 0..N-1 rendered per family."""
    families: tuple[str, ...] = ()
    """Only these families, comma-separated (empty: all 17)."""
    jobs: int = 1
    """OpenSCAD processes at once (1: CPU seconds are measured too)."""
    sheet: str | None = None
    """Also write a contact sheet PNG of one part per family here."""
    json: str | None = None
    """Also write the figures as JSON here."""

    def __post_init__(self):
        _need(self, self.seeds >= 1, "seeds", "must be >= 1")
        _need(self, self.jobs >= 1, "jobs", "must be >= 1")
