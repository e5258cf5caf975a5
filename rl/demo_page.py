"""``index.html`` of a main-job folder: stage times, SFT-vs-PPO tables, curves, examples, links.

Plain HTML with relative links, so the folder can be moved or served as is; the per-program
detail lives in the reward reports it links (:mod:`reward.report`). Every path, name and text
from records or config is written through :func:`reward.report_plots.escape` (``html.escape``,
quotes included), as the reward report does, so a quote or ``<script>`` in a path stays text.
"""

from __future__ import annotations

import glob
import json
import os

from configs.cli import fmt
from reward.report_plots import escape

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
td.n{text-align:right;font-family:monospace}.yes{background:#e6f4e6}.no{background:#f8eaea}
pre{background:#f6f6f6;padding:6px;font-size:11px;max-height:260px;overflow:auto;max-width:420px}
.ex{display:flex;gap:12px;align-items:flex-start;margin-bottom:14px}.ex img{height:128px}"""


def _rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators, HTML-escaped (quotes too) for ``src='…'``,
    ``href='…'`` and text alike."""
    return escape(os.path.relpath(path, root).replace(os.sep, "/"))


def _num(value, spec: str = ".3f") -> str:
    return fmt(value, spec, missing="–")


def comparison_table(comparison: dict) -> str:
    """The figures and the paired bootstrap intervals of one :func:`rl.compare.compare`."""
    a, b = (escape(name) for name in comparison["names"])
    rows = [f"<tr><th>figure</th><th>{a}</th><th>{b}</th><th>{b} − {a}</th></tr>"]
    for row in comparison["figures"]:
        spec = row["format"]
        rows.append(
            f"<tr><td>{escape(row['figure'])}</td><td class=n>{_num(row['a'], spec)}</td>"
            f"<td class=n>{_num(row['b'], spec)}</td>"
            f"<td class=n>{_num(row['difference'], '+' + spec)}</td></tr>"
        )
    rows.append(
        f"<tr><th>paired, {comparison['n_paired']} targets</th><th>{a}</th><th>{b}</th>"
        f"<th>{b} − {a} [95% bootstrap CI]</th></tr>"
    )
    for label, p in comparison["paired_bootstrap"].items():
        css = "yes" if p["excludes_zero"] else "no"
        rows.append(
            f"<tr><td>{escape(label)}</td><td class=n>{p['a_mean']:.3f}</td>"
            f"<td class=n>{p['b_mean']:.3f}</td>"
            f"<td class='n {css}'>{p['difference']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def greedy_by_reward(eval_dir: str) -> list[dict]:
    """The greedy records of an evaluation that have view images, best reward first ([] when none)."""
    path = os.path.join(eval_dir, "records.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    greedy = [r for r in records if r.get("extra", {}).get("mode") == "greedy" and r.get("pred_views")]
    return sorted(greedy, key=lambda r: -r["total"])


def example_rows(eval_dir: str, root: str, n: int = 4) -> str:
    """``n`` greedy programs of an evaluation, best reward first: target views, prediction, code."""
    parts = []
    for record in greedy_by_reward(eval_dir)[:n]:
        target = _rel(os.path.join(eval_dir, record["target_views"]), root)
        pred = _rel(os.path.join(eval_dir, record["pred_views"]), root)
        parts.append(
            f"<div class=ex><div>target {escape(record['target_id'])}<br><img src='{target}'><br>"
            f"prediction: reward {record['total']:.3f}, IoU {record['iou']:.3f}<br><img src='{pred}'></div>"
            f"<pre>{escape(record['code'])}</pre></div>"
        )
    return "".join(parts)


def example_figure(eval_dir: str, out: str, max_lines: int = 34) -> str | None:
    """A PNG of the best greedy program: target views above the prediction's, the code beside."""
    from matplotlib.figure import Figure
    from PIL import Image

    ranked = greedy_by_reward(eval_dir)
    if not ranked:
        return None
    record = ranked[0]
    target = Image.open(os.path.join(eval_dir, record["target_views"]))
    pred = Image.open(os.path.join(eval_dir, record["pred_views"]))
    fig = Figure(figsize=(12, 4.6), dpi=100)
    for row, (image, title) in enumerate(
        (
            (target, f"target {record['target_id']}"),
            (pred, f"rendered prediction: reward {record['total']:.2f}, IoU {record['iou']:.2f}"),
        )
    ):
        ax = fig.add_axes((0.0, 0.52 - 0.5 * row, 0.58, 0.42))
        ax.imshow(image, cmap="gray")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    code = [line if len(line) <= 78 else line[:77] + "…" for line in record["code"].splitlines()]
    text = "\n".join(code[:max_lines] + (["// ..."] if len(code) > max_lines else []))
    fig.text(0.6, 0.97, text, family="monospace", fontsize=6.5, va="top")
    fig.savefig(out)
    return out


def write_index(config, summary: dict) -> str:
    """Write ``<out>/index.html`` for a finished main job; returns its path."""
    root = config.out
    stages = summary["stages"].items()
    times = {name: "reused" if t["reused"] else f"{t['seconds']:.0f} s" for name, t in stages}
    stage_rows = "".join(
        f"<tr><td>{escape(name)}</td><td class=n>{escape(t)}</td></tr>" for name, t in times.items()
    )
    sections = [
        f"<h1>scadloop main job: {escape(root)}</h1>",
        "<p>SFT policy, then PPO with OpenSCAD rendering in the loop; both evaluated on the same "
        "splits (greedy programs). Reward = SSIM + chamfer + IoU terms + validity; invalid programs "
        "get the penalty.</p>",
        f"<h2>Stage times</h2><table>{stage_rows}</table>",
    ]
    for split, comparison in summary["comparisons"].items():
        sections.append(f"<h2>SFT vs PPO on {escape(split)}</h2>{comparison_table(comparison)}")
    for split, comparison in (summary.get("fitted_comparisons") or {}).items():
        sections.append(f"<h2>SFT vs PPO on {escape(split)}, greedy programs fitted to the size shown</h2>"
                        f"{comparison_table(comparison)}")
    for split, comparison in (summary.get("dimensioned_comparisons") or {}).items():
        sections.append(f"<h2>SFT vs PPO on {escape(split)}, greedy programs dimensioned to the size shown "
                        f"(their own numbers solved; scaled only where they fall short)</h2>"
                        f"{comparison_table(comparison)}")
    rate = summary.get("ppo_throughput") or {"share": {}}
    shares = escape(", ".join(f"{k} {v:.0%}" for k, v in rate["share"].items() if v is not None))
    sections.append(f"<p>PPO: {rate.get('samples_per_s_mean') or 0:.2f} programs/s; time in {shares}.</p>")
    sections.append(
        f"<h2>PPO reward curves</h2><img src='{_rel(summary['curves'], root)}' style='max-width:100%'>"
    )
    split = next(iter(summary["comparisons"]))
    if summary.get("example"):
        sections.append(
            f"<h2>The best PPO program on {escape(split)}</h2>"
            f"<img src='{_rel(summary['example'], root)}' style='max-width:100%'>"
        )
    sections.append(
        f"<h2>Best PPO programs on {escape(split)}</h2>"
        + example_rows(os.path.join(root, "eval", f"ppo_{split}"), root)
    )
    links = sorted(glob.glob(os.path.join(root, "eval", "*", "index.html")))
    ppo_report = summary["ppo"].get("report")
    if ppo_report:
        links.append(ppo_report)
    items = "".join(f"<li><a href='{_rel(p, root)}'>{_rel(p, root)}</a></li>" for p in links)
    sections.append(f"<h2>Reward-inspection reports</h2><ul>{items}</ul>")
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>scadloop {escape(root)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
    path = os.path.join(root, "index.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path
