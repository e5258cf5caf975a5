"""Evaluate a policy checkpoint on a corpus split: records, metrics and the reward report.

Commands::

    python -m rl.eval --checkpoint runs/sft/final --split test              # greedy + best-of-4
    python -m rl.eval --checkpoint runs/sft/final --split test --k 8 --limit 50
    python -m rl.eval --checkpoint runs/sft/final --split test_ood --k 0    # greedy only
    python -m rl.eval --checkpoint runs/ppo/final --split test              # the run's reward settings
    python -m rl.eval --checkpoint runs/sft/final --split test --reward_from runs/ppo   # the same ones
    python -m rl.eval --help

For every image of the split the policy decodes one greedy program and ``k`` sampled ones;
each is run by OpenSCAD and scored on a :class:`renderer.pool.RenderPool` against the
image's target mesh with one set of reward settings (:func:`configs.reward.resolve`:
``--reward_from``, else those the checkpoint's PPO run trained with, else the defaults; the
command prints which). Best-of-k keeps the sampled program with the highest reward (an oracle
pick: it uses the target, as cadrille's best-of-k does). Writes into ``--out`` (default
``<checkpoint>/eval_<split>``):

- ``records.jsonl``: one :class:`reward.records.SampleRecord` per program (``extra`` holds
  mode greedy/sample, sample index, family, best_of_k, the protocol's cd and iou), with the
  views of the prediction and of the target as PNGs under ``views/``;
- ``metrics.json``: for ``greedy`` and ``best_of_k``: the target-frame figures of
  :func:`reward.protocol_scorer.summarise_breakdowns` (invalid ratio, reward, mean and median IoU, SSIM and
  chamfer distance over valid programs) and ``protocol`` (:func:`reward.metrics.summarise`:
  ``ir``, ``cd_median_x1e3``, ``iou_mean``), plus per-family figures and timings; and what
  :mod:`rl.compare` checks before pairing two evaluations: the corpus (absolute path), split,
  ``limit`` and ``n_images``, decoding (``k``, ``temperature``, ``top_p``, ``max_new_tokens``), the reward
  settings (``reward``, with ``reward_source``) and ``protocol_settings``;
- ``index.html`` and ``summary.json``: the reward report (:func:`reward.report.build_report`).

Bad input (missing checkpoint or corpus, unknown split, bad option) is one line on stderr, exit 2.
"""

from __future__ import annotations

import os
import sys
import time

from configs.cli import Parser, UsageError, fail, fmt
from configs.eval import EvalConfig
from configs.loader import ConfigError, add_arguments, from_args
from configs.reward import as_dict
from configs.reward import resolve as resolve_reward
from renderer.errors import RendererUnavailable
from rl.checkpoint import check_image_size, load_checkpoint, resolve_corpus
from rl.files import write_json
from rl.runtime import quiet_libraries, set_threads

PROG = "rl.eval"


def load_rows(corpus_dir: str, split: str, limit: int | None):
    """The split's rows (first ``limit``) as a ``datasets.Dataset``."""
    from corpus.dataset import load

    try:
        dataset = load(corpus_dir, split).select_columns(["id", "family", "image", "code", "mesh_path"])
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if len(dataset) == 0:
        raise UsageError(f"split {split!r} of {corpus_dir!r} has no rows")
    return dataset.select(range(min(limit, len(dataset)))) if limit else dataset


def _record(row, mode: str, index: int, text: str, scored, config: EvalConfig):
    from reward.records import SampleRecord

    record_id = f"{row['id']}/{mode}" + (f"{index}" if mode == "sample" else "")
    views = {}
    if config.views:
        views = {"target_views": f"views/{row['id']}_target.png",
                 "pred_views": f"views/{record_id.replace('/', '_')}.png"}
    protocol = scored.protocol
    extra = {"mode": mode, "sample": index, "family": row["family"], "best_of_k": False,
             "protocol_valid": bool(protocol.get("valid")), "protocol_cd": protocol.get("cd"),
             "protocol_iou": protocol.get("iou"), "protocol_status": protocol.get("status"),
             "infrastructure": bool(getattr(scored.breakdown, "infrastructure", False))}
    return SampleRecord.from_breakdown(record_id, row["id"], text, scored.breakdown, **views, extra=extra)


def evaluate_batch(policy, pool, rows: list[dict], config: EvalConfig, out: str) -> list:
    """Decode, render and score one batch of rows; one record per program (greedy first)."""
    from renderer.pool import ScoreRequest

    images = [row["image"] for row in rows]
    programs = [(i, "greedy", 0, text) for i, text in enumerate(
        policy.sample(images, n=1, max_new_tokens=config.max_new_tokens, greedy=True).texts)]
    if config.k:
        sampled = policy.sample(images, n=config.k, max_new_tokens=config.max_new_tokens,
                                temperature=config.temperature, top_p=config.top_p).texts
        programs += [(j // config.k, "sample", j % config.k, text) for j, text in enumerate(sampled)]
    requests = []
    for i, mode, s, text in programs:
        paths = {}
        if config.views:
            record_id = f"{rows[i]['id']}_{mode}" + (f"{s}" if mode == "sample" else "")
            paths = {"views_path": os.path.join(out, "views", f"{record_id}.png"),
                     "target_views_path": os.path.join(out, "views", f"{rows[i]['id']}_target.png")}
        requests.append(ScoreRequest(text, rows[i]["id"], **paths))
    scored = pool.score(requests)
    return [_record(rows[i], mode, s, text, result, config)
            for (i, mode, s, text), result in zip(programs, scored, strict=True)]


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


def figures_of(records: list, protocol: bool = True) -> dict:
    """Target-frame figures and (``protocol``) the cadrille protocol, for one program per target.

    A program the render pool failed on (``extra["infrastructure"]``: a worker died or scoring
    raised) is no verdict on the policy: it is left out and counted as ``infra_failed``.
    """
    from reward.metrics import summarise
    from reward.protocol_scorer import summarise_breakdowns

    failed = sum(bool(r.extra.get("infrastructure")) for r in records)
    records = [r for r in records if not r.extra.get("infrastructure")]
    figures = summarise_breakdowns(records)
    figures.pop("valid_frac")
    figures["infra_failed"] = failed
    rows = [{"valid": r.extra["protocol_valid"], "cd": r.extra["protocol_cd"], "iou": r.extra["protocol_iou"]}
            for r in records]
    figures["protocol"] = summarise(rows) if protocol else None
    return figures


def per_family(records: list) -> dict:
    """``{family: {n, invalid_ratio, iou_mean}}`` of the greedy programs."""
    from reward.protocol_scorer import summarise_breakdowns

    families: dict[str, list] = {}
    for record in records:
        families.setdefault(record.extra["family"], []).append(record)
    out = {}
    for family, group in sorted(families.items()):
        figures = summarise_breakdowns(group)
        out[family] = {k: figures[k] for k in ("n", "invalid_ratio", "iou_mean", "reward_mean")}
    return out


def run(config: EvalConfig) -> dict:
    """Evaluate; write records, metrics.json and the report; return the metrics dict."""
    import torch
    from tqdm.auto import tqdm

    from corpus.dataset import load_mesh
    from renderer.pool import RenderPool
    from reward.metrics import PROTOCOL
    from reward.protocol_scorer import ProtocolScorer
    from reward.records import write_records
    from reward.report import build_report
    from reward.score import Scorer

    started = time.perf_counter()
    set_threads(config.threads)
    quiet_libraries()
    torch.manual_seed(config.seed)
    policy = load_checkpoint(config.checkpoint)
    weights, reward_source = resolve_reward(config.reward_from, config.checkpoint)
    print(f"{PROG}: reward settings from {reward_source}", flush=True)
    corpus_dir = resolve_corpus(config.checkpoint, config.corpus_dir)
    dataset = load_rows(corpus_dir, config.split, config.limit)
    check_image_size(dataset, policy.config, corpus_dir)
    out = config.out or os.path.join(config.checkpoint, f"eval_{config.split}")
    os.makedirs(out, exist_ok=True)
    scorer = ProtocolScorer(Scorer(weights, threads=1), protocol=config.protocol)
    pool = RenderPool(scorer, workers=config.render_workers)
    records = []
    try:
        with tqdm(total=len(dataset), desc=PROG, unit="image", dynamic_ncols=True) as bar:
            for start in range(0, len(dataset), config.batch_size):
                rows = [dataset[i] for i in range(start, min(start + config.batch_size, len(dataset)))]
                for row in rows:
                    pool.add_target(row["id"], *load_mesh(corpus_dir, row))
                records += evaluate_batch(policy, pool, rows, config, out)
                bar.update(len(rows))
    finally:
        pool.close()
    greedy = [r for r in records if r.extra["mode"] == "greedy"]
    best = mark_best_of_k(records)
    records_path = write_records(os.path.join(out, "records.jsonl"), records)
    seconds = time.perf_counter() - started
    metrics = {
        "checkpoint": config.checkpoint,
        "corpus_dir": os.path.abspath(corpus_dir),
        "split": config.split,
        "limit": config.limit,
        "n_images": len(dataset),
        "k": config.k,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_new_tokens": config.max_new_tokens or policy.config.max_new_tokens,
        "reward": as_dict(weights),
        "reward_source": reward_source,
        "protocol_settings": dict(PROTOCOL) if config.protocol else None,
        "greedy": figures_of(greedy, config.protocol),
        "best_of_k": figures_of(best, config.protocol) if best else None,
        "per_family_greedy": per_family(greedy),
        "timing": {"seconds": seconds, "programs": len(records), "programs_per_s": len(records) / seconds},
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    title = f"rl.eval {config.checkpoint} on {config.split}"
    metrics["report"] = build_report(records_path, out, title=title, reward=metrics["reward"],
                                     reward_source=reward_source)
    metrics["out"] = out
    return metrics


def _describe(metrics: dict) -> str:
    lines = []
    for mode in ("greedy", "best_of_k"):
        m = metrics.get(mode)
        if m:
            p = m["protocol"] or {"ir": None, "cd_median_x1e3": None, "iou_mean": None}
            lines.append(
                f"{PROG}: {mode:9s} IR {fmt(m['invalid_ratio'])}  IoU mean {fmt(m['iou_mean'])} "
                f"median {fmt(m['iou_median'])}  SSIM {fmt(m['ssim_mean'])}  reward {fmt(m['reward_mean'])}  "
                f"| protocol IR {fmt(p['ir'])} CD x1e3 median {fmt(p['cd_median_x1e3'])} "
                f"IoU {fmt(p['iou_mean'])}"
            )
    lines.append(f"{PROG}: {metrics['n_images']} images in {metrics['timing']['seconds']:.0f} s; "
                 f"metrics and report in {metrics['out']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description="Evaluate a policy checkpoint on a corpus split.")
    add_arguments(parser, EvalConfig)
    args = parser.parse_args(argv)
    try:
        metrics = run(from_args(EvalConfig, args))
    except (ConfigError, UsageError, RendererUnavailable) as error:
        fail(PROG, error)
    print(_describe(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
