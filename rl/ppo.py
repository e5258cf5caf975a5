"""PPO refinement with rendering in the loop: every sampled program is run by OpenSCAD and scored.

Commands::

    python -m rl.sft                                    # first: the SFT policy in runs/sft/final
    python -m rl.ppo                                    # defaults (configs: PPOConfig), 100 iterations
    python -m rl.ppo --config configs/ppo.yaml --iterations 20 --batch_size 4 --k 4
    python -m rl.ppo --estimator grpo --k 8             # group baseline instead of the value head
    python -m rl.ppo --workers 0                        # render in this process (no Ray)
    python -m rl.ppo --help                             # every setting, with its help
    python -m reward.report runs/ppo/records/it100/records.jsonl --out /tmp/report   # any records

Each iteration draws ``batch_size`` train images (a seeded order; the position is saved),
samples ``k`` programs per image, scores them on the RenderPool (SSIM + chamfer + IoU +
validity, :mod:`reward.score`), computes the per-token KL to the frozen SFT policy, turns
scores into advantages (gae: the KL as a penalty in the token rewards; grpo: the KL as a term of
the loss), and runs ``ppo_epochs`` epochs of clipped-PPO minibatch steps
(:mod:`rl.ppo_loop`; the math is :mod:`rl.core_algos`). One line per iteration goes to stdout
and to ``runs/<name>/metrics.jsonl`` under ``reward/``, ``losses/``, ``kl/``, ``charts/`` and
``timing_s/``; every ``records_every`` iterations the samples are written as records with view
PNGs to ``runs/<name>/records/it<N>/``, and the last of them gets the HTML reward report.

Metrics per iteration: ``reward/{total,ssim,chamfer,iou}/mean`` (over all programs, invalid ones
included, infrastructure failures left out), ``reward/invalid_frac``, ``reward/truncated_frac``,
``reward/duplicate_frac``, ``reward/infra_failed_frac`` (programs the render pool failed on, left
out of the update); ``losses/{pg_loss,v_loss,kl_loss,approx_kl,clipfrac,entropy}`` (means over
the minibatch steps; kl_loss for grpo),
``losses/explained_var`` (value head before the update; null for grpo); ``kl/ref_mean`` (KL to
the reference summed over a program's tokens, mean over programs; the adaptive controller
steers it to ``kl_target`` over ``kl_horizon_iterations``), ``kl/ref_token_mean``, ``kl/coef``
(the coefficient used);
``charts/samples_per_s``, ``charts/response_tokens``; ``timing_s/{generate,render,update}``.

Re-running the same command after a kill resumes from the newest ``checkpoint-N`` (policy,
AdamW, RNG states, data position, KL coefficient; see :mod:`rl.ppo_state`): with a fixed seed
on CPU and ``--workers 0`` the next iteration's metrics equal an uninterrupted run's (timings
aside). Raise ``--iterations`` to continue a finished run.

Reward-hack guards:

- A program that fails (syntax, runtime, timeout, forbidden include/import, too large) or
  whose mesh is empty, not 3-D or degenerate gets the reward's ``invalid_penalty``, never
  NaN (:mod:`reward.score`): the policy cannot profit from output OpenSCAD does not accept.
- Length guard (``length_guard``): a response that reaches ``max_new_tokens`` without eos gets
  the invalid penalty without being rendered (status ``truncated``), so rambling until the
  budget runs out is never rewarded, and it costs no OpenSCAD time.
- ``reward/duplicate_frac``: the fraction of programs whose exact text was also sampled for a
  different target in the same batch. A policy that collapses onto one generic part that
  scores fairly everywhere shows up here before it shows up in the reward.
- The KL penalty to the SFT reference keeps the policy near programs that look like the corpus.

``--gpus N`` runs N data-parallel learners on GPUs through Ray Train, ``--ray_workers N`` the
same on CPU processes (gloo); render actors stay on the CPUs (:mod:`rl.ppo_dist`). With neither,
one learner runs in this process. Bad input is one line on stderr, exit 2.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time

from configs.loader import ConfigError, add_arguments, from_args
from configs.ppo import PPOConfig
from configs.reward import RUN_CONFIG, as_dict
from renderer.errors import RendererUnavailable
from rl.cli import Parser, UsageError, fail, quiet_libraries, set_threads, write_json

PROG = "rl.ppo"
SUMMARY = "ppo_summary.json"
CONFIG_JSON = RUN_CONFIG  # rl.eval reads the reward settings of a checkpoint's run from it


def _fmt(value, spec=".3f") -> str:
    return "n/a" if value is None or value != value else format(value, spec)


def describe(iteration: int, total: int, m: dict, eta_s: float | None = None) -> str:
    """The one line printed per iteration (``eta_s``: estimated seconds left)."""
    eta = "" if eta_s is None else f" (eta {int(eta_s) // 60}m{int(eta_s) % 60:02d}s)"
    return (
        f"{PROG}: it {iteration}/{total}{eta} reward/total/mean={_fmt(m['reward/total/mean'])} "
        f"reward/invalid_frac={_fmt(m['reward/invalid_frac'], '.2f')} "
        f"reward/duplicate_frac={_fmt(m['reward/duplicate_frac'], '.2f')} "
        f"kl/ref_mean={_fmt(m['kl/ref_mean'])} "
        f"kl/coef={_fmt(m['kl/coef'], '.4f')} losses/pg_loss={_fmt(m['losses/pg_loss'], '.4f')} "
        f"losses/v_loss={_fmt(m['losses/v_loss'], '.4f')} losses/clipfrac={_fmt(m['losses/clipfrac'])} "
        f"charts/samples_per_s={_fmt(m['charts/samples_per_s'], '.2f')}"
    )


def load_train_rows(config: PPOConfig, policy):
    """``(corpus_dir, train rows)``: the train split's id, image and mesh_path columns."""
    from corpus.dataset import load
    from rl.eval import resolve_corpus
    from rl.sft_setup import check_image_size

    corpus_dir = resolve_corpus(config)
    try:
        rows = load(corpus_dir, "train").select_columns(["id", "image", "mesh_path"])
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if len(rows) == 0:
        raise UsageError(f"the train split of {corpus_dir!r} is empty")
    check_image_size(rows, policy.config, corpus_dir)
    return corpus_dir, rows


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_learner(config: PPOConfig, policy, rewarder, world=None):
    """The :class:`rl.ppo_loop.Learner`: AdamW over the trainable parameters and the KL controller."""
    import torch

    from rl.core_algos import AdaptiveKLController, FixedKLController
    from rl.ppo_loop import Learner

    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.adaptive_kl:
        kl_ctl = AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
    else:
        kl_ctl = FixedKLController(config.kl_coef)
    return Learner(policy, optimizer, kl_ctl, config, rewarder, world)


def _save_final(policy, config: PPOConfig, run_dir: str, corpus_dir: str | None) -> str:
    """The last policy to ``run_dir/final`` (atomically), with the configs rl.eval reads."""
    final = os.path.join(run_dir, "final")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp)
    write_json(os.path.join(tmp, CONFIG_JSON), {**config.to_dict(), "corpus_dir": corpus_dir})
    sft_config = os.path.join(config.checkpoint, "sft_config.json")
    if os.path.exists(sft_config):  # rl.eval finds the corpus through it
        shutil.copy(sft_config, tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _last_records(run_dir: str) -> str | None:
    import glob

    found = glob.glob(os.path.join(run_dir, "records", "it*", "records.jsonl"))
    return max(found, key=lambda p: int(os.path.basename(os.path.dirname(p))[2:])) if found else None


def run(config: PPOConfig, rewarder=None, rows=None, world=None) -> dict:
    """Train; returns the summary dict (also ``runs/<name>/ppo_summary.json``).

    ``rewarder`` and ``rows`` are seams for tests: a reward object (see :mod:`rl.ppo_loop`) used
    instead of OpenSCAD on a RenderPool, and target rows (dicts with ``id`` and ``image``) used
    instead of the corpus's train split. ``world`` (:class:`rl.ppo_dist.World`) makes this one of
    several data-parallel learners; with ``gpus`` or ``ray_workers`` set and no ``world``, the run
    is handed to Ray Train (:func:`rl.ppo_dist.run_distributed`).
    """
    import torch

    from reward.records import write_records
    from reward.report import build_report
    from rl.cli import load_checkpoint
    from rl.ppo_dist import iteration_seed
    from rl.ppo_loop import PoolRewarder, iterate
    from rl.ppo_state import MetricsLog, TrainState, batch_indices, latest_checkpoint, plain, save_checkpoint
    from rl.ppo_state import load_checkpoint as load_state
    from rl.sft_trainer import parameter_checksum

    if world is None and (config.gpus or config.ray_workers):
        from rl.ppo_dist import run_distributed

        return run_distributed(config)
    lead = world is None or world.rank == 0
    started = time.perf_counter()
    set_threads(config.threads)
    quiet_libraries()
    policy = load_checkpoint(config.checkpoint)
    if config.gpus and torch.cuda.is_available():
        policy.to(torch.device("cuda", torch.cuda.current_device()))
    policy.freeze_reference()
    corpus_dir = None
    if rows is None:
        corpus_dir, rows = load_train_rows(config, policy)
    run_dir = os.path.join(config.runs_dir, config.name)
    seed_everything(config.seed)
    pool = None
    if rewarder is None:
        from renderer.openscad import RenderLimits
        from renderer.pool import RenderPool
        from reward.score import Scorer

        pool = RenderPool(Scorer(config.reward, threads=1), workers=config.workers,
                          limits=RenderLimits(timeout_s=config.render_timeout))
        rewarder = PoolRewarder(pool, corpus_dir, config.reward.invalid_penalty)
    learner = build_learner(config, policy, rewarder, world)
    state, resumed_from = TrainState(kl_coef=learner.kl_ctl.value), latest_checkpoint(run_dir)
    if resumed_from:
        state = load_state(resumed_from, policy, learner.optimizer)
        learner.kl_ctl.value = state.kl_coef
        print(f"{PROG}: resuming from {resumed_from} (iteration {state.iteration})")
    if lead:
        write_json(os.path.join(run_dir, CONFIG_JSON), {**config.to_dict(), "corpus_dir": corpus_dir})
    print(f"{PROG}: {len(rows)} train targets; {config.batch_size} x {config.k} programs per iteration; "
          f"run in {run_dir}")
    log = MetricsLog(run_dir, state.iteration, config.tensorboard) if lead else None
    start_iteration, metrics, loop_started = state.iteration, {}, time.perf_counter()
    try:
        for iteration in range(state.iteration + 1, config.iterations + 1):
            index = batch_indices(len(rows), config.seed, state.data_position, config.batch_size)
            if world is not None:
                index = world.shard(index)
                seed_everything(iteration_seed(config.seed, iteration, world.rank))
            last = iteration == config.iterations
            records_dir = None
            if lead and (iteration % config.records_every == 0 or last):
                records_dir = os.path.join(run_dir, "records", f"it{iteration}")
                shutil.rmtree(records_dir, ignore_errors=True)
            metrics, records = iterate(learner, [rows[i] for i in index], iteration, records_dir)
            if world is not None:  # means over learners; throughput is their sum
                metrics = world.mean({k: float("nan") if v is None else v for k, v in metrics.items()})
                metrics["charts/samples_per_s"] *= world.size
            state.iteration, state.data_position = iteration, state.data_position + config.batch_size
            state.kl_coef = learner.kl_ctl.value
            if not lead:
                continue
            log.write(iteration, metrics)
            per_iteration = (time.perf_counter() - loop_started) / (iteration - start_iteration)
            eta_s = per_iteration * (config.iterations - iteration)
            print(describe(iteration, config.iterations, metrics, eta_s), flush=True)
            if records_dir:
                write_records(os.path.join(records_dir, "records.jsonl"), records)
            if iteration % config.save_every == 0 or last:
                save_checkpoint(run_dir, policy, learner.optimizer, state)
    finally:
        if log is not None:
            log.close()
        if pool is not None:
            pool.close()
    if not lead:
        return {"param_checksum": parameter_checksum(policy.model), "iteration": state.iteration}
    final = _save_final(policy, config, run_dir, corpus_dir)
    records_path, report = _last_records(run_dir), None
    if records_path:
        report = build_report(records_path, os.path.dirname(records_path), title=f"{PROG} {records_path}",
                              reward=as_dict(config.reward), reward_source=f"{CONFIG_JSON} of {run_dir}")
    summary = {
        "name": config.name, "run_dir": run_dir, "final": final, "corpus_dir": corpus_dir,
        "resumed_from": resumed_from, "start_iteration": start_iteration, "iteration": state.iteration,
        "iterations_this_run": state.iteration - start_iteration, "data_position": state.data_position,
        "kl_coef": state.kl_coef, "wall_seconds": time.perf_counter() - started,
        "last_metrics": {k: plain(v) for k, v in metrics.items()}, "report": report,
        "world_size": world.size if world else 1, "param_checksum": parameter_checksum(policy.model),
        "reward": as_dict(config.reward),
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    description = "PPO refinement of an image -> OpenSCAD policy, rendering in the loop."
    parser = Parser(prog=PROG, description=description)
    add_arguments(parser, PPOConfig)
    args = parser.parse_args(argv)
    try:
        summary = run(from_args(PPOConfig, args))
    except (ConfigError, UsageError, RendererUnavailable) as error:
        fail(PROG, error)
    print(f"{PROG}: iteration {summary['iteration']} in {summary['wall_seconds']:.0f} s; policy in "
          f"{summary['final']}; metrics in {os.path.join(summary['run_dir'], 'metrics.jsonl')}"
          + (f"; report {summary['report']}" if summary["report"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
