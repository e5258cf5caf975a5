"""Supervised fine-tuning: (image, program) pairs -> a policy checkpoint, with ``transformers.Trainer``.

Commands::

    python -m rl.sft                                   # defaults: builds runs/corpus (2000 parts) if
                                                       # missing, tiny policy, 300 steps -> runs/sft
    python -m rl.sft --config configs/sft.yaml --corpus_dir runs/corpus2k --max_steps 300
    python -m rl.sft --name tiny2 --policy.text_layers 2 --policy.vocab_size 1024 --max_steps 50
    python -m rl.sft --gpus 4                          # data-parallel on 4 GPUs through Ray Train
    python -m rl.sft --ray_workers 2                   # the same on 2 CPU processes (gloo)
    python -m rl.sft --help                            # every setting, with its help

Re-running a command after it was killed resumes from the last checkpoint in
``runs/<name>/checkpoint-N`` (same data order, optimizer and schedule); raising
``--max_steps`` continues a finished run (its learning-rate schedule is then recomputed for
the new ``max_steps``; use a new ``--name`` for a clean longer run). The run folder (see
:mod:`rl.sft_setup`) ends with ``final/`` (the policy in ``Policy.save`` form, for ``rl.eval``,
``rl.predict`` and ``rl.ppo``) and ``sft_summary.json`` (wall time, steps, examples/s,
tokens/s, losses, eval figures).

The Trainer prints a progress bar and one metrics line per ``logging_steps``; every
``eval_steps`` a callback decodes ``eval_samples`` val programs greedily, renders and scores
them (:class:`rl.sft_callbacks.GenerationEval`). Bad input is one line on stderr, exit 2.
"""

from __future__ import annotations

import os
import sys
import time

from configs.cli import Parser, UsageError, fail, fmt
from configs.loader import ConfigError, add_arguments, from_args
from configs.sft import SFTConfig
from rl.checkpoint import check_image_size
from rl.files import write_json
from rl.runtime import quiet_libraries, set_threads
from rl.sft_setup import (
    FINAL,
    TrainingDiverged,
    ensure_corpus,
    initial_policy,
    load_splits,
    save_final,
    write_config,
)

PROG = "rl.sft"
SUMMARY = "sft_summary.json"


def train_here(config: SFTConfig, policy, train_dataset, val, run_dir: str, corpus_dir: str) -> dict:
    """Train in this process (no Ray Train); the figures of :func:`rl.sft_trainer.train`."""
    from rl.sft_callbacks import evaluator_for
    from rl.sft_trainer import build_trainer, train

    evaluator = evaluator_for(config, policy, val, corpus_dir)
    trainer = build_trainer(config, policy, train_dataset, run_dir, [evaluator] if evaluator else [])
    try:
        figures = train(trainer, run_dir)
    finally:
        if evaluator is not None:
            evaluator.close()
    save_final(policy, config, run_dir)
    return figures


def run(config: SFTConfig) -> dict:
    """Prepare the corpus and the run folder, train, save ``final/``; returns the summary dict."""
    started = time.perf_counter()
    set_threads(config.threads)
    quiet_libraries()
    if config.gpus or config.ray_workers:
        from rl.sft_dist import start_cluster

        start_cluster(config)  # too few GPUs fails here, before the corpus and the run folder
    corpus_dir = ensure_corpus(config)
    train_dataset, val = load_splits(corpus_dir, config.policy)
    check_image_size(train_dataset, config.policy, corpus_dir)
    run_dir = os.path.join(config.runs_dir, config.name)
    policy = initial_policy(config, run_dir, train_dataset)
    write_config(config, run_dir)
    print(f"{PROG}: {len(train_dataset)} train / {len(val)} val examples from {corpus_dir}; run in {run_dir}")
    if config.gpus or config.ray_workers:
        from rl import sft_dist

        figures = sft_dist.run(config, run_dir, corpus_dir)
    else:
        figures = train_here(config, policy, train_dataset, val, run_dir, corpus_dir)
    summary = {
        "name": config.name,
        "run_dir": run_dir,
        "final": os.path.join(run_dir, FINAL),
        "corpus_dir": corpus_dir,
        "train_examples": len(train_dataset),
        "max_steps": config.max_steps,
        "wall_seconds": time.perf_counter() - started,
        **figures,
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    return summary


def _describe(summary: dict) -> str:
    evaluation = summary.get("eval") or {}
    return (
        f"{PROG}: step {summary['global_step']}/{summary['max_steps']} "
        f"({summary['steps_this_run']} this run) in {summary['wall_seconds']:.0f} s; "
        f"{fmt(summary['examples_per_s'], '.2f')} examples/s, "
        f"{fmt(summary['tokens_per_s'], '.0f')} tokens/s; "
        f"train/loss {fmt(summary['train_loss_last'], '.4f')}; "
        f"eval/valid_frac {fmt(evaluation.get('eval/valid_frac'), '.3f')} "
        f"eval/iou_mean {fmt(evaluation.get('eval/iou_mean'), '.3f')}\n"
        f"{PROG}: policy saved to {summary['final']}; summary in "
        f"{os.path.join(summary['run_dir'], SUMMARY)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description="Supervised fine-tuning of an image -> OpenSCAD policy.")
    add_arguments(parser, SFTConfig)
    args = parser.parse_args(argv)
    try:
        config = from_args(SFTConfig, args)
        summary = run(config)
    except (ConfigError, UsageError, TrainingDiverged) as error:
        fail(PROG, error)
    print(_describe(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
