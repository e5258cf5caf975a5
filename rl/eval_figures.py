"""The figures of ``rl.eval``'s ``metrics.json``, computed from its records (one per program).

- :func:`figures_of`: the target-frame figures and the cadrille protocol of one program per
  target (a mode: greedy, selected, best-of-k, refined), with (``intervals``) the 95 % bootstrap
  interval of each headline mean (:func:`reward.intervals.mean_interval` over the targets):
  ``iou_mean_ci95`` beside ``iou_mean``, and in ``protocol`` ``iou_mean_ci95`` and
  ``cd_mean_x1e3_ci95`` beside ``iou_mean`` and ``cd_mean_x1e3``; an interval of fewer than two
  values is None. ``rl.compare`` builds its table with the same function.
- :func:`mark_best_of_k`, :func:`per_family`, and :func:`refine_summary` (the selected programs
  before and after refinement, paired per target);
- :func:`size_figures` and :func:`size_written` (how near the greedy programs wrote the size they
  were shown), :func:`dimension_figures` (what dimensioning did to them);
- :func:`describe`: the summary ``rl.eval`` prints.
"""

from __future__ import annotations

import math

import numpy as np

from configs.cli import fmt
from renderer.fit import fit_factors, size_agreement
from reward.intervals import mean_interval
from reward.metrics import summarise
from reward.protocol_scorer import summarise_breakdowns


def _protocol_iou(record) -> float:
    return (record.extra["protocol_iou"] or 0.0) if record.extra["protocol_valid"] else 0.0


def _protocol_cd(record) -> float | None:
    return record.extra["protocol_cd"] * 1e3 if record.extra["protocol_valid"] else None


PAIRED_REFINE = {  # label: the value of a record, None where it has none (both sides must have one)
    "agreement": lambda r: r.extra.get("agreement"),
    "protocol IoU (invalid = 0)": _protocol_iou,
    "protocol CD x1e3": _protocol_cd,
    "SSIM": lambda r: r.ssim if r.valid > 0 else None,
    "IoU, target frame": lambda r: r.iou if r.valid > 0 else None,
}
"""The figures :func:`refine_summary` pairs per target (``bench/refine.py`` adds their intervals)."""


def refine_pairs(records: list) -> tuple[list, list]:
    """``(before, after)``: the selected and the refined record of each refined target, in target
    order (a target the render pool failed on either side is left out)."""
    def usable(record) -> bool:
        return not record.extra.get("infrastructure")

    after = {r.target_id: r for r in records if r.extra["mode"] == "refined" and usable(r)}
    before = {r.target_id: r for r in records if r.extra["selected"] and r.target_id in after and usable(r)}
    targets = sorted(before)
    return [before[t] for t in targets], [after[t] for t in targets]


def refine_summary(records: list, protocol: bool = True, intervals: bool = False) -> dict:
    """Before (the selected programs) and after (their refined programs), on the same targets:
    figures, paired mean differences per target, and the refinement's seconds and renders."""
    before, after = refine_pairs(records)
    if not before:
        return {"n": 0, "before": None, "after": None, "paired": {}}
    paired = {}
    for label, value in PAIRED_REFINE.items():
        if label.startswith("protocol") and not protocol:
            continue
        pairs = [(value(b), value(a)) for b, a in zip(before, after, strict=True)]
        pairs = np.array([p for p in pairs if None not in p], dtype=float).reshape(-1, 2)
        if len(pairs):
            paired[label] = {"n": len(pairs), "before": float(pairs[:, 0].mean()),
                             "after": float(pairs[:, 1].mean()),
                             "difference": float(np.mean(pairs[:, 1] - pairs[:, 0]))}
    seconds = np.array([r.extra["refine_seconds"] for r in after])
    renders = np.array([r.extra["refine_renders"] for r in after])
    stopped: dict[str, int] = {}
    for record in after:
        stopped[record.extra["refine_stopped"]] = stopped.get(record.extra["refine_stopped"], 0) + 1
    return {
        "n": len(before),
        "before": figures_of(before, protocol, intervals),
        "after": figures_of(after, protocol, intervals),
        "paired": paired,
        "seconds_per_image": {"mean": float(seconds.mean()), "max": float(seconds.max())},
        "renders_per_image": {"mean": float(renders.mean()), "max": int(renders.max())},
        "stopped": dict(sorted(stopped.items())),
        "changed_programs": sum(a.code != b.code for b, a in zip(before, after, strict=True)),
    }


def mark_best_of_k(records: list) -> list:
    """Flag, per target, the sampled record with the highest reward (``extra["best_of_k"]``); return them."""
    best: dict = {}
    for record in records:
        if record.extra["mode"] == "sample":
            current = best.get(record.target_id)
            if current is None or record.total > current.total:
                best[record.target_id] = record
    for record in best.values():
        record.extra["best_of_k"] = True
    return list(best.values())


def figures_of(records: list, protocol: bool = True, intervals: bool = False) -> dict:
    """Target-frame figures and (``protocol``) the cadrille protocol, for one program per target;
    with ``intervals``, the 95 % bootstrap interval of each headline mean beside it.

    A program the render pool failed on (``extra["infrastructure"]``: a worker died or scoring
    raised) is no verdict on the policy: it is left out and counted as ``infra_failed``.
    """
    failed = sum(bool(r.extra.get("infrastructure")) for r in records)
    records = [r for r in records if not r.extra.get("infrastructure")]
    figures = summarise_breakdowns(records)
    figures.pop("valid_frac")
    figures["infra_failed"] = failed
    rows = [{"valid": r.extra["protocol_valid"], "cd": r.extra["protocol_cd"], "iou": r.extra["protocol_iou"]}
            for r in records]
    figures["protocol"] = summarise(rows) if protocol else None
    if intervals:
        figures["iou_mean_ci95"] = ci95([r.iou for r in records if r.valid > 0])  # as summarise_breakdowns
        if protocol:  # over the values reward.metrics.summarise averages
            figures["protocol"]["iou_mean_ci95"] = ci95(_valid_values(rows, "iou"))
            figures["protocol"]["cd_mean_x1e3_ci95"] = ci95([v * 1e3 for v in _valid_values(rows, "cd")])
    return figures


def ci95(values: list[float]) -> list[float] | None:
    """``[low, high]``: the 95 % bootstrap interval of the mean of ``values`` (one per target);
    None for fewer than two values."""
    if len(values) < 2:
        return None
    _, low, high = mean_interval(np.asarray(values, dtype=np.float64))
    return [low, high]


def _valid_values(rows: list[dict], key: str) -> list[float]:
    """The finite ``key`` values of the valid protocol rows."""
    values = (row[key] for row in rows if row["valid"])
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def per_family(records: list) -> dict:
    """``{family: {n, invalid_ratio, iou_mean}}`` of the greedy programs."""
    families: dict[str, list] = {}
    for record in records:
        families.setdefault(record.extra["family"], []).append(record)
    out = {}
    for family, group in sorted(families.items()):
        figures = summarise_breakdowns(group)
        out[family] = {k: figures[k] for k in ("n", "invalid_ratio", "iou_mean", "reward_mean")}
    return out


def size_figures(extents, size) -> dict:
    """What a greedy program wrote against the size it was shown: ``size_agreement``
    (:func:`renderer.fit.size_agreement`) and ``size_within_5pct`` (every axis of its bounding box
    within 5 % of the size)."""
    factors = fit_factors(extents, size)
    close = factors is not None and bool(np.all(np.abs(1.0 / factors - 1.0) <= 0.05))
    return {"size_agreement": size_agreement(extents, size), "size_within_5pct": close}


def size_written(greedy: list) -> dict | None:
    """How near the valid greedy programs' own bounding boxes are to the size they were shown: their
    count, mean ``size_agreement`` and the fraction within 5 % on every axis; None when none was
    shown a size."""
    rows = [r.extra for r in greedy if "size_agreement" in r.extra]
    if not rows:
        return None
    return {"n": len(rows), "agreement_mean": float(np.mean([r["size_agreement"] for r in rows])),
            "within_5pct": float(np.mean([r["size_within_5pct"] for r in rows]))}


def dimension_figures(dimensioned: list) -> dict | None:
    """What dimensioning did to the greedy programs (records of mode ``dimensioned``): their count,
    the fraction at the size in their own numbers (``clean``: no scale added), the mean size
    agreement before and after the solve and renders per program; None when there are none."""
    rows = [r.extra for r in dimensioned if "dimension_clean" in r.extra]
    if not rows:
        return None
    return {"n": len(rows), "clean": float(np.mean([r["dimension_clean"] for r in rows])),
            "agreement_before": float(np.mean([r["size_agreement_before"] for r in rows])),
            "agreement_after": float(np.mean([r["size_agreement"] for r in rows])),
            "renders_mean": float(np.mean([r["dimension_renders"] for r in rows]))}


def _ci(interval: list | None) -> str:
    """`` [low, high]`` of a 95 % interval of :mod:`rl.eval_figures`, or nothing when there is none."""
    return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""


def describe(metrics: dict, prog: str = "rl.eval") -> str:
    """The printed summary: per mode the figures, each headline mean with its 95 % interval."""
    lines = []
    labels = {"greedy": "greedy", "fitted": "fitted to size", "dimensioned": "dimensioned",
              "selected": "selected", "best_of_k": "best_of_k (oracle)", "refined": "refined"}
    for mode, label in labels.items():
        m = metrics.get(mode)
        if m:
            p = m["protocol"] or {}
            lines.append(
                f"{prog}: {label:18s} IR {fmt(m['invalid_ratio'])}  IoU mean {fmt(m['iou_mean'])}"
                f"{_ci(m.get('iou_mean_ci95'))} median {fmt(m['iou_median'])}  SSIM {fmt(m['ssim_mean'])}  "
                f"reward {fmt(m['reward_mean'])}  | protocol IR {fmt(p.get('ir'))} CD x1e3 median "
                f"{fmt(p.get('cd_median_x1e3'))} mean {fmt(p.get('cd_mean_x1e3'))}"
                f"{_ci(p.get('cd_mean_x1e3_ci95'))} IoU {fmt(p.get('iou_mean'))}{_ci(p.get('iou_mean_ci95'))}"
            )
    if metrics.get("size_written"):
        w = metrics["size_written"]
        lines.append(f"{prog}: size written: {w['within_5pct']:.0%} of {w['n']} valid greedy programs within "
                     f"5 % of the size shown on every axis, agreement {w['agreement_mean']:.3f}")
    if metrics.get("dimension"):
        d = metrics["dimension"]
        lines.append(f"{prog}: dimensioned: {d['clean']:.0%} of {d['n']} greedy programs at the size in "
                     f"their own numbers (no scale), size agreement {d['agreement_before']:.3f} -> "
                     f"{d['agreement_after']:.3f}, "
                     f"{d['renders_mean']:.1f} renders each")
    if metrics.get("refine"):
        r = metrics["refine"]
        paired = "  ".join(f"{label} {p['before']:.3f} -> {p['after']:.3f} ({p['difference']:+.3f})"
                           for label, p in r["paired"].items())
        lines.append(f"{prog}: refine (--against {metrics['against']}), {r['n']} paired targets: {paired}")
        if r["n"]:
            lines.append(f"{prog}: refine {r['seconds_per_image']['mean']:.1f} s and "
                         f"{r['renders_per_image']['mean']:.0f} renders per image; "
                         f"{r['changed_programs']} programs changed")
    guard = "under the syntax guard" if metrics.get("syntax_guard") else "without the syntax guard"
    lines.append(f"{prog}: {metrics['n_images']} images in {metrics['timing']['seconds']:.0f} s, decoded "
                 f"{guard}; metrics and report in {metrics['out']}")
    return "\n".join(lines)
