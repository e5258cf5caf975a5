"""PPO-ptx (rl.ppo_ptx): seeded draws of train programs, a loss whose steps fit them, the command."""

from __future__ import annotations

import pytest
import torch

from configs.cli import UsageError
from configs.ppo import PPOConfig
from rl.ppo_ptx import SFTMix, load_sft_mix
from rl.ppo_state import read_metrics
from tests.rl.conftest import build_tiny_policy, run_module


def test_draws_are_seeded_by_iteration_step_and_rank():
    rows = [{"code": f"cube({i});"} for i in range(20)]
    mix = SFTMix(rows, collator=None, batch_size=4, seed=0)
    first = mix.draw(1, 0)
    assert first == mix.draw(1, 0)  # a resumed run draws the same rows
    assert len({r["code"] for r in first}) == 4
    others = [mix.draw(1, 1), mix.draw(2, 0), SFTMix(rows, None, 4, 0, rank=1).draw(1, 0)]
    assert all(o != first for o in others)
    assert len(SFTMix(rows[:3], None, 4, 0).draw(1, 0)) == 3  # fewer rows than a batch: all of them


def test_steps_on_the_mixed_loss_fit_the_train_programs(tiny_corpus):
    policy = build_tiny_policy(seed=0)
    mix = load_sft_mix(PPOConfig(ptx_coef=1.0, ptx_batch_size=4), policy, tiny_corpus)
    assert len(mix.rows) >= 8 and {"code", "image", "views"} <= set(mix.rows.column_names)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    policy.train()

    def held_loss() -> float:  # the same eight rows before and after
        with torch.no_grad():
            return sum(float(mix.loss(policy, 0, s)) for s in range(2)) / 2

    before = held_loss()
    for step in range(20):
        optimizer.zero_grad()
        loss = mix.loss(policy, 1, step)
        assert loss.requires_grad and torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    assert held_loss() < 0.8 * before


def test_off_by_default_and_needs_a_corpus(tiny_corpus):
    policy = build_tiny_policy(seed=0)
    assert load_sft_mix(PPOConfig(), policy, tiny_corpus) is None
    with pytest.raises(UsageError, match="needs a corpus"):
        load_sft_mix(PPOConfig(ptx_coef=0.5), policy, None)
    with pytest.raises(ValueError, match="ptx_coef"):
        PPOConfig(ptx_coef=-1.0)


def test_command_logs_the_mixed_loss(tiny_corpus, tmp_path):
    checkpoint = build_tiny_policy(seed=0).save(str(tmp_path / "sft_final"))
    args = ["--checkpoint", checkpoint, "--corpus_dir", tiny_corpus, "--runs_dir", str(tmp_path),
            "--name", "ptx", "--workers", "0", "--iterations", "1", "--batch_size", "2", "--k", "2",
            "--minibatch_size", "4", "--max_new_tokens", "8", "--length_guard", "false",
            "--tensorboard", "false", "--threads", "1", "--ptx_coef", "0.5", "--ptx_batch_size", "4"]
    completed = run_module("rl.ppo", *args, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    (metrics,) = read_metrics(str(tmp_path / "ptx"))
    assert metrics["losses/ptx_loss"] > 0
