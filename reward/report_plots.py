"""The plots of the reward report: term histograms, term-vs-term scatters, correlations.

Pure page pieces: records in, HTML out (figures rendered with matplotlib's Agg
canvas into memory and embedded as PNG data URIs). Used by :mod:`reward.report`.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from configs.cli import fmt
from reward.records import SampleRecord
from reward.report_checks import TERMS, is_valid


def escape(text) -> str:
    """``text`` as HTML, quotes included."""
    return html.escape(str(text), quote=True)


def fmt_num(value, digits: int = 3) -> str:
    """A number for the page; ``–`` for a missing one."""
    return fmt(value, f".{digits}f", missing="–")


def figure_img(fig: Figure, alt: str) -> str:
    """A matplotlib figure as an embedded PNG ``<img>``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def plots_section(records: Sequence[SampleRecord], corr: dict) -> str:
    """Histograms of every term, two term-vs-term scatters and the correlation table."""
    valid = [r for r in records if is_valid(r)]
    hists = []
    fig = Figure(figsize=(2.75, 2.1))
    ax = fig.add_subplot()
    totals = [[r.total for r in valid], [r.total for r in records if not is_valid(r)]]
    ax.hist(totals, bins=24, stacked=True, color=["#3b73b9", "#d9534f"], label=["valid", "failed"])
    ax.set_title("total (all samples)", fontsize=10)
    ax.legend(fontsize=7)
    hists.append(figure_img(fig, "histogram of total"))
    for term in TERMS[1:]:
        fig = Figure(figsize=(2.75, 2.1))
        ax = fig.add_subplot()
        ax.hist([getattr(r, term) for r in valid], bins=np.linspace(0, 1, 21), color="#3b73b9")
        ax.set_title(f"{term} (valid samples)", fontsize=10)
        hists.append(figure_img(fig, f"histogram of {term}"))
    body = f'<h3>Histograms</h3><div class="plots">{"".join(hists)}</div>'
    if valid:
        scatters = [
            scatter(valid, "ssim", "iou", "chamfer"),
            scatter(valid, "chamfer", "iou", "ssim"),
        ]
        body += f'<h3>Term against term (valid samples)</h3><div class="plots">{"".join(scatters)}</div>'
    else:
        body += '<p class="muted">No valid samples: nothing to scatter.</p>'
    rows = "".join(
        f"<tr><th>{escape(pair.replace('/', ' vs '))}</th><td>{fmt_num(c['pearson'])}</td>"
        f"<td>{fmt_num(c['spearman'])}</td><td>{c['n']}</td></tr>"
        for pair, c in corr.items()
    )
    body += (
        '<h3>Correlations (valid samples)</h3><p class="muted">– where there are fewer than 3 samples '
        "or a term is constant.</p>"
        f"<table><tr><th>pair</th><th>Pearson</th><th>Spearman</th><th>n</th></tr>{rows}</table>"
    )
    return f'<section id="distributions"><h2>Distributions and correlations</h2>{body}</section>'


def scatter(valid: Sequence[SampleRecord], x: str, y: str, colour: str) -> str:
    """Term ``x`` against term ``y`` over valid samples, coloured by term ``colour``."""
    fig = Figure(figsize=(4.2, 3.4))
    ax = fig.add_subplot()
    points = ax.scatter(
        [getattr(r, x) for r in valid],
        [getattr(r, y) for r in valid],
        c=[getattr(r, colour) for r in valid],
        cmap="viridis",
        vmin=0,
        vmax=1,
        s=14,
        alpha=0.8,
        edgecolors="none",
    )
    ax.set(xlabel=x, ylabel=y, xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
    ax.set_title(f"{x} vs {y}, colour = {colour}", fontsize=10)
    fig.colorbar(points, ax=ax, label=colour)
    return figure_img(fig, f"{x} against {y}")
