"""One PPO learner's run, from the SFT checkpoint to ``final/``: what ``python -m rl.ppo`` trains with.

:func:`train` loads the policy and the train targets, resumes from the newest checkpoint,
runs :func:`rl.ppo_loop.iterate` for each remaining iteration and saves the final policy. It
is the whole run in one process, and the body of each learner when several run data-parallel
(:mod:`rl.ppo_dist` passes a :class:`rl.world.World`): then every learner samples and updates
its shard of the batch, and only the lead (rank 0) writes files and prints, through
:class:`LeadOutput`.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import time

from configs.cli import fmt
from configs.ppo import PPOConfig
from configs.reward import RUN_CONFIG, as_dict
from rl.files import write_json
from rl.world import World, iteration_seed, parameter_checksum

PROG = "rl.ppo"
SUMMARY = "ppo_summary.json"
"""The lead writes it; with several learners the driver adds every learner's parameter checksum."""


def describe(iteration: int, total: int, m: dict, eta_s: float | None = None) -> str:
    """The one line printed per iteration (``eta_s``: estimated seconds left)."""
    eta = "" if eta_s is None else f" (eta {int(eta_s) // 60}m{int(eta_s) % 60:02d}s)"
    return (
        f"{PROG}: it {iteration}/{total}{eta} reward/total/mean={fmt(m['reward/total/mean'])} "
        f"reward/invalid_frac={fmt(m['reward/invalid_frac'], '.2f')} "
        f"reward/duplicate_frac={fmt(m['reward/duplicate_frac'], '.2f')} "
        f"kl/ref_mean={fmt(m['kl/ref_mean'])} "
        f"kl/coef={fmt(m['kl/coef'], '.4f')} losses/pg_loss={fmt(m['losses/pg_loss'], '.4f')} "
        f"losses/v_loss={fmt(m['losses/v_loss'], '.4f')} losses/clipfrac={fmt(m['losses/clipfrac'])} "
        f"charts/samples_per_s={fmt(m['charts/samples_per_s'], '.2f')}"
    )


def load_train_rows(config: PPOConfig, policy):
    """``(corpus_dir, rows)``: the id, input and mesh_path columns of ``config.split``."""
    from policies.inputs import input_columns
    from rl.checkpoint import check_image_size, load_split_rows, resolve_corpus

    corpus_dir = resolve_corpus(config.checkpoint, config.corpus_dir)
    rows = load_split_rows(corpus_dir, config.split, ["id", "mesh_path", *input_columns(policy.config)])
    check_image_size(rows, policy.config, corpus_dir)
    return corpus_dir, rows


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_learner(config: PPOConfig, policy, rewarder, world: World | None = None):
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


class LeadOutput:
    """What the lead learner writes: the run config, metrics lines and log, records, checkpoints,
    and at the end ``final/``, the reward report and the summary."""

    def __init__(self, config: PPOConfig, run_dir: str, corpus_dir: str | None, start_iteration: int):
        from rl.ppo_state import MetricsLog

        self.config, self.run_dir, self.corpus_dir = config, run_dir, corpus_dir
        self.start_iteration, self.loop_started = start_iteration, time.perf_counter()
        write_json(os.path.join(run_dir, RUN_CONFIG), self._run_config())
        self.log = MetricsLog(run_dir, start_iteration, config.tensorboard)

    def _run_config(self) -> dict:
        return {**self.config.to_dict(), "corpus_dir": self.corpus_dir}

    def records_dir(self, iteration: int) -> str | None:
        """A fresh ``records/it<N>`` folder on record iterations (and the last), else None."""
        if iteration % self.config.records_every and iteration != self.config.iterations:
            return None
        folder = os.path.join(self.run_dir, "records", f"it{iteration}")
        shutil.rmtree(folder, ignore_errors=True)
        return folder

    def iteration_done(self, iteration: int, metrics: dict, records, records_dir, learner, state) -> None:
        """Log and print the iteration's metrics, write its records, checkpoint when due."""
        from reward.records import write_records
        from rl.ppo_state import save_checkpoint

        self.log.write(iteration, metrics)
        per_iteration = (time.perf_counter() - self.loop_started) / (iteration - self.start_iteration)
        eta_s = per_iteration * (self.config.iterations - iteration)
        print(describe(iteration, self.config.iterations, metrics, eta_s), flush=True)
        if records_dir:
            write_records(os.path.join(records_dir, "records.jsonl"), records)
        if iteration % self.config.save_every == 0 or iteration == self.config.iterations:
            save_checkpoint(self.run_dir, learner.policy, learner.optimizer, state)

    def close(self) -> None:
        self.log.close()

    def save_final(self, policy) -> str:
        """The last policy to ``run_dir/final`` (atomically), with the configs rl.eval reads."""
        from rl.checkpoint import SFT_CONFIG_JSON

        final = os.path.join(self.run_dir, "final")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        policy.save(tmp)
        write_json(os.path.join(tmp, RUN_CONFIG), self._run_config())
        sft_config = os.path.join(self.config.checkpoint, SFT_CONFIG_JSON)
        if os.path.exists(sft_config):  # rl.eval finds the corpus through it
            shutil.copy(sft_config, tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def report(self) -> str | None:
        """The HTML reward report of the last records written (None when there are none)."""
        from reward.report import build_report

        found = glob.glob(os.path.join(self.run_dir, "records", "it*", "records.jsonl"))
        if not found:
            return None
        path = max(found, key=lambda p: int(os.path.basename(os.path.dirname(p))[2:]))
        source = f"{RUN_CONFIG} of {self.run_dir}"
        return build_report(path, os.path.dirname(path), title=f"{PROG} {path}",
                            reward=as_dict(self.config.reward), reward_source=source)


def _pool_rewarder(config: PPOConfig, corpus_dir: str | None):
    """``(pool, rewarder)``: OpenSCAD on a RenderPool scoring with the run's reward settings."""
    from renderer.openscad import RenderLimits
    from renderer.pool import RenderPool
    from reward.score import Scorer
    from rl.ppo_loop import PoolRewarder

    pool = RenderPool(Scorer(config.reward, threads=1), workers=config.workers,
                      limits=RenderLimits(timeout_s=config.render_timeout), ray_address=config.ray_address)
    return pool, PoolRewarder(pool, corpus_dir, config.reward.invalid_penalty)


def _learner_metrics(world: World | None, metrics: dict) -> dict:
    """The iteration's metrics: this learner's, or the mean over learners (throughput: their sum)."""
    if world is None:
        return metrics
    metrics = world.mean({k: float("nan") if v is None else v for k, v in metrics.items()})
    metrics["charts/samples_per_s"] *= world.size
    return metrics


def train(config: PPOConfig, rewarder=None, rows=None, world: World | None = None) -> dict:
    """Train one learner; the lead returns the summary dict (also ``runs/<name>/ppo_summary.json``),
    other learners their parameter checksum and iteration.

    ``rewarder`` and ``rows`` are seams for tests: a reward object (see :mod:`rl.ppo_loop`) used
    instead of OpenSCAD on a RenderPool, and target rows (dicts with ``id`` and ``image``) used
    instead of the corpus's train split.
    """
    import torch

    from rl.checkpoint import load_checkpoint
    from rl.ppo_loop import iterate
    from rl.ppo_ptx import load_sft_mix
    from rl.ppo_state import TrainState, batch_indices, latest_checkpoint, load_train_state, plain
    from rl.runtime import quiet_libraries, set_threads

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
        pool, rewarder = _pool_rewarder(config, corpus_dir)
    learner = build_learner(config, policy, rewarder, world)
    learner.ptx = load_sft_mix(config, policy, corpus_dir, world.rank if world else 0)
    state, resumed_from = TrainState(kl_coef=learner.kl_ctl.value), latest_checkpoint(run_dir)
    if resumed_from:
        state = load_train_state(resumed_from, policy, learner.optimizer)
        learner.kl_ctl.value = state.kl_coef
        print(f"{PROG}: resuming from {resumed_from} (iteration {state.iteration})")
    print(f"{PROG}: {len(rows)} train targets; {config.batch_size} x {config.k} programs per iteration; "
          f"run in {run_dir}")
    start_iteration, metrics = state.iteration, {}
    lead = LeadOutput(config, run_dir, corpus_dir, start_iteration) if world is None or world.lead else None
    try:
        for iteration in range(state.iteration + 1, config.iterations + 1):
            index = batch_indices(len(rows), config.seed, state.data_position, config.batch_size)
            if world is not None:
                index = world.shard(index)
                seed_everything(iteration_seed(config.seed, iteration, world.rank))
            records_dir = lead.records_dir(iteration) if lead else None
            metrics, records = iterate(learner, [rows[i] for i in index], iteration, records_dir)
            metrics = _learner_metrics(world, metrics)
            state.iteration, state.data_position = iteration, state.data_position + config.batch_size
            state.kl_coef = learner.kl_ctl.value
            if lead:
                lead.iteration_done(iteration, metrics, records, records_dir, learner, state)
    finally:
        if lead:
            lead.close()
        if pool is not None:
            pool.close()
    if not lead:
        return {"param_checksum": parameter_checksum(policy.model), "iteration": state.iteration}
    summary = {
        "name": config.name, "run_dir": run_dir, "final": lead.save_final(policy), "corpus_dir": corpus_dir,
        "resumed_from": resumed_from, "start_iteration": start_iteration, "iteration": state.iteration,
        "iterations_this_run": state.iteration - start_iteration, "data_position": state.data_position,
        "kl_coef": state.kl_coef, "wall_seconds": time.perf_counter() - started,
        "last_metrics": {k: plain(v) for k, v in metrics.items()}, "report": lead.report(),
        "world_size": world.size if world else 1, "param_checksum": parameter_checksum(policy.model),
        "reward": as_dict(config.reward),
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    return summary
