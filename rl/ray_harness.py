"""The Ray Train harness SFT and PPO share: N learner processes, rank 0's output, their reports.

``ray.train.torch.TorchTrainer`` starts N workers and the torch process group (NCCL on GPUs,
gloo on CPUs, which is how the tests cover the distributed paths on a laptop). Each command
brings its own worker body (:mod:`rl.sft_dist`, :mod:`rl.ppo_dist`); this module runs it:

- Rank 0's stdout and stderr (progress bar, metrics lines) go to ``ray_rank0.log`` in the run
  folder, which the driver prints as it grows (:func:`renderer.cluster.ensure_ray` keeps
  worker output away from the driver); the other ranks' stdout is dropped.
- Each worker writes ``ray_worker_<rank>.json`` (its figures and a parameter checksum; equal
  checksums show the replicas stayed in sync), which :func:`fit` reads back by rank.
- Checkpoints are the commands' own, in the run folder, not copies in Ray's storage: resume
  then works the same with or without Ray, and a checkpoint is not written twice. The run
  folder must therefore be on a disk every worker sees (one machine, or a shared file system).
"""

from __future__ import annotations

import builtins
import contextlib
import glob
import json
import os
import sys
import threading

from rl.files import write_json

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


@contextlib.contextmanager
def plain_print():
    """Python's own ``print`` for the scope. Ray Train patches ``print`` in its workers to write
    each line to the redirected stdout and also log it through the root logger, whose handler
    writes to stderr, redirected to the same log: every line came out twice in ``ray_rank0.log``."""
    try:
        from ray.train.v2._internal.logging.patch_print import _original_print
    except ImportError:  # another Ray layout: print as Ray left it
        yield
        return
    patched, builtins.print = builtins.print, _original_print
    try:
        yield
    finally:
        builtins.print = patched


@contextlib.contextmanager
def rank_output(run_dir: str, rank: int):
    """Inside a worker: rank 0's stdout and stderr to ``ray_rank0.log``, other ranks' stdout dropped."""
    if rank == 0:
        with open(os.path.join(run_dir, LOG), "a", buffering=1, encoding="utf-8") as log:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), plain_print():
                yield
    else:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), plain_print():
            yield


def report_back(run_dir: str, rank: int, figures: dict) -> None:
    """Inside a worker: this rank's figures (with ``rank``) to ``ray_worker_<rank>.json`` for :func:`fit`."""
    write_json(os.path.join(run_dir, f"ray_worker_{rank}.json"), {**figures, "rank": rank})


def quiet_report_log() -> None:
    """Ray Train logs each ``ray.train.report`` at INFO, a whole metrics dict a line, beside our
    own metrics line; keep its warnings only (the logger is named by its module's path)."""
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray layout: its lines stay
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def fit(loop, loop_config: dict, run_dir: str, world_size: int, gpus: int) -> list[dict]:
    """Run ``loop`` on ``world_size`` Ray Train workers (NCCL on GPUs, else gloo) while printing
    rank 0's log; what each worker passed to :func:`report_back`, by rank (Ray must be started)."""
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
