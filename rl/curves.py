"""Reward curves of a PPO run: ``runs/<name>/metrics.jsonl`` -> one PNG.

Commands::

    python -m rl.curves runs/ppo                      # writes runs/ppo/reward_curves.png
    python -m rl.curves runs/ppo/metrics.jsonl --out curves.png --smooth 5

Four panels over iterations: the reward and its terms (``reward/{total,ssim,chamfer,iou}/mean``),
the invalid, truncated, duplicate and infrastructure-failed fractions, the KL to the SFT
reference, and the KL coefficient (``kl/coef``, its own axis: at ~0.05 it would be a flat line
beside a KL of ~6).
Thin lines are the raw values, thick ones a trailing mean over ``--smooth`` iterations.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from matplotlib.figure import Figure

from configs.cli import UsageError, fail, parse
from configs.tools import CurvesConfig

PROG = "rl.curves"
PANELS = (
    (
        "reward (mean over programs)",
        ("reward/total/mean", "reward/ssim/mean", "reward/chamfer/mean", "reward/iou/mean"),
    ),
    (
        "failed programs (fraction)",
        ("reward/invalid_frac", "reward/truncated_frac", "reward/duplicate_frac", "reward/infra_failed_frac"),
    ),
    ("KL to the SFT policy (per program)", ("kl/ref_mean",)),
    ("KL coefficient", ("kl/coef",)),
)


def read_metrics(path: str) -> list[dict]:
    """The iterations of a ``metrics.jsonl`` (a run folder or the file), in order."""
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(path):
        raise UsageError(f"{path!r} does not exist: pass a PPO run folder or its metrics.jsonl")
    with open(path, encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    if not lines:
        raise UsageError(f"{path!r} holds no iteration yet")
    return sorted(lines, key=lambda line: line["iteration"])


def throughput(lines: list[dict]) -> dict:
    """Programs per second over the run and the share of iteration time in each phase."""
    phases = {
        name: sum(line.get(f"timing_s/{name}") or 0.0 for line in lines)
        for name in ("generate", "render", "update")
    }
    total = sum(phases.values())
    rates = [line["charts/samples_per_s"] for line in lines if line.get("charts/samples_per_s")]
    return {
        "iterations": len(lines),
        "seconds": total,
        "samples_per_s_mean": sum(rates) / len(rates) if rates else None,
        "share": {name: seconds / total if total else None for name, seconds in phases.items()},
    }


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` finite values at each point (fewer at the start)."""
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        chunk = chunk[np.isfinite(chunk)]
        if len(chunk):
            out[i] = chunk.mean()
    return out


def plot(lines: list[dict], out: str, smooth: int = 5, title: str | None = None) -> str:
    """Draw the panels for ``lines`` into ``out`` (PNG); returns ``out``."""
    iterations = np.array([line["iteration"] for line in lines])
    fig = Figure(figsize=(17, 3.8), dpi=100)
    for index, (panel_title, keys) in enumerate(PANELS):
        ax = fig.add_subplot(1, len(PANELS), index + 1)
        for key in keys:
            values = np.array([np.nan if line.get(key) is None else line[key] for line in lines], dtype=float)
            if not np.isfinite(values).any():
                continue
            (raw,) = ax.plot(iterations, values, linewidth=0.8, alpha=0.35)
            ax.plot(
                iterations,
                trailing_mean(values, smooth),
                linewidth=2,
                color=raw.get_color(),
                label=key.split("/", 1)[1].removesuffix("/mean"),
            )
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out)
    return out


def main(argv: list[str] | None = None) -> int:
    config = parse(PROG, "Plot the reward curves of a PPO run (metrics.jsonl) as a PNG.", CurvesConfig, argv)
    try:
        lines = read_metrics(config.run)
        folder = config.run if os.path.isdir(config.run) else os.path.dirname(config.run)
        out = config.out or os.path.join(folder, "reward_curves.png")
        out = plot(lines, out, config.smooth, title=config.run)
    except UsageError as error:
        fail(PROG, error)
    figures = throughput(lines)
    shares = ", ".join(f"{k} {v:.0%}" for k, v in figures["share"].items() if v is not None)
    print(
        f"{PROG}: {len(lines)} iterations plotted to {out}; "
        f"{figures['samples_per_s_mean'] or 0:.2f} programs/s; time in {shares}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
