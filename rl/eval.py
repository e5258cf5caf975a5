"""Evaluate a policy checkpoint on a corpus split: records, metrics and the reward report.

Commands::

    python -m rl.eval --checkpoint runs/sft/final --split test              # greedy + best-of-4
    python -m rl.eval --checkpoint runs/sft/final --split test --k 8 --limit 50
    python -m rl.eval --checkpoint runs/sft/final --split test_ood --k 0    # greedy only
    python -m rl.eval --checkpoint runs/ppo/final --split test              # the run's reward settings
    python -m rl.eval --checkpoint runs/sft/final --split test --reward_from runs/ppo   # the same ones
    python -m rl.eval --checkpoint runs/ppo/final --split test --k 0 --refine 200       # greedy, refined
    python -m rl.eval --checkpoint runs/ppo/final --split test --k 0 --refine 200 --against mesh
    python -m rl.eval --checkpoint runs/ppo/final --split test --k 0 --retrieve 1  # + nearest train program
    python -m rl.eval --help

For every image of the split the policy decodes one greedy program and ``k`` sampled ones
(``--syntax_guard``, on by default: never a token after which no program could parse,
:mod:`renderer.syntax`; ``metrics.json`` says which); each is run by OpenSCAD once and scored on a
:class:`renderer.pool.RenderPool`
(:class:`reward.protocol_scorer.EvalScorer`; one pool for the whole run, each target mesh read
once) against the image's target mesh with one set of reward settings
(:func:`configs.reward.resolve`: ``--reward_from``, else those the checkpoint's PPO run trained
with, else the defaults; the command prints which). Best-of-k keeps the sampled program with the
highest reward (an **oracle** pick: it uses the target, as cadrille's best-of-k does). The
**selected** program is what inference without the target keeps (``rl.predict``): among the
greedy and the ``k`` sampled programs, the one whose render agrees best with the input
(:func:`rl.refine.choose`, on the agreement the same render gave; ``--against image``: the input
pictures, ``mesh``: the target mesh given as an input, as ``rl.predict --mesh``); ``--retrieve N``
adds the programs of the N training parts whose views are nearest in pixels to the candidates
(never the part itself; records of mode ``retrieved``, ``extra.retrieved_from``). Where the
policy is shown the part's size, the greedy program **fitted** to it (``--fit``, on by default:
:func:`renderer.fit.fit_program` scales each axis so the first render's bounding box is that
size) is scored too (records of mode ``fitted``), and so is the greedy program **dimensioned**
to it (``--dimension``, on by default: :func:`renderer.dimensions.dimension` solves the program's
own numbers to the size, a few renders on the same pool, and scales it for the rest only where
an axis stays over 1 % off; records of mode ``dimensioned``); both are candidates of the selected
one. ``--refine N``
then tunes the selected program's numeric literals against the same input
(:func:`rl.refine.refine`, at most N renders and ``--refine_seconds`` per image, on the same pool)
and scores the refined program like the others. Writes into ``--out`` (default
``<checkpoint>/eval_<split>``):

- ``records.jsonl``: one :class:`reward.records.SampleRecord` per program (``extra`` holds
  mode greedy/sample/retrieved/fitted/dimensioned/refined, sample index, family, best_of_k,
  selected, agreement, the
  protocol's cd and iou; a refined record also the refinement: agreement before and after,
  renders, seconds, literals changed), with the views of the prediction and of the target as
  PNGs under ``views/``;
- ``metrics.json``: for ``greedy``, ``fitted`` and ``dimensioned`` (a size shown), ``selected``
  (k > 0), ``best_of_k``
  (the oracle) and ``refined`` (``--refine``): the target-frame figures of
  :func:`reward.protocol_scorer.summarise_breakdowns` (invalid ratio, reward, mean and median IoU, SSIM and
  chamfer distance over valid programs) and ``protocol`` (:func:`reward.metrics.summarise`:
  ``ir``, ``cd_median_x1e3``, ``cd_mean_x1e3``, ``iou_mean``), each headline mean with its 95 %
  bootstrap interval over the targets beside it (``iou_mean_ci95``; in ``protocol``
  ``iou_mean_ci95``, ``cd_mean_x1e3_ci95``: :func:`rl.eval_figures.figures_of`; printed too),
  plus per-family figures and timings; ``size_written`` (a size shown): how near the valid
  greedy programs' own bounding boxes are to it (mean :func:`renderer.fit.size_agreement`, fraction
  within 5 % on every axis; per record ``extra.size_agreement``, ``extra.size_within_5pct``);
  ``dimension`` (:func:`rl.eval_figures.dimension_figures`: the share at the size in their own
  numbers, size agreement before and after, renders per program; per record ``extra``); with
  ``--refine``, ``refine``: the selected (before) and refined (after) figures on the same targets,
  paired mean differences per target, seconds and renders per image (paired bootstrap intervals:
  ``bench/refine.py``, which reads these records); and what
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

from configs.cli import Parser, UsageError, fail
from configs.eval import EvalConfig
from configs.loader import ConfigError, add_arguments, from_args
from configs.reward import as_dict, as_written
from configs.reward import resolve as resolve_reward
from renderer.errors import RendererUnavailable
from rl.checkpoint import check_image_size, load_checkpoint, resolve_corpus
from rl.eval_figures import (
    describe,
    dimension_figures,
    figures_of,
    mark_best_of_k,
    per_family,
    refine_summary,
    size_figures,
    size_written,
)
from rl.eval_scoring import PROBE, measure, record_name, score, scored_by_text
from rl.files import write_json
from rl.refine import RefineSettings, choose, refine
from rl.runtime import quiet_libraries, set_threads

PROG = "rl.eval"
PICKS = {
    "greedy": "the greedy program",
    "selected": "among greedy + k sampled (+ retrieve training parts' programs), best agreement with the "
                "input (rl.refine.choose), not the target",
    "best_of_k": "ORACLE: the sampled program with the highest reward against the hidden target",
    "refined": "the selected program (greedy when k = 0) after rl.refine.refine against the input",
    "fitted": "the greedy program scaled per axis to the size the policy is shown (renderer.fit)",
    "dimensioned": "the greedy program with its own numbers solved to the size the policy is shown, scaled "
                   "for the rest where an axis stays over 1 % off (renderer.dimensions)",
}
"""What each figure of ``metrics.json`` is computed on."""
MODES = ("greedy", "sample", "retrieved", "fitted", "dimensioned", "refined")
INPUT = "#input"
"""Suffix of the id of a target registered with the input alone (what refinement scores against)."""


def load_rows(corpus_dir: str, split: str, limit: int | None, columns=("image",)):
    """The split's rows (first ``limit``) as a ``datasets.Dataset``: id, family, code, mesh_path and
    ``columns`` (what the policy is shown, :func:`policies.inputs.input_columns`)."""
    from rl.checkpoint import load_split_rows

    dataset = load_split_rows(corpus_dir, split, ["id", "family", "code", "mesh_path", "image", *columns])
    return dataset.select(range(min(limit, len(dataset)))) if limit else dataset


def _record(row, mode: str, index: int, text: str, scored, config: EvalConfig):
    from reward.records import SampleRecord

    record_id = record_name(row["id"], mode, index)
    views = {}
    if config.views:
        views = {"target_views": f"views/{row['id']}_target.png",
                 "pred_views": f"views/{record_id.replace('/', '_')}.png"}
    protocol = scored.protocol
    extra = {"mode": mode, "sample": index, "family": row["family"], "best_of_k": False, "selected": False,
             "protocol_valid": bool(protocol.get("valid")), "protocol_cd": protocol.get("cd"),
             "protocol_iou": protocol.get("iou"), "protocol_status": protocol.get("status"),
             "infrastructure": bool(getattr(scored.breakdown, "infrastructure", False))}
    if scored.agreement is not None:
        extra["agreement"] = scored.agreement.total
    return SampleRecord.from_breakdown(record_id, row["id"], text, scored.breakdown, **views, extra=extra)


def selects(config: EvalConfig) -> bool:
    """Whether a program is selected among several (k, retrieve) or refined, by agreement with the input."""
    return bool(config.k or config.retrieve or config.refine)


def register_targets(pool, corpus_dir: str, rows: list[dict], config: EvalConfig) -> None:
    """Register each row's target mesh (read once) on ``pool`` (its scorer a
    :class:`reward.protocol_scorer.EvalScorer`) with, when programs are selected (:func:`selects`),
    the input they are selected on (``against``: the part's four views when the evaluation reads
    them, for a tiled policy or ``retrieve``, else its iso view; or the same mesh); with ``refine``,
    the input alone too, as ``id + INPUT``."""
    import numpy as np

    from corpus.dataset import load_mesh
    from policies.inputs import PartInput
    from reward.agreement import picture_of

    for row in rows:
        mesh = load_mesh(corpus_dir, row)
        inputs = None
        if selects(config):
            pictures = np.stack([picture_of(view) for view in PartInput.of(row).views])
            inputs = (pictures, None) if config.against == "image" else (None, mesh)
        pool.add_target(row["id"], mesh, inputs)
        if config.refine:
            pool.add_target(row["id"] + INPUT, None, inputs)


def evaluate_batch(policy, pool, rows: list[dict], config: EvalConfig, out: str,
                   agreements: dict | None = None, index=None) -> list:
    """Decode, render and score one batch of rows; one record per program (greedy first, then
    sampled, then the programs of the ``config.retrieve`` nearest training parts in ``index``, a
    :class:`policies.exemplars.ExemplarIndex`). Each program's :class:`reward.agreement.Agreement`
    (when the pool scores one) goes into ``agreements`` under its record's id."""
    from policies.inputs import PartInput
    from renderer.dimensions import dimension
    from renderer.fit import fit_program
    from renderer.syntax import ScadPrefix

    images = [PartInput.of(row) for row in rows]
    images = [part.without_size() for part in images] if config.no_size else images
    grammar = ScadPrefix if config.syntax_guard else None
    programs = [(i, "greedy", 0, text) for i, text in enumerate(
        policy.sample(images, n=1, max_new_tokens=config.max_new_tokens, greedy=True, grammar=grammar).texts)]
    if config.k:
        sampled = policy.sample(images, n=config.k, max_new_tokens=config.max_new_tokens,
                                temperature=config.temperature, top_p=config.top_p, grammar=grammar).texts
        programs += [(j // config.k, "sample", j % config.k, text) for j, text in enumerate(sampled)]
    retrieved = {}
    if config.retrieve and index is not None:
        for i, part in enumerate(images):
            for r, found in enumerate(index.nearest_rows(part, config.retrieve)):
                programs.append((i, "retrieved", r, index.program(found, part.size)))
                retrieved[(i, r)] = index.ids[found]
    views_dir = os.path.join(out, "views") if config.views else None
    scored = score(pool, rows, programs, views_dir)
    greedy = scored_by_text(rows, programs, scored, views_dir)  # unchanged programs are not rendered again
    sized = [(i, text, result) for (i, mode, _, text), result in zip(programs, scored, strict=True)
             if mode == "greedy" and images[i].size]
    if config.fit:
        fits = [(i, "fitted", 0, fit_program(text, result.extents, images[i].size))
                for i, text, result in sized]
        programs, scored = programs + fits, scored + score(pool, rows, fits, views_dir, greedy)
    solved = {}
    if config.dimension and sized:
        answers = dimension([text for _, text, _ in sized], [result.extents for _, _, result in sized],
                            [images[i].size for i, _, _ in sized], lambda codes: measure(pool, codes))
        solved = {i: answer for (i, _, _), answer in zip(sized, answers, strict=True)}
        dims = [(i, "dimensioned", 0, answer.program) for i, answer in solved.items()]
        programs, scored = programs + dims, scored + score(pool, rows, dims, views_dir, greedy)
    records = []
    for (i, mode, s, text), result in zip(programs, scored, strict=True):
        records.append(_record(rows[i], mode, s, text, result, config))
        if mode == "retrieved":
            records[-1].extra["retrieved_from"] = retrieved[(i, s)]
        if mode == "greedy" and images[i].size and result.extents is not None:
            records[-1].extra.update(size_figures(result.extents, images[i].size))
        if mode == "dimensioned":
            records[-1].extra.update(solved[i].to_extra())
        if agreements is not None and result.agreement is not None:
            agreements[records[-1].id] = result.agreement
    return records


def select_and_refine(pool, dataset, records: list, agreements: dict, config: EvalConfig) -> list:
    """Mark each target's selected program among ``records`` (``extra["selected"]``): the one whose
    render agrees best with the input (:func:`rl.refine.choose` on ``agreements``, from the render
    that scored it); with ``config.refine``, refine it on ``pool`` against the input alone. Returns
    ``(row, selected record, RefineResult)`` of each refined target."""
    from tqdm.auto import tqdm

    from reward.protocol_scorer import Agreements

    settings = RefineSettings(renders=max(config.refine, 1), seconds=config.refine_seconds,
                              optimiser=config.refine_optimiser, seed=config.seed)
    by_target: dict[str, list] = {}
    for record in records:
        by_target.setdefault(record.target_id, []).append(record)  # greedy first, as decoded
    refined = []
    with tqdm(total=len(dataset), desc=f"{PROG} refine", unit="image", dynamic_ncols=True,
              disable=not config.refine) as bar:
        for i in range(len(dataset)):
            row = dataset[i]
            group = by_target[row["id"]]
            scored = [agreements[r.id] for r in group]
            index = choose(scored)
            group[index].extra["selected"] = True
            if config.refine:
                result = refine(group[index].code, Agreements(pool), row["id"] + INPUT, settings,
                                start=scored[index], progress=False)
                refined.append((row, group[index], result))
            bar.update(1)
    return refined


def score_refined(pool, refined: list, config: EvalConfig, out: str) -> list:
    """The records of the refined programs of :func:`select_and_refine`, scored on ``pool`` as
    the decoded ones (``extra``: the refinement's agreement before and after, renders, seconds)."""
    from renderer.pool import ScoreRequest

    requests = []
    for row, _, result in refined:
        paths = {}
        if config.views:
            paths = {"views_path": os.path.join(out, "views", f"{row['id']}_refined.png"),
                     "target_views_path": os.path.join(out, "views", f"{row['id']}_target.png")}
        requests.append(ScoreRequest(result.code, row["id"], **paths))
    records = []
    for (row, before, result), scored in zip(refined, pool.score(requests), strict=True):
        record = _record(row, "refined", 0, result.code, scored, config)
        record.extra.update({
            "refined_from": before.id, "agreement": result.best.total,
            "agreement_before": result.start.total, "refine_renders": result.renders,
            "refine_seconds": result.seconds, "refine_stopped": result.stopped,
            "literals": result.literals, "literals_changed": len(result.changed)})
        records.append(record)
    return records


def run(config: EvalConfig) -> dict:
    """Evaluate; write records, metrics.json and the report; return the metrics dict."""
    import torch
    from tqdm.auto import tqdm

    from policies.inputs import input_columns
    from renderer.pool import RenderPool
    from reward.agreement import AgreementScorer
    from reward.metrics import PROTOCOL
    from reward.protocol_scorer import EvalScorer, ProtocolScorer
    from reward.records import write_records
    from reward.report import build_report
    from reward.score import Scorer

    started = time.perf_counter()
    set_threads(config.threads)
    quiet_libraries()
    torch.manual_seed(config.seed)
    policy = load_checkpoint(config.checkpoint)
    weights, reward_source = as_written(*resolve_reward(config.reward_from, config.checkpoint))
    print(f"{PROG}: reward settings from {reward_source}", flush=True)
    corpus_dir = resolve_corpus(config.checkpoint, config.corpus_dir)
    columns = input_columns(policy.config) + (["views"] if config.retrieve else [])
    dataset = load_rows(corpus_dir, config.split, config.limit, columns)
    index = retrieval_index(corpus_dir) if config.retrieve else None
    check_image_size(dataset, policy.config, corpus_dir)
    out = config.out or os.path.join(config.checkpoint, f"eval_{config.split}")
    os.makedirs(out, exist_ok=True)
    protocol = ProtocolScorer(Scorer(weights, threads=1), protocol=config.protocol)
    scorer = EvalScorer(protocol, AgreementScorer())  # one render per program: figures and agreement
    inference = selects(config)  # a selected program, and maybe its refinement
    records, agreements = [], {}
    with RenderPool(scorer, workers=config.render_workers, ray_address=config.ray_address) as pool:
        pool.add_target(PROBE, None, None)
        with tqdm(total=len(dataset), desc=PROG, unit="image", dynamic_ncols=True) as bar:
            for start in range(0, len(dataset), config.batch_size):
                rows = [dataset[i] for i in range(start, min(start + config.batch_size, len(dataset)))]
                register_targets(pool, corpus_dir, rows, config)
                records += evaluate_batch(policy, pool, rows, config, out, agreements, index)
                bar.update(len(rows))
        if inference:
            refined = select_and_refine(pool, dataset, records, agreements, config)
            records += score_refined(pool, refined, config, out)
    greedy = [r for r in records if r.extra["mode"] == "greedy"]
    fitted = [r for r in records if r.extra["mode"] == "fitted"]
    dimensioned = [r for r in records if r.extra["mode"] == "dimensioned"]
    selected = [r for r in records if r.extra["selected"]]
    selected_figures = bool(selected) and bool(config.k or config.retrieve)
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
        "retrieve": config.retrieve,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "syntax_guard": config.syntax_guard,
        "max_new_tokens": config.max_new_tokens or policy.config.max_new_tokens,
        "reward": as_dict(weights),
        "reward_source": reward_source,
        "protocol_settings": dict(PROTOCOL) if config.protocol else None,
        "against": config.against if inference else None,
        "policy_input": policy_input(policy.config, config),
        "frames": {"protocol": "each mesh centred, largest extent 1" if config.protocol else None,
                   "target_frame": "the target's own frame (mm), as the reward grades"},
        "picks": PICKS,
        "greedy": figures_of(greedy, config.protocol, intervals=True),
        "fitted": figures_of(fitted, config.protocol, intervals=True) if fitted else None,
        "dimensioned": figures_of(dimensioned, config.protocol, intervals=True) if dimensioned else None,
        "size_written": size_written(greedy),
        "dimension": dimension_figures(dimensioned),
        "selected": figures_of(selected, config.protocol, intervals=True) if selected_figures else None,
        "selected_modes": {m: sum(r.extra["mode"] == m for r in selected) for m in MODES} or None,
        "best_of_k": figures_of(best, config.protocol, intervals=True) if best else None,
        "refined": None,
        "refine": None,
        "per_family_greedy": per_family(greedy),
        "timing": {"seconds": seconds, "programs": len(records), "programs_per_s": len(records) / seconds},
    }
    if config.refine:
        metrics["refine"] = {"renders": config.refine, "seconds": config.refine_seconds,
                             "optimiser": config.refine_optimiser,
                             **refine_summary(records, config.protocol, intervals=True)}
        metrics["refined"] = metrics["refine"]["after"]
    write_json(os.path.join(out, "metrics.json"), metrics)
    title = f"rl.eval {config.checkpoint} on {config.split}"
    metrics["report"] = build_report(records_path, out, title=title, reward=metrics["reward"],
                                     reward_source=reward_source)
    metrics["out"] = out
    return metrics


def retrieval_index(corpus_dir: str, prog: str = PROG):
    """:class:`policies.exemplars.ExemplarIndex` of the corpus's train split (``--retrieve``)."""
    from corpus.dataset import load
    from policies.exemplars import ExemplarIndex

    started = time.perf_counter()
    try:
        train = load(corpus_dir, "train").select_columns(["id", "views", "code", "extents"])
    except FileNotFoundError as error:
        raise UsageError(f"--retrieve looks in the train split: {error}") from None
    if len(train) == 0:
        raise UsageError(f"--retrieve looks in the train split, and {corpus_dir!r} has none")
    index = ExemplarIndex.build(train)
    print(f"{prog}: --retrieve looks among {len(train)} train parts ({time.perf_counter() - started:.0f} s "
          "to index)", flush=True)
    return index


def policy_input(policy, config: EvalConfig) -> dict:
    """What the policy was shown: its views, image size, whether the part's size was in the prompt, and
    whether a similar training part's program was (``policies.exemplars``)."""
    return {"views": policy.views, "image_size": policy.image_size,
            "size_in_prompt": policy.size_in_prompt and not config.no_size, "exemplars": policy.exemplars}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description="Evaluate a policy checkpoint on a corpus split.")
    add_arguments(parser, EvalConfig)
    args = parser.parse_args(argv)
    try:
        metrics = run(from_args(EvalConfig, args))
    except (ConfigError, UsageError, RendererUnavailable) as error:
        fail(PROG, error)
    print(describe(metrics, PROG))
    return 0


if __name__ == "__main__":
    sys.exit(main())
