"""rl.ppo records the reward settings it trained with where rl.eval finds them (configs.reward)."""

from __future__ import annotations

import json
import os

from configs.reward import RUN_CONFIG, resolve
from reward.score import RewardWeights
from rl.ppo import run
from tests.rl.conftest import build_tiny_policy
from tests.rl.test_ppo_on_cpu import LengthReward, toy_config, toy_rows


def test_a_run_records_its_reward_settings_and_eval_of_its_checkpoint_uses_them(tmp_path):
    checkpoint = str(tmp_path / "sft_final")
    build_tiny_policy().save(checkpoint)
    config = toy_config(checkpoint, tmp_path, "ppo", iterations=1, **{"reward.iou": 2, "reward.valid": 0.5})
    summary = run(config, LengthReward(), toy_rows())
    trained = RewardWeights(iou=2.0, valid=0.5)
    written = [json.loads((tmp_path / "ppo" / name).read_text()) for name in ("ppo_summary.json", RUN_CONFIG)]
    assert summary["reward"] == written[0]["reward"] == written[1]["reward"]
    assert RewardWeights(**summary["reward"]) == trained
    for folder in (summary["final"], os.path.join(summary["run_dir"], "checkpoint-1")):
        weights, source = resolve(None, folder)
        assert weights == trained and RUN_CONFIG in source
