"""Data-parallel PPO through Ray Train: ``python -m rl.ppo --gpus N`` (or ``--ray_workers N`` on CPUs).

``ray.train.torch.TorchTrainer`` starts N learner workers and the torch process group (NCCL
on GPUs, gloo on CPUs, which is how a test covers this path on a laptop). Every learner runs
the same loop as a single-process run (:func:`rl.ppo_run.train` with a :class:`rl.world.World`):

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
grows (the harness SFT shares, :mod:`rl.ray_harness`).
"""

from __future__ import annotations

import os

from configs.ppo import PPOConfig
from renderer.cluster import check_gpus, ensure_ray
from rl.files import write_json
from rl.ppo_run import SUMMARY, train
from rl.ray_harness import fit, rank_output, report_back
from rl.world import World


def worker_loop(loop_config: dict) -> None:
    """The body of each Ray Train learner: train its shard, then report its checksum and summary."""
    import ray.train

    context = ray.train.get_context()
    world = World(context.get_world_rank(), context.get_world_size())
    config = PPOConfig.from_dict(loop_config["config"])
    run_dir = os.path.join(config.runs_dir, config.name)
    with rank_output(run_dir, world.rank):
        summary = train(config, world=world)
    report_back(run_dir, world.rank, {"param_checksum": summary["param_checksum"], "summary": summary})


def run_distributed(config: PPOConfig) -> dict:
    """Train with ``config.world_size`` Ray Train learners; rank 0's summary plus every rank's checksum."""
    from rl.checkpoint import resolve_corpus

    world_size = config.world_size
    config = PPOConfig.from_dict({**config.to_dict(), "runs_dir": os.path.abspath(config.runs_dir)})
    config.checkpoint = os.path.abspath(config.checkpoint)
    # learners may start in another folder
    config.corpus_dir = os.path.abspath(resolve_corpus(config.checkpoint, config.corpus_dir))
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
