"""Reward settings: the one place ``rl.ppo``, ``rl.eval`` and the reports take them from.

The settings are one typed dataclass, :class:`reward.score.RewardWeights` (term weights, invalid
penalty, chamfer scale, samples, grid, seed; the help is the docstring under each field and shows
in ``python -m rl.ppo --help`` as the ``--reward.*`` options). Where each command gets them::

    python -m rl.ppo --reward.iou 2                     # or a reward: section in the --config YAML
    python -m rl.eval --checkpoint runs/ppo/final       # the settings runs/ppo trained with
    python -m rl.eval --checkpoint runs/sft/final --reward_from runs/ppo   # score SFT the same way
    python -m rl.eval --checkpoint runs/sft/final --reward_from configs/reward.yaml

- ``rl.ppo`` trains with ``PPOConfig.reward`` and records it in ``ppo_config.json`` (run folder
  and ``final/``), ``ppo_summary.json`` and the reward report.
- ``rl.eval`` scores with :func:`resolve`: ``--reward_from`` when given, else what the PPO run
  the checkpoint belongs to recorded, else the defaults, each program as written
  (:func:`as_written`); ``metrics.json`` records the settings
  (``reward``) and where they came from (``reward_source``), and the report shows them.
- ``rl.compare`` refuses two evaluations scored with different settings.

``configs/reward.yaml`` holds the defaults as a file to copy and edit for ``--reward_from``.
"""

from __future__ import annotations

import dataclasses
import json
import os

from configs.loader import ConfigError, load, read_yaml
from reward.score import RewardWeights

RUN_CONFIG = "ppo_config.json"
"""The file in a PPO run folder (and its ``final/``) that records the run's config, ``reward`` included."""
DEFAULT = "default"
"""``--reward_from`` value that asks for the defaults even for a PPO checkpoint."""


def as_dict(weights: RewardWeights) -> dict:
    """The settings as a plain JSON-able dict (the form recorded in metrics.json and run configs)."""
    return dataclasses.asdict(weights)


def from_dict(values: dict, where: str) -> RewardWeights:
    """Settings from a mapping of field values (typed and checked as ``--reward.*`` options are); a
    bad key or value is a one-line :class:`ConfigError` naming ``where``."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} holds no reward settings (expected a mapping of RewardWeights fields)")
    try:
        return load(RewardWeights, None, [f"{key}={value}" for key, value in values.items()])
    except ConfigError as error:
        raise ConfigError(f"reward settings in {where}: {error}") from None


def recorded(checkpoint: str) -> tuple[RewardWeights, str] | None:
    """``(settings, path)`` recorded by the PPO run that ``checkpoint`` belongs to, or None.

    Looks for :data:`RUN_CONFIG` in ``checkpoint`` (``runs/ppo/final``) and in its parent
    (``runs/ppo`` for ``runs/ppo/checkpoint-20``); an SFT checkpoint has none.
    """
    for folder in (checkpoint, os.path.dirname(os.path.abspath(checkpoint))):
        path = os.path.join(folder, RUN_CONFIG)
        if os.path.isfile(path):
            return _from_json(path), path
    return None


def _from_json(path: str) -> RewardWeights:
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read reward settings from {path}: {error}") from None
    return from_dict(values.get("reward", values) if isinstance(values, dict) else values, path)


def _from_file(path: str) -> RewardWeights:
    """A YAML/JSON file of RewardWeights fields, flat or under a ``reward:`` key."""
    if path.endswith(".json"):
        return _from_json(path)
    values = read_yaml(path, "reward settings")
    return from_dict(values.get("reward", values) if isinstance(values, dict) else values, path)


def resolve(source: str | None, checkpoint: str) -> tuple[RewardWeights, str]:
    """The settings to score ``checkpoint`` with, and a one-line account of where they came from.

    Parameters
    ----------
    source : str or None
        ``--reward_from``: a PPO run folder or checkpoint (its :data:`RUN_CONFIG`), a YAML or JSON
        file of :class:`RewardWeights` fields (flat, or under ``reward:``), or ``"default"``.
        None: the settings recorded by the PPO run ``checkpoint`` belongs to, else the defaults.
    checkpoint : str
        The policy folder being evaluated.

    Raises
    ------
    ConfigError
        ``source`` names nothing readable, or settings that fail validation.
    """
    if source == DEFAULT:
        return RewardWeights(), "defaults (--reward_from default)"
    if source is None:
        found = recorded(checkpoint)
        if found is not None:
            return found[0], f"{found[1]} (the run the checkpoint was trained in)"
        return RewardWeights(), "defaults (the checkpoint's run recorded none)"
    if os.path.isdir(source):
        found = recorded(source)
        if found is None:
            raise ConfigError(f"reward_from {source!r}: no {RUN_CONFIG} in it or its parent")
        return found[0], f"{found[1]} (--reward_from)"
    if not os.path.isfile(source):
        raise ConfigError(f"reward_from {source!r}: no such file or folder")
    return _from_file(source), f"{source} (--reward_from)"


def as_written(weights: RewardWeights, source: str) -> tuple[RewardWeights, str]:
    """``(weights, source)`` as ``rl.eval`` scores with them: every program graded as written
    (``fit_size`` off). ``rl.eval`` scores the programs fitted to the size as records of their own
    (mode ``fitted``), so a greedy record is never fitted behind its back."""
    if not weights.fit_size:
        return weights, source
    note = "fit_size off: fitted programs are records of their own"
    return dataclasses.replace(weights, fit_size=False), f"{source}; {note}"
