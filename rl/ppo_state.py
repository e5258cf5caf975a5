"""What makes a PPO run resumable: data order, atomic checkpoints, and the metrics log.

The run folder (``runs_dir/name``) of ``python -m rl.ppo``::

    runs/ppo/checkpoint-N/policy/           the policy at iteration N (Policy.save form)
    runs/ppo/checkpoint-N/trainer_state.pt  AdamW state and RNG states (python, numpy, torch) as tensors
                                            and plain values: loaded with weights_only=True, no pickle
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

from configs.cli import UsageError
from rl.checkpoint import load_checkpoint as load_policy_folder
from rl.files import write_json

CHECKPOINT = "checkpoint-{}"
POLICY = "policy"
TRAINER_STATE = "trainer_state.pt"
TRAINER_FORMAT = 2
"""Version of ``trainer_state.pt``: 2 holds only tensors and plain values (1, with pickled numpy
state, is refused)."""
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
    """Python, numpy and torch (CPU and CUDA) generator states, as tensors and plain numbers.

    Nothing in it needs pickle to load: python's ``random.getstate()`` and numpy's
    ``get_state()`` tuples become int64 tensors and numbers, so the saved file loads with
    ``torch.load(weights_only=True)``. :func:`set_rng_states` is the inverse.
    """
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Inverse of :func:`rng_states`."""
    python, legacy = states["python"], states["numpy"]
    gauss_next = None if python["gauss_next"] is None else float(python["gauss_next"])
    random.setstate((int(python["version"]), tuple(int(x) for x in python["internal"].tolist()), gauss_next))
    keys = legacy["keys"].numpy().astype(np.uint32)
    np.random.set_state((str(legacy["kind"]), keys, int(legacy["pos"]), int(legacy["has_gauss"]),
                         float(legacy["cached_gaussian"])))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def read_trainer_state(path: str) -> dict:
    """The ``{"format", "optimizer", "rng"}`` dict of a ``trainer_state.pt``, loaded without running code.

    ``torch.load(weights_only=True)`` rebuilds only tensors, numbers, strings and containers, so a
    crafted file cannot execute anything; a file it refuses (an older pickle-based checkpoint or
    a tampered one), or one of another :data:`TRAINER_FORMAT`, is a one-line
    :class:`configs.cli.UsageError`.
    """
    if not os.path.isfile(path):
        raise UsageError(_refusal(path, "the file is missing"))
    try:
        trainer = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # untrusted bytes: any failure to parse means "not ours"
        why = f"it does not load as plain tensors ({type(error).__name__}): {FOREIGN}"
        raise UsageError(_refusal(path, why)) from None
    if not isinstance(trainer, dict) or trainer.get("format") != TRAINER_FORMAT:
        found = trainer.get("format") if isinstance(trainer, dict) else type(trainer).__name__
        why = f"format {found!r}, expected {TRAINER_FORMAT}: {FOREIGN}"
        raise UsageError(_refusal(path, why))
    return trainer


FOREIGN = "written by an older scadloop or altered"
"""Why a trainer_state.pt that does not parse as format 2 is refused."""


def _refusal(path: str, why: str) -> str:
    """The one-line message for a ``trainer_state.pt`` that is not resumed from."""
    return f"refusing to resume from {path}: {why}. Delete the run's checkpoint-N folders to start over"


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
    trainer = {"format": TRAINER_FORMAT, "optimizer": optimizer.state_dict(), "rng": rng_states()}
    torch.save(trainer, os.path.join(tmp, TRAINER_STATE))
    write_json(os.path.join(tmp, STATE_JSON), asdict(state))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for _, old in _checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_train_state(path: str, policy, optimizer) -> TrainState:
    """Load a :func:`save_checkpoint` folder into ``policy`` and ``optimizer``; restore the RNGs.

    The weights are copied into the live ``policy``, whose frozen reference (taken from the SFT
    checkpoint before this call) is left alone. ``trainer_state.pt`` is read first and without
    pickle (:func:`read_trainer_state`): one it refuses stops the resume before anything is
    loaded; one whose contents do not fit ``optimizer`` is a :class:`configs.cli.UsageError` too, as
    is a policy folder that does not load (:func:`rl.checkpoint.load_checkpoint`).
    """
    trainer_path = os.path.join(path, TRAINER_STATE)
    trainer = read_trainer_state(trainer_path)
    saved = load_policy_folder(os.path.join(path, POLICY))
    policy.load_state_dict(saved.state_dict())
    try:
        optimizer.load_state_dict(trainer["optimizer"])
        set_rng_states(trainer["rng"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        why = f"its contents do not fit ({type(error).__name__})"
        raise UsageError(_refusal(trainer_path, why)) from None
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
