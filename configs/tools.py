"""The configs of the reporting commands: ``rl.compare``, ``rl.curves``, ``reward.report``, ``renderer.demo``.

Every field has a help string (the docstring under it) and is a ``--field VALUE`` option of its
command (fields named in ``POSITIONAL`` are positional arguments); ``__post_init__`` checks each
value once and names the field.
"""

from __future__ import annotations

from dataclasses import dataclass


def _need(config, ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{name} {why}, got {getattr(config, name)!r}")


PICKS = ("greedy", "fitted", "dimensioned", "selected")


@dataclass
class CompareConfig:
    """Compare two rl.eval results of one split, with paired bootstrap intervals on the differences."""

    POSITIONAL = ("a", "b")

    a: str
    """rl.eval output folder of the baseline (e.g. the SFT checkpoint's)."""
    b: str
    """rl.eval output folder compared with it (e.g. the PPO checkpoint's)."""
    names: tuple[str, ...] = ("A", "B")
    """Column names of a and b, comma-separated."""
    out: str | None = None
    """Folder for comparison.json and comparison.md (None: only print the table)."""
    picks: tuple[str, ...] = ("greedy", "greedy")
    """Which program of each evaluation, comma-separated: greedy, fitted (the greedy one scaled to the
    size the policy is shown; rl.eval --fit), dimensioned (its numbers solved to that size; rl.eval
    --dimension), or selected (the one inference keeps: best agreement
    with the input among greedy, fitted, sampled and retrieved; rl.eval --k/--retrieve). a and b may
    then be one folder: greedy,fitted."""

    def __post_init__(self):
        _need(self, bool(self.a), "a", "must name a folder")
        _need(self, bool(self.b), "b", "must name a folder")
        _need(self, len(self.names) == 2 and all(n.strip() for n in self.names), "names",
              "must be two comma-separated names")
        _need(self, len(self.picks) == 2 and all(p.strip() in PICKS for p in self.picks), "picks",
              f"must be two comma-separated picks, each one of {', '.join(PICKS)}")


@dataclass
class CurvesConfig:
    """Plot the reward curves of a PPO run (its metrics.jsonl) as one PNG."""

    POSITIONAL = ("run",)

    run: str
    """PPO run folder (runs/<name>) or its metrics.jsonl."""
    out: str | None = None
    """PNG path (None: reward_curves.png beside metrics.jsonl)."""
    smooth: int = 5
    """Trailing-mean window of the thick lines, in iterations."""

    def __post_init__(self):
        _need(self, bool(self.run), "run", "must name a run folder or metrics.jsonl")
        _need(self, self.smooth >= 1, "smooth", "must be >= 1")


@dataclass
class ReportConfig:
    """Build the reward-inspection HTML report (one self-contained page) from per-sample records."""

    POSITIONAL = ("records",)

    records: str
    """Per-sample records, JSON lines (reward.records.SampleRecord)."""
    out: str
    """Folder for index.html and summary.json."""
    top_k: int = 8
    """Best and worst valid samples shown."""
    title: str | None = None
    """Page title (None: from the records file name)."""

    def __post_init__(self):
        _need(self, bool(self.records), "records", "must name a file")
        _need(self, bool(self.out.strip()), "out", "must name a folder")
        _need(self, self.top_k >= 0, "top_k", "must be >= 0")


@dataclass
class RendererDemoConfig:
    """Render the built-in example parts to PNG views and print a status and timing table."""

    out: str = "runs/examples/renders"
    """Folder for the PNG views and the contact sheet."""
    size: int = 128
    """View size in pixels."""
    timeout: float = 30.0
    """OpenSCAD wall-clock limit per program, seconds."""

    def __post_init__(self):
        _need(self, bool(self.out.strip()), "out", "must name a folder")
        _need(self, self.size >= 8, "size", "must be >= 8 pixels")
        _need(self, self.timeout > 0, "timeout", "must be > 0")
