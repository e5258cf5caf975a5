"""What makes a PPO run resumable: data order, atomic checkpoints, and the metrics log.

The run folder (``runs_dir/name``) of ``python -m rl.ppo``::

    runs/ppo/checkpoint-N/policy/           the policy at iteration N (Policy.save form)
    runs/ppo/checkpoint-N/trainer_state.pt  AdamW state and RNG states (python, numpy, torch)
    runs/ppo/checkpoint-N/state.json        iteration, data position, KL coefficient
    runs/ppo/metrics.jsonl                  one line per iteration: {"iteration": N, "reward/...": ...}
    runs/ppo/tensorboard/                   the same scalars, when torch.utils.tensorboard imports
    runs/ppo/records/itN/                   per-sample records (records.jsonl, views/*.png, index.html)
    runs/ppo/final/                         the last policy (Policy.save form), for rl.eval / rl.predict

A checkpoint is written to ``checkpoint-N.tmp`` and renamed when complete, so a kill mid-save
leaves the previous checkpoint intact; only the newest :data:`KEEP` are kept. The data order
is a pure function of the seed and a position (the number of images drawn so far): epoch
``e`` visits the train rows in ``default_rng((seed, e)).permutation``, so saving the position
is enough to continue it. Restoring the RNG states makes the next iteration sample, shuffle
and update exactly as an uninterrupted run would (on CPU, with ``workers=0`` or a
deterministic reward).
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass

import numpy as np
import torch

from rl.cli import write_json

CHECKPOINT = "checkpoint-{}"
POLICY = "policy"
TRAINER_STATE = "trainer_state.pt"
STATE_JSON = "state.json"
METRICS = "metrics.jsonl"
KEEP = 2


@dataclass
class TrainState:
    """The counters a resumed run continues from."""

    iteration: int = 0
    """Iterations finished."""
    data_position: int = 0
    """Train images drawn so far (across epochs)."""
    kl_coef: float | None = None
    """The KL controller's coefficient after the last update."""


@functools.lru_cache(maxsize=4)
def epoch_order(n_rows: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n_rows`` rows."""
    return np.random.default_rng((seed, epoch)).permutation(n_rows)


def batch_indices(n_rows: int, seed: int, position: int, batch_size: int) -> list[int]:
    """Row indices of the ``batch_size`` images drawn from ``position`` on (epochs wrap around)."""
    if n_rows < 1:
        raise ValueError("no rows to draw from")
    out = []
    for pos in range(position, position + batch_size):
        epoch, offset = divmod(pos, n_rows)
        out.append(int(epoch_order(n_rows, seed, epoch)[offset]))
    return out


def rng_states() -> dict:
    """Python, numpy and torch (CPU and CUDA) generator states."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Inverse of :func:`rng_states`."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _checkpoints(run_dir: str) -> list[tuple[int, str]]:
    found = []
    for path in glob.glob(os.path.join(run_dir, "checkpoint-*")):
        match = re.fullmatch(r"checkpoint-(\d+)", os.path.basename(path))
        if match and os.path.exists(os.path.join(path, STATE_JSON)):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: str) -> str | None:
    """The newest complete ``checkpoint-N`` folder of the run, or None."""
    found = _checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(run_dir: str, policy, optimizer, state: TrainState) -> str:
    """Write ``checkpoint-<state.iteration>`` atomically; drop all but the newest :data:`KEEP`."""
    final = os.path.join(run_dir, CHECKPOINT.format(state.iteration))
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(os.path.join(tmp, POLICY))
    torch.save({"optimizer": optimizer.state_dict(), "rng": rng_states()}, os.path.join(tmp, TRAINER_STATE))
    write_json(os.path.join(tmp, STATE_JSON), asdict(state))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for _, old in _checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str, policy, optimizer) -> TrainState:
    """Load a :func:`save_checkpoint` folder into ``policy`` and ``optimizer``; restore the RNGs.

    The weights are copied into the live ``policy``, whose frozen reference (taken from the SFT
    checkpoint before this call) is left alone.
    """
    from policies import load_policy

    saved = load_policy(os.path.join(path, POLICY))
    policy.load_state_dict(saved.state_dict())
    # our own file, written by save_checkpoint: it holds numpy RNG state, hence weights_only=False
    trainer = torch.load(os.path.join(path, TRAINER_STATE), weights_only=False)
    optimizer.load_state_dict(trainer["optimizer"])
    set_rng_states(trainer["rng"])
    with open(os.path.join(path, STATE_JSON), encoding="utf-8") as fh:
        return TrainState(**json.load(fh))


def plain(value):
    """A JSON-safe number: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iteration_of(line: str) -> float:
    """The iteration of a metrics line; infinity for a blank or half-written one (a kill mid-write)."""
    try:
        return json.loads(line)["iteration"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


class MetricsLog:
    """``metrics.jsonl`` (and TensorBoard when available) for one run.

    Lines of iterations after ``resume_iteration`` (written before a kill, after the last
    checkpoint) and unreadable lines are dropped, so a resumed run's file has each iteration once.
    """

    def __init__(self, run_dir: str, resume_iteration: int = 0, tensorboard: bool = True):
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, METRICS)
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as fh:
                kept = [line for line in fh if _iteration_of(line) <= resume_iteration]
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.writelines(line if line.endswith("\n") else line + "\n" for line in kept)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: JSONL is the record
                SummaryWriter = None
            if SummaryWriter is not None:
                folder = os.path.join(run_dir, "tensorboard")
                self.writer = SummaryWriter(folder, purge_step=resume_iteration + 1)

    def write(self, iteration: int, metrics: dict) -> None:
        """Append one iteration's metrics."""
        line = {"iteration": iteration, **{k: plain(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, allow_nan=False) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self.writer.add_scalar(key, value, iteration)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str) -> list[dict]:
    """The lines of a run's ``metrics.jsonl``."""
    with open(os.path.join(run_dir, METRICS), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
