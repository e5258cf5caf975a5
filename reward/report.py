"""The reward-inspection report: per-sample records (JSONL + PNG views) -> one self-contained HTML page.

Command::

    python -m reward.report RECORDS.jsonl --out DIR [--top_k 8] [--title "PPO it 12"]

writes ``DIR/index.html`` (every image embedded as a data URI, no external CSS,
JS or fonts: it opens from disk in any browser) and ``DIR/summary.json`` (the
summary figures, correlations and hack counts), and prints the page's path.
A missing or unreadable records file, or one with no readable record, is a
one-line error on stderr and exit status 2; a bad line is skipped, counted and
listed on the page.

Owns: image loading and embedding, and the page assembly (the JSONL helpers
``write_records``, ``read_records`` and ``load_records`` live in
:mod:`reward.records`). The statistics and
the reward-hack detectors are pure functions in :mod:`reward.report_checks`,
the plots in :mod:`reward.report_plots`.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from configs.cli import fail, parse
from configs.tools import ReportConfig
from reward.records import RecordsError, SampleRecord, load_records
from reward.report_checks import TERMS, HackCheck, correlations, find_hacks, is_valid, summarise
from reward.report_plots import escape as _e
from reward.report_plots import fmt_num as _num
from reward.report_plots import plots_section

PROG = "reward.report"
MAX_FLAGS_SHOWN = 50
"""Flagged samples listed per detector on the page (all of them go to summary.json)."""
MAX_SKIPPED_SHOWN = 20
"""Skipped JSONL lines listed on the page."""

_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


class ReportError(RecordsError):
    """A problem with the report's input that the CLI turns into a one-line message and exit status 2
    (records files that cannot be read raise the base class, :class:`reward.records.RecordsError`)."""


# --- images ---------------------------------------------------------------------------------------


class _Images:
    """Loads view images relative to the records' folder, each file once per report (bounded cache)."""

    def __init__(self, base: Path):
        self.base = base
        self._read = lru_cache(maxsize=256)(_read_image)

    def load(self, relative: str | None) -> tuple[str, bytes, np.ndarray] | None:
        """``(mime, bytes, (H, W) uint8 gray)`` of the file; None for no path or no readable image."""
        return None if not relative else self._read(self.base / relative)

    def tag(self, relative: str | None, alt: str) -> str:
        """An ``<img>`` with the file embedded as a data URI, or a "no image" box."""
        loaded = self.load(relative)
        if loaded is None:
            return f'<div class="noimg">no image{f" ({_e(relative)})" if relative else ""}</div>'
        mime, data, _ = loaded
        return f'<img alt="{_e(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'

    def by_id(self, records: Sequence[SampleRecord], attr: str) -> _ViewImages:
        """Record id -> gray pixels of the record's ``attr`` image (``target_views`` or ``pred_views``)."""
        return _ViewImages(self, {r.id: getattr(r, attr) for r in records})


def _read_image(path: Path) -> tuple[str, bytes, np.ndarray] | None:
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            gray = np.asarray(image.convert("L"))
            if image.format not in _MIME:
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                return "image/png", buf.getvalue(), gray
            return _MIME[image.format], data, gray
    except (OSError, Image.DecompressionBombError):  # missing, unreadable, not an image, absurdly large
        return None


class _ViewImages(Mapping):
    """Record id -> ``(H, W) uint8`` gray view row, or None; loaded on demand."""

    def __init__(self, images: _Images, paths: dict[str, str | None]):
        self._images, self._paths = images, paths

    def __getitem__(self, key: str) -> np.ndarray | None:
        loaded = self._images.load(self._paths[key])
        return None if loaded is None else loaded[2]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def missing(self) -> int:
        """How many records have no readable image."""
        return sum(self[key] is None for key in self._paths)


# --- page pieces ----------------------------------------------------------------------------------


def _reward_settings(settings: Mapping | None, source: str | None) -> str:
    """One line: every reward setting the records were scored with, and where they came from."""
    if not settings:
        return "not given with these records"
    text = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items())
    return f"{text} ({source})" if source else text


def _summary_section(
    summary: dict, skipped: list[tuple[int, str]], checks: list[HackCheck], reward_line: str
) -> str:
    rows = [
        ("reward settings", reward_line),
        ("samples", summary["count"]),
        ("valid", f"{summary['valid']} ({_num(summary['valid_pct'], 1)} %)"),
        ("distinct targets", summary["distinct_targets"]),
        ("mean total, all samples (failed at their penalty)", _num(summary["total_mean_all"])),
        ("skipped JSONL lines", len(skipped)),
        ("view images missing: target / prediction", "{target} / {pred}".format(**summary["missing_images"])),
        ("likely-hack flags (see the last section)", sum(len(c.flags) for c in checks)),
    ]
    for name in ("render_seconds", "score_seconds"):
        t = summary[name]
        rows.append((f"{name.replace('_', ' ')}: mean / median", f"{_num(t['mean'])} / {_num(t['median'])}"))
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    stats = [(t, summary["terms"][t]) for t in TERMS]
    stats.append(("chamfer distance (raw)", summary["chamfer_distance"]))
    term_rows = "".join(
        f"<tr><th>{_e(name)}</th>"
        + "".join(f"<td>{_num(s and s[k])}</td>" for k in ("mean", "median", "min", "max"))
        + "</tr>"
        for name, s in stats
    )
    return (
        '<section id="summary"><h2>Summary</h2><div class="row">'
        f'<table class="kv">{facts}</table>'
        "<table><caption>over valid samples</caption><tr><th>term</th><th>mean</th><th>median</th>"
        f"<th>min</th><th>max</th></tr>{term_rows}</table></div>{_skipped_note(skipped)}</section>"
    )


def _skipped_note(skipped: list[tuple[int, str]]) -> str:
    if not skipped:
        return ""
    items = "".join(f"<li>line {n}: {_e(why)}</li>" for n, why in skipped[:MAX_SKIPPED_SHOWN])
    more = (
        f"<li>… and {len(skipped) - MAX_SKIPPED_SHOWN} more</li>" if len(skipped) > MAX_SKIPPED_SHOWN else ""
    )
    return f'<div class="warn"><b>{len(skipped)} bad JSONL line(s) skipped</b><ul>{items}{more}</ul></div>'


def _failures_section(records: Sequence[SampleRecord], summary: dict) -> str:
    n = max(summary["count"], 1)
    counts = summary["status_counts"]
    rows = "".join(
        f'<tr class="{"" if status == "ok" else "bad"}"><th>{_e(status)}</th><td>{c}</td>'
        f"<td>{100 * c / n:.1f} %</td></tr>"
        for status, c in counts.items()
    )
    examples = []
    for status in counts:
        if status == "ok":
            continue
        first = next(r for r in records if r.status == status)
        examples.append(
            f"<details><summary><b>{_e(status)}</b> — {counts[status]} sample(s); example "
            f"<code>{_e(first.id)}</code> (target <code>{_e(first.target_id)}</code>)</summary>"
            f"<h4>program</h4><pre>{_e(first.code) or '(empty)'}</pre>"
            f"<h4>stderr</h4><pre>{_e(first.stderr) or '(none recorded)'}</pre></details>"
        )
    body = "".join(examples) or '<p class="muted">No failures.</p>'
    return (
        '<section id="failures"><h2>Statuses and failures</h2>'
        f"<table><tr><th>status</th><th>count</th><th>share</th></tr>{rows}</table>{body}</section>"
    )


def _sample_card(record: SampleRecord, rank: str, images: _Images) -> str:
    breakdown = [
        ("total", _num(record.total)),
        ("ssim", _num(record.ssim)),
        ("chamfer", _num(record.chamfer)),
        ("iou", _num(record.iou)),
        ("chamfer distance", _num(record.chamfer_distance, 4)),
        ("render s", _num(record.render_seconds)),
        ("score s", _num(record.score_seconds)),
        ("status", record.status),
    ]
    cells = "".join(f"<div><span>{_e(k)}</span><b>{_e(v)}</b></div>" for k, v in breakdown)
    return (
        f'<div class="card"><div class="views">'
        f'<div class="cap">target</div>{images.tag(record.target_views, "target views")}'
        f'<div class="cap">prediction</div>{images.tag(record.pred_views, "prediction views")}</div>'
        f'<div class="detail"><h4>{_e(rank)} · <code>{_e(record.id)}</code> '
        f'<span class="muted">target <code>{_e(record.target_id)}</code></span></h4>'
        f'<div class="breakdown">{cells}</div><pre>{_e(record.code)}</pre></div></div>'
    )


def _samples_section(records: Sequence[SampleRecord], top_k: int, images: _Images) -> str:
    ranked = sorted((r for r in records if is_valid(r)), key=lambda r: (-r.total, r.id))
    top = ranked[:top_k]
    shown = {r.id for r in top}
    bottom = [r for r in reversed(ranked) if r.id not in shown][:top_k]
    parts = [
        '<section id="samples"><h2>Best and worst valid samples</h2>',
        '<p class="muted">Views: iso, front, right, top. Ranked by total.</p>',
    ]
    for heading, chosen, label in (("Top", top, "best"), ("Bottom", bottom, "worst")):
        parts.append(f"<h3>{heading} {len(chosen)}</h3>")
        if not chosen:
            parts.append(
                '<p class="muted">None to show (all valid samples are listed above).</p>'
                if ranked
                else '<p class="muted">No valid samples.</p>'
            )
        parts.extend(_sample_card(r, f"{label} #{i}", images) for i, r in enumerate(chosen, start=1))
    parts.append("</section>")
    return "".join(parts)


def _hacks_section(checks: list[HackCheck]) -> str:
    parts = ['<section id="hacks"><h2>Likely reward hacks</h2>']
    for check in checks:
        n = len(check.flags)
        parts.append(
            f'<h3>{_e(check.title)} <span class="count {"hit" if n else "clean"}">{n}</span></h3>'
            f'<p class="muted">{_e(check.rule)}</p>'
        )
        if not n:
            parts.append('<p class="none">none found</p>')
            continue
        items = "".join(
            f"<li><code>{_e(f.id)}</code> — {_e(f.reason)}</li>" for f in check.flags[:MAX_FLAGS_SHOWN]
        )
        if n > MAX_FLAGS_SHOWN:
            items += f"<li>… and {n - MAX_FLAGS_SHOWN} more (all ids in summary.json)</li>"
        parts.append(f"<ul>{items}</ul>")
    parts.append("</section>")
    return "".join(parts)


_CSS = """
body{margin:0;background:#f3f4f6;color:#1f2933;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
 "DejaVu Sans",sans-serif}
main{max-width:1220px;margin:0 auto;padding:20px 24px}
h1{margin:0 0 4px;font-size:24px} h2{margin:0 0 12px;font-size:19px} h3{margin:18px 0 8px;font-size:16px}
h4{margin:0 0 8px;font-size:14px}
nav{margin:8px 0 4px} nav a{margin-right:14px;color:#2563b0;text-decoration:none}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 20px;margin:16px 0}
table{border-collapse:collapse;margin:4px 0 12px} caption{text-align:left;color:#66717d;padding:0 0 4px}
th,td{padding:3px 10px;border-bottom:1px solid #eceef1;text-align:right;font-variant-numeric:tabular-nums}
th:first-child{text-align:left;font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start}
tr.bad th{color:#b42318}
pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:8px;margin:0 0 8px;
 overflow:auto;max-height:240px;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace}
details{border:1px solid #e1e4e8;border-radius:6px;padding:6px 10px;margin:6px 0}
summary{cursor:pointer} details h4{margin:8px 0 4px;color:#66717d}
.plots{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end} .plots img{border:1px solid #eceef1}
.card{display:grid;grid-template-columns:516px minmax(0,1fr);gap:18px;padding:14px 0;
 border-top:1px solid #eceef1}
.views img,.noimg{display:block;width:512px;max-width:100%;border:1px solid #d5d9de}
.noimg{height:128px;display:flex;align-items:center;justify-content:center;background:#f6f7f8;
 color:#8a939c;border-style:dashed}
.cap{font-size:12px;color:#66717d;margin:2px 0}
.breakdown{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:4px 12px;margin-bottom:8px}
.breakdown span{display:block;font-size:11px;color:#66717d} .breakdown b{font-variant-numeric:tabular-nums}
.muted{color:#66717d} h4 .muted{font-weight:400} .none{color:#1a7f37}
.count{display:inline-block;min-width:22px;padding:0 7px;border-radius:10px;font-size:13px;text-align:center}
.count.hit{background:#fde2e1;color:#b42318} .count.clean{background:#dcf2e3;color:#1a7f37}
.warn{background:#fff7e0;border:1px solid #f0d68a;border-radius:6px;padding:8px 12px}
.warn ul{margin:4px 0 0}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace}
"""


def _page(title: str, records_path: Path, body: str) -> str:
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("summary", "Summary"),
            ("distributions", "Distributions"),
            ("failures", "Failures"),
            ("samples", "Best / worst"),
            ("hacks", "Reward hacks"),
        )
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>'
        f'<body><main><h1>{_e(title)}</h1><div class="muted">records: <code>{_e(records_path)}</code></div>'
        f"<nav>{nav}</nav>{body}</main></body></html>\n"
    )


# --- entry points ---------------------------------------------------------------------------------


def build_report(
    records_path: str | Path,
    out_dir: str | Path,
    top_k: int = 8,
    title: str | None = None,
    reward: Mapping | None = None,
    reward_source: str | None = None,
) -> str:
    """Write ``out_dir/index.html`` and ``out_dir/summary.json`` for the records file; returns the HTML path.

    ``reward`` is the settings the records were scored with (``reward.score.RewardWeights`` as a
    dict) and ``reward_source`` where they came from; the page's summary shows them and
    ``summary.json`` records them (None when the caller does not know them).

    Raises :class:`ReportError` (a :class:`reward.records.RecordsError`) for a missing file, a file with
    no readable record, or a negative ``top_k``.
    """
    if top_k < 0:
        raise ReportError(f"top_k must be >= 0, got {top_k}")
    records_path = Path(records_path)
    loaded = load_records(records_path)
    records = loaded.records
    if not records:
        skipped = len(loaded.skipped)
        raise ReportError(f"no readable records in {records_path} ({skipped} bad line(s) skipped)")
    title = title or f"Reward report: {records_path.name}"
    images = _Images(records_path.resolve().parent)
    pred_images = images.by_id(records, "pred_views")
    target_images = images.by_id(records, "target_views")

    summary = summarise(records)
    summary["missing_images"] = {"target": target_images.missing(), "pred": pred_images.missing()}
    corr = correlations(records)
    checks = find_hacks(records, pred_images, target_images)
    body = "".join(
        [
            _summary_section(summary, loaded.skipped, checks, _reward_settings(reward, reward_source)),
            plots_section(records, corr),
            _failures_section(records, summary),
            _samples_section(records, top_k, images),
            _hacks_section(checks),
        ]
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(_page(title, records_path, body), encoding="utf-8")
    figures = {
        "title": title,
        "records": str(records_path),
        "skipped_lines": len(loaded.skipped),
        "reward": dict(reward) if reward else None,
        "reward_source": reward_source,
        "summary": summary,
        "correlations": corr,
        "hacks": {c.key: len(c.flags) for c in checks},
        "hack_ids": {c.key: [f.id for f in c.flags] for c in checks},
    }
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return str(page)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse(PROG, "Build the reward-inspection HTML report from records.", ReportConfig, argv)
    try:
        page = build_report(config.records, config.out, top_k=config.top_k, title=config.title)
    except RecordsError as e:
        fail(PROG, e)
    except OSError as e:
        fail(PROG, f"{e.strerror or e}: {e.filename or config.out}")
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
