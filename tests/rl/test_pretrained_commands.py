"""The pretrained + LoRA backend through the real commands, rl.sft -> rl.ppo -> rl.predict, for the
two families people bring: SmolVLM / Idefics3 and Qwen2-VL (random weights, built from config and
saved like hub checkpoints; Qwen2-VL's processor loads without torchvision, as the image-only
form of :mod:`policies.processors`). Each command runs as a user runs it, in its own process."""

from __future__ import annotations

import json
import os

import pytest

from tests.rl.conftest import run_module

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")]


@pytest.fixture(scope="module")
def tokenizer():
    from policies.tokenizer import corpus_texts, train_tokenizer

    return train_tokenizer(corpus_texts(300), vocab_size=600)


@pytest.mark.parametrize("family", ["idefics3", "qwen2_vl"])
def test_sft_ppo_and_predict_commands_run_a_pretrained_backbone(family, tiny_corpus, tokenizer, tmp_path):
    from tests.policies.hub_models import save_idefics3, save_qwen

    base = str(tmp_path / family)
    save_idefics3(base, tokenizer) if family == "idefics3" else save_qwen(family, base, tokenizer)
    runs = str(tmp_path / "runs")
    sft = run_module(
        "rl.sft", "--corpus_dir", tiny_corpus, "--runs_dir", runs, "--name", "sft",
        "--policy.kind", "pretrained", "--policy.model_name_or_path", base, "--policy.lora_r", "4",
        "--policy.lora_alpha", "8", "--policy.max_new_tokens", "16", "--max_steps", "2",
        "--per_device_batch_size", "2", "--save_steps", "2", "--eval_steps", "2", "--eval_samples", "2",
        "--eval_max_new_tokens", "8", "--logging_steps", "1", "--threads", "1", timeout=400)
    assert sft.returncode == 0, sft.stderr[-2000:]
    final = os.path.join(runs, "sft", "final")
    with open(os.path.join(final, "policy.json")) as fh:
        assert json.load(fh)["config"]["model_name_or_path"] == base

    ppo = run_module(
        "rl.ppo", "--checkpoint", final, "--corpus_dir", tiny_corpus, "--runs_dir", runs, "--name", "ppo",
        "--workers", "0", "--iterations", "1", "--batch_size", "2", "--k", "2", "--minibatch_size", "4",
        "--max_new_tokens", "8", "--tensorboard", "false", "--threads", "1", timeout=400)
    assert ppo.returncode == 0, ppo.stderr[-2000:]
    assert "reward/total/mean=" in ppo.stdout

    from corpus.dataset import load

    picture = tmp_path / "part.png"
    load(tiny_corpus, "test")[0]["image"].save(picture)
    out = tmp_path / "predicted"
    predict = run_module("rl.predict", str(picture), "--checkpoint", os.path.join(runs, "ppo", "final"),
                         "--k", "2", "--max_new_tokens", "8", "--out", str(out), "--threads", "1",
                         timeout=400)
    assert predict.returncode == 0, predict.stderr[-2000:]
    candidates = json.loads((out / "candidates.json").read_text())
    assert len(candidates["candidates"]) == 2 and (out / "prediction.scad").exists()
