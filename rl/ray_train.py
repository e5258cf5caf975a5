"""Data-parallel SFT through Ray Train: ``python -m rl.sft --gpus N`` (or ``--ray_workers N`` on CPUs).

``ray.train.torch.TorchTrainer`` starts N workers and the torch process group (NCCL on GPUs,
gloo on CPUs, which is how the tests cover this path on a laptop). Each worker builds the
same ``transformers.Trainer`` as a single-process run (:func:`rl.sft_trainer.build_trainer`),
passed through ``ray.train.huggingface.transformers.prepare_trainer``; the Trainer sees the
process group and wraps the model in DistributedDataParallel, so every worker takes its own
shard of each batch and the gradients are averaged.

What we do differently from Ray's HF example, and why:

- **Checkpoints stay the Trainer's** (``checkpoint-N`` in the run folder), not copies in
  Ray's storage: resume (``trainer.train(resume_from_checkpoint=...)``) then works the same
  with or without Ray, and a checkpoint is not written twice. So :class:`ReportMetrics`
  reports metrics only, where ``RayTrainReportCallback`` would also copy every checkpoint.
  The run folder must therefore be on a disk every worker sees (one machine, or a shared
  file system for several).
- Workers start from the run folder's ``initial/`` policy, saved by the driver, so all of
  them hold the same tokenizer and weights before the Trainer loads a checkpoint.
- Rank 0's stdout and stderr (progress bar, metrics lines) go to ``ray_rank0.log`` in the run
  folder, which the driver prints as it grows (:func:`renderer.cluster.ensure_ray` keeps
  worker output away from the driver).
- Each worker writes ``ray_worker_<rank>.json`` (its figures and a parameter checksum; equal
  checksums show the replicas stayed in sync); rank 0 also saves ``final/``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import sys
import threading

from configs.sft import SFTConfig
from rl.cli import write_json

LOG = "ray_rank0.log"


def _follow(path: str, stop: threading.Event) -> None:
    """Copy what is appended to ``path`` to our stdout until ``stop`` is set (then once more)."""
    position = 0
    while True:
        stopping = stop.wait(0.5)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                fh.seek(position)
                text = fh.read()
                position = fh.tell()
            if text:
                sys.stdout.write(text)
                sys.stdout.flush()
        if stopping:
            return


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
    """The body of each Ray Train worker; rank 0 writes its output to ``ray_rank0.log``."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    if rank != 0:
        _train_worker(loop_config, rank)
        return
    with open(os.path.join(loop_config["run_dir"], LOG), "a", buffering=1, encoding="utf-8") as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            _train_worker(loop_config, rank)


def _quiet_report_log() -> None:
    """Ray Train logs each ``ray.train.report`` at INFO, a whole metrics dict a line, beside our
    own metrics line; keep its warnings only (the logger is named by its module's path)."""
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray layout: its lines stay
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def _train_worker(loop_config: dict, rank: int) -> None:
    """Train, then write this rank's figures (and, on rank 0, the final policy)."""
    from ray.train.huggingface.transformers import prepare_trainer

    from policies import load_policy
    from rl.cli import quiet_libraries, set_threads
    from rl.sft import evaluator_for, save_final
    from rl.sft_setup import INITIAL, load_splits
    from rl.sft_trainer import build_trainer, parameter_checksum, train

    config = SFTConfig.from_dict(loop_config["config"])
    run_dir, corpus_dir = loop_config["run_dir"], loop_config["corpus_dir"]
    set_threads(config.threads)
    quiet_libraries()
    _quiet_report_log()
    policy = load_policy(os.path.join(run_dir, INITIAL))
    train_dataset, val = load_splits(corpus_dir)
    evaluator = evaluator_for(config, policy, val, corpus_dir) if rank == 0 else None
    callbacks = [c for c in (evaluator, _report_callback()) if c is not None]
    trainer = prepare_trainer(build_trainer(config, policy, train_dataset, run_dir, callbacks))
    try:
        figures = train(trainer, run_dir)
    finally:
        if evaluator is not None:
            evaluator.close()
    figures["rank"] = rank
    figures["param_checksum"] = parameter_checksum(policy.model)
    if rank == 0:
        save_final(policy, config, run_dir)
    write_json(os.path.join(run_dir, f"ray_worker_{rank}.json"), figures)


def fit(loop, loop_config: dict, run_dir: str, world_size: int, gpus: int) -> list[dict]:
    """Run ``loop`` on ``world_size`` Ray Train workers (NCCL on GPUs, else gloo) while printing
    rank 0's log; the ``ray_worker_<rank>.json`` each wrote, by rank (Ray must be started)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    for old in glob.glob(os.path.join(run_dir, "ray_worker_*.json")) + [os.path.join(run_dir, LOG)]:
        if os.path.exists(old):
            os.remove(old)
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=world_size, use_gpu=gpus > 0, resources_per_worker={"CPU": 1}
        ),
        run_config=RunConfig(name="ray_train", storage_path=run_dir),
    )
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(os.path.join(run_dir, LOG), stop), daemon=True)
    follower.start()
    try:
        trainer.fit()
    finally:
        stop.set()
        follower.join()
    ranks = []
    for path in sorted(glob.glob(os.path.join(run_dir, "ray_worker_*.json"))):
        with open(path, encoding="utf-8") as fh:
            ranks.append(json.load(fh))
    if len(ranks) != world_size:
        raise RuntimeError(f"{len(ranks)} of {world_size} Ray Train workers reported back")
    return sorted(ranks, key=lambda r: r["rank"])


def run(config: SFTConfig, run_dir: str, corpus_dir: str) -> dict:
    """Train with ``config.world_size`` Ray Train workers; rank 0's figures plus every rank's checksum."""
    from renderer.cluster import ensure_ray

    run_dir, corpus_dir = os.path.abspath(run_dir), os.path.abspath(corpus_dir)
    workers = config.world_size
    ensure_ray(max(os.cpu_count() or 1, workers + config.render_workers + 1), config.ray_address)
    loop_config = {"config": config.to_dict(), "run_dir": run_dir, "corpus_dir": corpus_dir}
    ranks = fit(worker_loop, loop_config, run_dir, workers, config.gpus)
    figures = {k: v for k, v in ranks[0].items() if k not in ("rank", "param_checksum")}
    figures["worker_param_checksums"] = [r["param_checksum"] for r in ranks]
    return figures
