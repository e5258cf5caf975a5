"""The main job: corpus -> SFT -> PPO -> evaluation of both -> comparison, curves and reports.

Commands::

    python -m rl.demo                       # everything into runs/demo (about 45 min on 2 CPU cores)
    python -m rl.demo --fresh               # delete runs/demo first and start over
    python -m rl.demo --sft_steps 900 --ppo_iterations 20 --out runs/quick   # about 15 min, weaker
    python -m rl.demo --help

Each stage is the project's own command, run as a child process and printed before it runs, so
any stage can be repeated by hand: ``corpus.build``, ``rl.sft``, ``rl.ppo``, then ``rl.eval``
of the SFT and the PPO policy on every split of ``eval_splits`` (both scored with the reward
settings the PPO run trained with, ``--reward_from`` its folder). A stage whose result is
already there (and newer than what it was made from) is reused; a stopped one resumes from
its own checkpoints; a stage whose input changed starts over. Afterwards (in this process):
``rl.compare`` per split, ``rl.curves`` of the PPO run and ``index.html``, a page that links
everything. Writes into ``--out``::

    corpus/  sft/  ppo/  eval/{sft,ppo}_{split}/  comparison_{split}/  reward_curves.png
    demo_summary.json (stage timings, comparisons)  index.html
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from configs.cli import Parser, UsageError, fail, fmt
from configs.demo import DemoConfig
from configs.loader import ConfigError, add_arguments, from_args
from configs.reward import RUN_CONFIG, as_dict, as_written, from_dict
from rl.files import write_json
from rl.runtime import bf16_native

PROG = "rl.demo"
SUMMARY = "demo_summary.json"
MARKER = ".scadloop-demo"


@dataclass
class Stage:
    """One child command; ``done`` is its result file, ``upstream`` the result it is made from."""

    name: str
    args: list[str]
    done: str
    upstream: str | None = None
    started: str | None = None
    """A file the stage writes when it starts (its run folder is stale if older than upstream)."""
    folder: str | None = None
    check: Callable[[dict], bool] = lambda done: True
    """Whether the result file's contents match what this run asks for (e.g. enough steps)."""

    def finished(self) -> bool:
        return (
            os.path.exists(self.done)
            and (self.upstream is None or _newer(self.done, self.upstream))
            and self.check(_json(self.done))
        )

    def stale(self) -> bool:
        """A run folder begun from an older upstream (to delete before running)."""
        return bool(
            self.started
            and os.path.exists(self.started)
            and self.upstream
            and not _newer(self.started, self.upstream)
        )


def _newer(path: str, than: str) -> bool:
    return os.path.exists(than) and os.path.getmtime(path) >= os.path.getmtime(than)


def _json(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _same_corpus(settings: dict, config: DemoConfig) -> bool:
    """Whether a finished build's ``settings`` are the corpus ``config`` asks for (size and split)."""
    shares = [round(f, 6) for f in settings.get("fractions", ())]
    return settings["n"] == config.corpus_n and shares == [round(f, 6) for f in config.split_fractions]


def command(module: str, **options) -> list[str]:
    """``[module, --key, value, ...]`` for the options that are not None (``_`` in a key stays)."""
    args = [module]
    for key, value in options.items():
        if value is not None:
            args += [f"--{key}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return args


def stages(config: DemoConfig) -> list[Stage]:
    """The child commands of the main job, in order."""
    out, seed, workers = config.out, config.seed, config.workers
    corpus, sft, ppo = (os.path.join(out, name) for name in ("corpus", "sft", "ppo"))
    corpus_done = os.path.join(corpus, "build.json")
    sft_done, ppo_done = os.path.join(sft, "sft_summary.json"), os.path.join(ppo, "ppo_summary.json")
    build = command("corpus.build", n=config.corpus_n, out=corpus, seed=seed, workers=workers,
                    families=config.families or None, holdout_families=config.holdout_families,
                    fractions=config.split_fractions)
    train = command("rl.sft", config=config.sft_config, runs_dir=out, name="sft", corpus_dir=corpus,
                    build_corpus="no", max_steps=config.sft_steps, eval_steps=config.sft_steps, seed=seed,
                    threads=config.sft_threads or os.cpu_count() or 1,
                    bf16=bf16_native() if config.sft_bf16 is None else config.sft_bf16)
    refine = command("rl.ppo", config=config.ppo_config, runs_dir=out, name="ppo",
                     checkpoint=os.path.join(sft, "final"), corpus_dir=corpus,
                     iterations=config.ppo_iterations, seed=seed, workers=workers)
    plan = [
        Stage("corpus", build, corpus_done, check=lambda done: _same_corpus(done["settings"], config)),
        Stage("sft", train, sft_done, corpus_done, os.path.join(sft, "sft_config.json"), sft,
              check=lambda done: done["global_step"] >= config.sft_steps),
        Stage("ppo", refine, ppo_done, sft_done, os.path.join(ppo, "ppo_config.json"), ppo,
              check=lambda done: done["iteration"] >= config.ppo_iterations),
    ]

    def same_evaluation(metrics: dict) -> bool:
        trained_with = os.path.join(ppo, RUN_CONFIG)  # both policies are scored as PPO was trained
        reward = _json(trained_with).get("reward") if os.path.exists(trained_with) else None
        reward = as_dict(as_written(from_dict(reward, trained_with), "")[0]) if reward else None
        refined = (metrics.get("refine") or {}).get("renders", 0)
        return (metrics["k"] == config.eval_k and metrics["n_images"] <= (config.eval_limit or float("inf"))
                and metrics.get("reward") == reward and refined == config.eval_refine
                and metrics.get("retrieve", 0) == config.eval_retrieve and "dimensioned" in metrics)

    for split in config.eval_splits:
        for policy, upstream in (("sft", sft_done), ("ppo", ppo_done)):
            folder = eval_folder(config, policy, split)
            evaluate = command("rl.eval", checkpoint=os.path.join(out, policy, "final"), corpus_dir=corpus,
                               split=split, k=config.eval_k, out=folder, seed=seed, limit=config.eval_limit,
                               render_workers=workers, reward_from=ppo, refine=config.eval_refine or None,
                               retrieve=config.eval_retrieve or None)
            done = os.path.join(folder, "metrics.json")
            plan.append(Stage(f"eval {policy} {split}", evaluate, done, upstream, check=same_evaluation))
    return plan


def eval_folder(config: DemoConfig, policy: str, split: str) -> str:
    return os.path.join(config.out, "eval", f"{policy}_{split}")


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def prepare_out(config: DemoConfig) -> None:
    """Create ``out`` (with ``fresh``, delete it first: only a folder this command made)."""
    marker = os.path.join(config.out, MARKER)
    if os.path.isdir(config.out) and os.listdir(config.out) and not os.path.exists(marker):
        raise UsageError(f"--out {config.out!r} holds files rl.demo did not write; use another --out")
    if config.fresh and os.path.isdir(config.out):
        print(f"{PROG}: --fresh: deleting {config.out}", flush=True)
        shutil.rmtree(config.out)
    os.makedirs(config.out, exist_ok=True)
    open(marker, "a").close()


def run_stage(stage: Stage, index: int, total: int, started: float) -> dict:
    """Run one stage (or reuse its result); ``{"seconds", "reused"}``."""
    header = f"[{PROG} {index}/{total}] {stage.name} (elapsed {_clock(time.perf_counter() - started)})"
    if stage.finished():
        print(f"{header}: reused {stage.done}", flush=True)
        return {"seconds": 0.0, "reused": True}
    if stage.stale():
        print(
            f"{header}: {stage.folder} was begun from an older {stage.upstream}; starting it over", flush=True
        )
        shutil.rmtree(stage.folder)
    command = [sys.executable, "-m", *stage.args]
    print(f"{header}: python -m {' '.join(stage.args)}", flush=True)
    begun = time.perf_counter()
    code = subprocess.call(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if code != 0:
        raise StageFailed(
            f"stage {stage.name!r} failed (exit {code}); finished stages are kept: "
            "fix the cause and run the same command again"
        )
    return {"seconds": time.perf_counter() - begun, "reused": False}


class StageFailed(Exception):
    """A child command exited non-zero."""


def finish(config: DemoConfig, timings: dict, started: float) -> dict:
    """Comparisons, curves, the index page and ``demo_summary.json``; returns the summary."""
    from rl import compare, curves, demo_page

    comparisons = {}
    for split in config.eval_splits:
        comparison = compare.compare(
            eval_folder(config, "sft", split), eval_folder(config, "ppo", split), ("SFT", "PPO")
        )
        compare.write(comparison, os.path.join(config.out, f"comparison_{split}"))
        comparisons[split] = comparison
    sized = {"fitted": {}, "dimensioned": {}}  # the same, of the greedy programs brought to the size shown
    for split in config.eval_splits:
        folders = [eval_folder(config, policy, split) for policy in ("sft", "ppo")]
        metrics = [_json(os.path.join(folder, "metrics.json")) for folder in folders]
        for pick, by_split in sized.items():
            if all(m.get(pick) for m in metrics):
                by_split[split] = compare.compare(*folders, (f"SFT {pick}", f"PPO {pick}"), (pick, pick))
                compare.write(by_split[split], os.path.join(config.out, f"comparison_{split}_{pick}"))
    ppo_dir = os.path.join(config.out, "ppo")
    lines = curves.read_metrics(ppo_dir)
    curves_png = curves.plot(
        lines,
        os.path.join(config.out, "reward_curves.png"),
        title=f"PPO reward curves ({ppo_dir})",
    )
    summary = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()},
        "stages": timings,
        "wall_seconds_this_run": time.perf_counter() - started,
        "sft": _json(os.path.join(config.out, "sft", "sft_summary.json")),
        "ppo": _json(os.path.join(ppo_dir, "ppo_summary.json")),
        "comparisons": comparisons,
        "fitted_comparisons": sized["fitted"],
        "dimensioned_comparisons": sized["dimensioned"],
        "curves": curves_png,
        "ppo_throughput": curves.throughput(lines),
    }
    summary["refined"] = refined_figures(config) if config.eval_refine else None
    summary["kept"] = kept_figures(config) if config.eval_retrieve or config.eval_k else None
    first_split = config.eval_splits[0]
    summary["example"] = demo_page.example_figure(
        eval_folder(config, "ppo", first_split), os.path.join(config.out, "example.png")
    )
    summary["index"] = demo_page.write_index(config, summary)
    write_json(os.path.join(config.out, SUMMARY), summary)
    return summary


def per_evaluation(config: DemoConfig, figures) -> dict:
    """``{split: {policy: figures(metrics)}}`` over the evaluations' ``metrics.json``."""
    def of(policy: str, split: str) -> dict:
        return figures(_json(os.path.join(eval_folder(config, policy, split), "metrics.json")))

    return {split: {policy: of(policy, split) for policy in ("sft", "ppo")} for split in config.eval_splits}


def refined_figures(config: DemoConfig) -> dict:
    """Per split and policy, rl.eval's paired greedy -> refined figures (``metrics["refine"]``)."""
    return per_evaluation(config, lambda m: {k: m["refine"][k] for k in ("n", "paired", "seconds_per_image")})


def kept_figures(config: DemoConfig) -> dict:
    """Per split and policy, the protocol figures of the greedy and of the kept program (rl.eval's
    ``selected``: greedy, sampled or retrieved, by agreement with the input)."""
    return per_evaluation(config, lambda m: {pick: m[pick]["protocol"] for pick in ("greedy", "selected")}
                          | {"selected_modes": m.get("selected_modes")})


def run(config: DemoConfig) -> dict:
    """Every stage, then :func:`finish`; returns the summary."""
    from rl.compare import table_markdown

    started = time.perf_counter()
    prepare_out(config)
    plan = stages(config)
    timings = {stage.name: run_stage(stage, i, len(plan), started) for i, stage in enumerate(plan, 1)}
    summary = finish(config, timings, started)
    print(f"\n{PROG}: stage times (this run):")
    for name, timing in timings.items():
        print(f"  {name:20s} {'reused' if timing['reused'] else _clock(timing['seconds'])}")
    print(f"  {'total':20s} {_clock(summary['wall_seconds_this_run'])}\n")
    for comparison in [*summary["comparisons"].values(), *summary["fitted_comparisons"].values(),
                       *summary["dimensioned_comparisons"].values()]:
        print(table_markdown(comparison) + "\n")
    rate = summary["ppo_throughput"]
    shares = ", ".join(f"{k} {v:.0%}" for k, v in rate["share"].items() if v is not None)
    print(f"{PROG}: PPO {rate['samples_per_s_mean'] or 0:.2f} programs/s; time in {shares}")
    for split, policies in (summary["refined"] or {}).items():
        for policy, r in policies.items():
            paired = "  ".join(f"{label} {p['before']:.3f} -> {p['after']:.3f} ({p['difference']:+.3f})"
                               for label, p in r["paired"].items())
            print(f"{PROG}: {policy} {split} refined ({r['n']} images): {paired}")
    for split, policies in (summary["kept"] or {}).items():
        for policy, k in policies.items():
            greedy, kept = k["greedy"], k["selected"]
            retrieved = (k["selected_modes"] or {}).get("retrieved", 0)
            print(f"{PROG}: {policy} {split} kept program (--retrieve {config.eval_retrieve}, --k "
                  f"{config.eval_k}): protocol IoU {fmt(greedy['iou_mean'], '.3f')} -> "
                  f"{fmt(kept['iou_mean'], '.3f')}, IR {greedy['ir']:.3f} -> {kept['ir']:.3f} "
                  f"({retrieved} retrieved)")
    print(f"{PROG}: curves {summary['curves']}; open {summary['index']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description="The main job: corpus, SFT, PPO, evaluation, comparison, reports.")
    add_arguments(parser, DemoConfig)
    args = parser.parse_args(argv)
    try:
        run(from_args(DemoConfig, args))
    except (ConfigError, UsageError, StageFailed) as error:
        fail(PROG, error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
