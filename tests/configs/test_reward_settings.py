"""configs.reward: one source of reward settings for rl.ppo, rl.eval and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.loader import ConfigError
from configs.ppo import PPOConfig
from configs.reward import RUN_CONFIG, as_dict, as_written, recorded, resolve
from reward.score import RewardWeights

ROOT = Path(__file__).resolve().parents[2]
TRAINED = RewardWeights(iou=2.0, valid=0.5, invalid_penalty=-2.0)


def ppo_run(tmp_path, weights: RewardWeights = TRAINED) -> Path:
    """A PPO run folder as rl.ppo leaves it: ppo_config.json in the run and in final/."""
    run = tmp_path / "ppo"
    (run / "final").mkdir(parents=True)
    (run / "checkpoint-20").mkdir()
    values = PPOConfig(reward=weights).to_dict()
    for folder in (run, run / "final"):
        (folder / RUN_CONFIG).write_text(json.dumps(values))
    return run


def test_a_ppo_checkpoint_is_scored_with_the_settings_its_run_trained_with(tmp_path):
    run = ppo_run(tmp_path)
    for checkpoint in (run / "final", run / "checkpoint-20"):
        weights, source = resolve(None, str(checkpoint))
        assert weights == TRAINED and RUN_CONFIG in source and "trained in" in source


def test_rl_eval_grades_programs_as_written_when_the_run_trained_on_fitted_ones(tmp_path):
    run = ppo_run(tmp_path, RewardWeights(iou=2.0, fit_size=True))
    weights, source = as_written(*resolve(None, str(run / "final")))
    assert weights == RewardWeights(iou=2.0) and "fit_size off" in source
    assert as_written(TRAINED, "x") == (TRAINED, "x")


def test_a_checkpoint_without_a_ppo_run_gets_the_defaults_and_says_so(tmp_path):
    (tmp_path / "sft" / "final").mkdir(parents=True)
    weights, source = resolve(None, str(tmp_path / "sft" / "final"))
    assert weights == RewardWeights() and source.startswith("defaults")
    assert recorded(str(tmp_path / "sft" / "final")) is None


def test_reward_from_overrides_the_recorded_settings(tmp_path):
    run = ppo_run(tmp_path)
    assert resolve("default", str(run / "final"))[0] == RewardWeights()
    assert resolve(str(ROOT / "configs" / "reward.yaml"), str(run / "final"))[0] == RewardWeights()
    sft = tmp_path / "sft" / "final"
    sft.mkdir(parents=True)
    weights, source = resolve(str(run), str(sft))  # score the SFT policy as the PPO run was trained
    assert weights == TRAINED and "--reward_from" in source
    nested = tmp_path / "nested.yaml"  # a reward: section, as in configs/ppo.yaml
    nested.write_text("name: x\nreward:\n  iou: 3\n")
    assert resolve(str(nested), str(sft))[0] == RewardWeights(iou=3.0)


def test_settings_round_trip_through_what_runs_record():
    assert RewardWeights(**as_dict(TRAINED)) == TRAINED
    assert PPOConfig.from_dict(PPOConfig(reward=TRAINED).to_dict()).reward == TRAINED


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file or folder"),
        ("iou: 2\nweight: 3\n", "unknown config key 'weight'"),
        ("invalid_penalty: 1\n", "invalid_penalty must be <= 0"),
    ],
)
def test_bad_reward_settings_are_one_line_naming_the_problem(tmp_path, content, reason):
    path = tmp_path / "reward.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=reason) as error:
        resolve(str(path), str(tmp_path))
    assert "\n" not in str(error.value)


def test_a_folder_that_records_no_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=f"no {RUN_CONFIG}"):
        resolve(str(tmp_path), str(tmp_path))

