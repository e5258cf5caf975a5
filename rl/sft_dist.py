"""Data-parallel SFT through Ray Train: ``python -m rl.sft --gpus N`` (or ``--ray_workers N`` on CPUs).

Each worker builds the same ``transformers.Trainer`` as a single-process run
(:func:`rl.sft_trainer.build_trainer`), passed through
``ray.train.huggingface.transformers.prepare_trainer``; the Trainer sees the process group and
wraps the model in DistributedDataParallel, so every worker takes its own shard of each batch
and the gradients are averaged. The harness (rank 0's log, the per-rank reports) is
:mod:`rl.ray_harness`.

What we do differently from Ray's HF example, and why:

- **Checkpoints stay the Trainer's** (``checkpoint-N`` in the run folder): :class:`ReportMetrics`
  reports metrics only, where ``RayTrainReportCallback`` would also copy every checkpoint.
- Workers start from the run folder's ``initial/`` policy, saved by the driver, so all of
  them hold the same tokenizer and weights before the Trainer loads a checkpoint.
- Rank 0 runs the generation evaluation and saves ``final/``.
"""

from __future__ import annotations

import os

from configs.sft import SFTConfig
from renderer.cluster import check_gpus, ensure_ray
from rl.ray_harness import fit, quiet_report_log, rank_output, report_back


def _report_callback():
    from transformers import TrainerCallback

    class ReportMetrics(TrainerCallback):
        """Report each log event's numbers to Ray Train (every rank calls it: it is a barrier)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            import ray.train

            numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
            ray.train.report({**numbers, "step": state.global_step})

    return ReportMetrics()


def worker_loop(loop_config: dict) -> None:
    """The body of each Ray Train worker: train, then report this rank's figures."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    with rank_output(loop_config["run_dir"], rank):
        figures = _train_worker(loop_config, rank)
    report_back(loop_config["run_dir"], rank, figures)


def _train_worker(loop_config: dict, rank: int) -> dict:
    """Train; this rank's figures (rank 0 also saves the final policy)."""
    from ray.train.huggingface.transformers import prepare_trainer

    from policies import load_policy
    from rl.runtime import quiet_libraries, set_threads
    from rl.sft_callbacks import evaluator_for
    from rl.sft_setup import INITIAL, load_splits, save_final
    from rl.sft_trainer import build_trainer, train
    from rl.world import parameter_checksum

    config = SFTConfig.from_dict(loop_config["config"])
    run_dir, corpus_dir = loop_config["run_dir"], loop_config["corpus_dir"]
    set_threads(config.threads)
    quiet_libraries()
    quiet_report_log()
    policy = load_policy(os.path.join(run_dir, INITIAL))
    train_dataset, val = load_splits(corpus_dir, config.policy)
    evaluator = evaluator_for(config, policy, val, corpus_dir) if rank == 0 else None
    callbacks = [c for c in (evaluator, _report_callback()) if c is not None]
    trainer = prepare_trainer(build_trainer(config, policy, train_dataset, run_dir, callbacks))
    try:
        figures = train(trainer, run_dir)
    finally:
        if evaluator is not None:
            evaluator.close()
    if rank == 0:
        save_final(policy, config, run_dir)
    return {**figures, "param_checksum": parameter_checksum(policy.model)}


def start_cluster(config: SFTConfig) -> None:
    """Start or join Ray for ``config.world_size`` workers; too few GPUs is a one-line UsageError
    (Ray would wait for them forever). ``rl.sft`` calls it once, before anything is written and
    before :func:`run`."""
    ensure_ray(max(os.cpu_count() or 1, config.world_size + config.render_workers + 1), config.ray_address)
    check_gpus(config.gpus)


def run(config: SFTConfig, run_dir: str, corpus_dir: str) -> dict:
    """Train with ``config.world_size`` Ray Train workers on the cluster :func:`start_cluster`
    started; rank 0's figures plus every rank's checksum."""
    run_dir, corpus_dir = os.path.abspath(run_dir), os.path.abspath(corpus_dir)
    workers = config.world_size
    loop_config = {"config": config.to_dict(), "run_dir": run_dir, "corpus_dir": corpus_dir}
    ranks = fit(worker_loop, loop_config, run_dir, workers, config.gpus)
    figures = {k: v for k, v in ranks[0].items() if k not in ("rank", "param_checksum")}
    figures["worker_param_checksums"] = [r["param_checksum"] for r in ranks]
    return figures
