"""rl.ppo_state's trainer_state.pt: RNG and AdamW state load without pickle; a crafted file never runs.

Each test adversarially checks one property. The resume tests that SIGKILL a run and compare
metrics live in ``tests/rl/test_ppo_on_cpu.py``.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from configs.cli import UsageError
from rl.ppo_state import (
    TRAINER_FORMAT,
    TRAINER_STATE,
    read_trainer_state,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from tests.rl.conftest import build_tiny_policy
from tests.rl.test_ppo_on_cpu import LengthReward, toy_config, toy_rows


class Payload:
    """Unpickling this object opens (creates) ``marker`` for writing: code run from the file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _adamw_after_one_step() -> torch.optim.AdamW:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return optimizer


def _draws() -> tuple:
    """Draws from every generator the trainer seeds, gaussian caches included."""
    return (random.random(), random.gauss(0, 1), np.random.standard_normal(), np.random.rand(),
            torch.rand(3).tolist())


@pytest.fixture(scope="module")
def sft_checkpoint(tmp_path_factory) -> str:
    """A tiny from-config policy saved as the "SFT checkpoint"."""
    path = str(tmp_path_factory.mktemp("ppo_state") / "sft_final")
    build_tiny_policy().save(path)
    return path


def _run_with_trainer_state(sft_checkpoint: str, runs_dir, name: str, trainer) -> str:
    """A run folder whose checkpoint-1 has a real policy and ``trainer`` as its trainer_state.pt."""
    from policies import load_policy

    folder = os.path.join(str(runs_dir), name, "checkpoint-1")
    load_policy(sft_checkpoint).save(os.path.join(folder, "policy"))
    with open(os.path.join(folder, "state.json"), "w") as fh:
        json.dump({"iteration": 1, "data_position": 4, "kl_coef": 0.01}, fh)
    torch.save(trainer, os.path.join(folder, TRAINER_STATE))
    return folder


def test_rng_and_adamw_state_come_back_exactly_from_a_weights_only_load(tmp_path):
    optimizer = _adamw_after_one_step()
    random.gauss(0, 1), np.random.standard_normal()  # leave a cached gaussian in both generators
    path = str(tmp_path / TRAINER_STATE)
    torch.save({"format": TRAINER_FORMAT, "optimizer": optimizer.state_dict(), "rng": rng_states()}, path)
    expected = _draws()
    loaded = torch.load(path, weights_only=True)  # the strict loader alone accepts the file
    set_rng_states(loaded["rng"])
    assert _draws() == expected
    restored = torch.optim.AdamW(optimizer.param_groups[0]["params"], lr=1e-3)
    restored.load_state_dict(read_trainer_state(path)["optimizer"])
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(restored.state_dict()["state"][0][key], value), key


def test_checkpoint_written_by_save_checkpoint_loads_with_weights_only(sft_checkpoint, tmp_path):
    from policies import load_policy
    from rl.ppo_state import TrainState

    policy, optimizer = load_policy(sft_checkpoint), _adamw_after_one_step()
    folder = save_checkpoint(str(tmp_path), policy, optimizer, TrainState(3, 12))
    trainer = torch.load(os.path.join(folder, TRAINER_STATE), weights_only=True)
    assert trainer["format"] == TRAINER_FORMAT and set(trainer) == {"format", "optimizer", "rng"}


def test_crafted_trainer_state_is_refused_on_resume_and_its_code_never_runs(sft_checkpoint, tmp_path):
    from rl.ppo import run

    marker = tmp_path / "code_ran"
    crafted = {"format": TRAINER_FORMAT, "optimizer": Payload(str(marker)), "rng": {}}
    _run_with_trainer_state(sft_checkpoint, tmp_path, "crafted", crafted)
    config = toy_config(sft_checkpoint, tmp_path, "crafted", iterations=2)
    with pytest.raises(UsageError) as error:
        run(config, LengthReward(), toy_rows())
    assert not marker.exists()
    message = str(error.value)
    assert "\n" not in message and "refusing to resume" in message and TRAINER_STATE in message


def test_old_pickled_trainer_state_is_refused_with_one_line(tmp_path):
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    old = {"optimizer": _adamw_after_one_step().state_dict(), "rng": rng}  # format 1: pickled tuples
    path = str(tmp_path / TRAINER_STATE)
    torch.save(old, path)
    with pytest.raises(UsageError) as error:
        read_trainer_state(path)
    assert "\n" not in str(error.value) and "older scadloop" in str(error.value)


@pytest.mark.parametrize("contents", [None, b"", b"not a zip file", b"PK\x03\x04broken"])
def test_missing_or_unreadable_trainer_state_is_a_usage_error(tmp_path, contents):
    path = tmp_path / TRAINER_STATE
    if contents is not None:
        path.write_bytes(contents)
    with pytest.raises(UsageError, match="missing" if contents is None else "does not load"):
        read_trainer_state(str(path))


def test_plain_file_of_another_format_or_shape_is_refused(tmp_path):
    for value in ({"format": 1, "optimizer": {}, "rng": {}}, [1, 2, 3]):
        path = str(tmp_path / TRAINER_STATE)
        torch.save(value, path)
        with pytest.raises(UsageError, match="expected 2"):
            read_trainer_state(path)


def test_plain_state_that_does_not_fit_the_optimizer_is_refused(sft_checkpoint, tmp_path):
    from rl.ppo import run

    bad = {"format": TRAINER_FORMAT, "optimizer": {"state": {}, "param_groups": []}, "rng": {}}
    _run_with_trainer_state(sft_checkpoint, tmp_path, "misfit", bad)
    with pytest.raises(UsageError, match="do not fit"):
        run(toy_config(sft_checkpoint, tmp_path, "misfit", iterations=2), LengthReward(), toy_rows())
