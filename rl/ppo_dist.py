"""Data-parallel PPO through Ray Train: ``python -m rl.ppo --gpus N`` (or ``--ray_workers N`` on CPUs).

``ray.train.torch.TorchTrainer`` starts N learner workers and the torch process group (NCCL
on GPUs, gloo on CPUs, which is how a test covers this path on a laptop). Every learner runs
the same loop as a single-process run (:func:`rl.ppo.run` with a :class:`World`):

- the iteration's ``batch_size`` target images are split across learners (``rank::N``), each
  learner samples its ``k`` programs per image and scores them on its own render actors
  (Ray actors on the CPUs; ``workers`` is per learner), so generation and rendering scale out;
- after each minibatch's backward pass the gradients are averaged over the learners
  (all-reduce), so every optimizer step is the same on every replica and the parameters stay
  equal (each learner writes a checksum to show it); GAE advantages are whitened per learner;
- the adaptive KL coefficient is steered by the mean KL over all learners, and the logged
  metrics are means over learners;
- sampling seeds are derived from (seed, iteration, rank), so a resumed run redraws exactly
  what an uninterrupted one would; rank 0 alone writes metrics, records, checkpoints and
  ``final/`` (the run folder must be on a disk every learner sees).

Rank 0's output goes to ``ray_rank0.log`` in the run folder, which the driver prints as it
grows (the same arrangement as :mod:`rl.ray_train` for SFT).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from configs.ppo import PPOConfig
from rl.cli import write_json
from rl.ray_train import LOG, fit

SUMMARY = "ppo_summary.json"
"""Rank 0 writes it; the driver adds every learner's parameter checksum."""


@dataclass
class World:
    """This learner's place among ``size`` data-parallel learners (torch.distributed is set up)."""

    rank: int
    size: int

    def shard(self, items: list) -> list:
        """This learner's share of ``items`` (every ``size``-th from ``rank``)."""
        return items[self.rank :: self.size]

    def average_gradients(self, params) -> None:
        """All-reduce each parameter's gradient to the mean over learners."""
        import torch.distributed as dist

        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(self.size)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over learners of each number (same keys on every learner)."""
        import torch.distributed as dist

        keys = sorted(values)
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return dict(zip(keys, (tensor / self.size).tolist(), strict=True))

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def iteration_seed(seed: int, iteration: int, rank: int) -> int:
    """The torch / numpy / random seed of one learner's iteration."""
    return (seed * 1_000_003 + iteration * 1_009 + rank * 7_919) % (2**31)


def worker_loop(loop_config: dict) -> None:
    """The body of each Ray Train learner; rank 0 writes its output to ``ray_rank0.log``."""
    import ray.train

    from rl.ppo import run

    context = ray.train.get_context()
    world = World(context.get_world_rank(), context.get_world_size())
    config = PPOConfig.from_dict(loop_config["config"])
    run_dir = os.path.join(config.runs_dir, config.name)
    if world.rank == 0:
        with open(os.path.join(run_dir, LOG), "a", buffering=1, encoding="utf-8") as log:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                summary = run(config, world=world)
    else:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            summary = run(config, world=world)
    mine = {"rank": world.rank, "param_checksum": summary["param_checksum"], "summary": summary}
    write_json(os.path.join(run_dir, f"ray_worker_{world.rank}.json"), mine)


def check_gpus(wanted: int) -> None:
    """A :class:`rl.cli.UsageError` when the Ray cluster has fewer than ``wanted`` GPUs (Ray would wait)."""
    import ray

    from rl.cli import UsageError

    have = int(ray.cluster_resources().get("GPU", 0))
    if wanted > have:
        raise UsageError(f"--gpus {wanted}: the Ray cluster has {have} GPU(s); use --gpus {have} "
                         "or --ray_workers N for CPU learners")


def run_distributed(config: PPOConfig) -> dict:
    """Train with ``config.world_size`` Ray Train learners; rank 0's summary plus every rank's checksum."""
    from renderer.cluster import ensure_ray
    from rl.eval import resolve_corpus

    world_size = config.world_size
    config = PPOConfig.from_dict({**config.to_dict(), "runs_dir": os.path.abspath(config.runs_dir)})
    config.checkpoint = os.path.abspath(config.checkpoint)
    config.corpus_dir = os.path.abspath(resolve_corpus(config))  # learners may start in another folder
    run_dir = os.path.join(config.runs_dir, config.name)
    os.makedirs(run_dir, exist_ok=True)
    render = config.workers if config.workers is not None else max(1, (os.cpu_count() or 1) // world_size)
    ensure_ray(max(os.cpu_count() or 1, world_size * (1 + render)), config.ray_address)
    check_gpus(config.gpus)
    config.workers = render
    ranks = fit(worker_loop, {"config": config.to_dict()}, run_dir, world_size, config.gpus)
    summary = ranks[0]["summary"]
    summary["world_size"] = world_size
    summary["worker_param_checksums"] = [r["param_checksum"] for r in ranks]
    write_json(os.path.join(run_dir, SUMMARY), summary)
    return summary
