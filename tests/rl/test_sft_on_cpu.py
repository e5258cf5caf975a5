"""rl.sft: runs end to end, training lowers the loss, a stopped run resumes, bad input is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import TrainerCallback

from configs.policy import PolicyConfig
from rl.sft_trainer import build_trainer, last_checkpoint
from tests.rl.conftest import ROOT, run_module, sft_args, sft_config


def test_smoke_command_writes_final_policy_and_summary(smoke_run):
    completed, run_dir = smoke_run
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(open(os.path.join(run_dir, "sft_summary.json")).read())
    assert summary["global_step"] == 4 and summary["steps_this_run"] == 4
    for key in ("wall_seconds", "examples_per_s", "tokens_per_s", "steady_steps_per_s", "train_loss_last"):
        assert summary[key] > 0, key
    assert {"eval/valid_frac", "eval/reward_mean", "eval/iou_mean", "eval/ssim_mean"} <= set(summary["eval"])
    assert os.path.exists(os.path.join(run_dir, "final", "policy.json"))
    assert os.path.exists(os.path.join(run_dir, "final", "sft_config.json"))
    assert "train/loss=" in completed.stdout + completed.stderr  # one metrics line per logging step
    assert "eval/valid_frac=" in completed.stdout + completed.stderr


def test_step_clock_rate_leaves_the_slow_start_out():
    """Six steps ending at 10, 11, ... 15 s: the first took 10 s of start-up; the steady rate
    is the last three steps over the 3 s they took, not 6 steps in 15 s."""
    from rl.sft_callbacks import StepClock

    ends = iter((10.0, 11.0, 12.0, 13.0, 14.0, 15.0))
    clock = StepClock(clock=lambda: next(ends))
    assert clock.steady_rate() is None
    for _ in range(6):
        clock.on_step_end(None, None, None)
    assert clock.steady_rate() == pytest.approx(1.0)


def test_steps_lower_the_loss_and_change_every_parameter(tiny_corpus, tmp_path):
    from policies import build_policy
    from rl.sft_setup import load_splits

    config = sft_config(tiny_corpus, str(tmp_path), "loss", max_steps=8, learning_rate=3e-3, warmup_steps=0,
                        save_steps=1000, lr_scheduler="constant")
    train, _ = load_splits(tiny_corpus, PolicyConfig())
    policy = build_policy(config.policy, texts=train["code"])
    batch = policy.collate(train["image"][:4], train["code"][:4])
    with torch.no_grad():
        before_loss = policy.model(**batch).loss.item()
    before = {name: p.detach().clone() for name, p in policy.model.named_parameters()}
    build_trainer(config, policy, train, str(tmp_path / "run")).train()
    with torch.no_grad():
        after_loss = policy.model(**batch).loss.item()
    assert after_loss < before_loss - 0.3
    unchanged = [n for n, p in policy.model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []


def test_rerun_resumes_from_the_last_checkpoint(tiny_corpus, tmp_path):
    from rl.sft import run

    first = run(sft_config(tiny_corpus, str(tmp_path), "resume", max_steps=2, save_steps=2, eval_steps=0))
    assert first["global_step"] == 2 and first["resumed_from"] is None
    second = run(sft_config(tiny_corpus, str(tmp_path), "resume", max_steps=4, save_steps=2, eval_steps=0))
    assert second["resumed_from"].endswith("checkpoint-2")
    assert second["start_step"] == 2 and second["steps_this_run"] == 2 and second["global_step"] == 4
    state = json.loads(open(tmp_path / "resume" / "checkpoint-4" / "trainer_state.json").read())
    assert state["global_step"] == 4
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]


@pytest.mark.slow
def test_killed_run_resumes_when_the_same_command_runs_again(tiny_corpus, tmp_path):
    """A real SIGKILL mid-training; the same command then continues from the last complete checkpoint."""
    args = sft_args(tiny_corpus, str(tmp_path), "killed", max_steps=60, save_steps=2, eval_steps=0)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "rl.sft", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while last_checkpoint(str(run_dir)) is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = last_checkpoint(str(run_dir))
    assert killed_at is not None and not os.path.exists(run_dir / "final")
    args[args.index("--max_steps") + 1] = str(int(killed_at.rsplit("-", 1)[1]) + 2)
    completed = run_module("rl.sft", *args)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads((run_dir / "sft_summary.json").read_text())
    assert summary["resumed_from"] == killed_at and summary["steps_this_run"] == 2


@pytest.mark.slow
def test_ray_train_with_two_cpu_workers_keeps_replicas_in_sync(tiny_corpus, tmp_path):
    args = sft_args(tiny_corpus, str(tmp_path), "ray", ray_workers=2, max_steps=2, save_steps=2,
                    eval_steps=0, per_device_batch_size=2)
    completed = run_module("rl.sft", *args)
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((tmp_path / "ray" / "sft_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 2
    checksums = summary["worker_param_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert (tmp_path / "ray" / "final" / "policy.json").exists()
    assert "train/loss=" in completed.stdout  # rank 0's metrics lines reach the driver


def test_a_distributed_run_starts_the_ray_cluster_once(tiny_corpus, tmp_path, monkeypatch):
    import rl.sft_dist
    from rl.sft import run

    started = []
    monkeypatch.setattr(rl.sft_dist, "ensure_ray", lambda *args: started.append(args) or 0.0)
    monkeypatch.setattr(rl.sft_dist, "check_gpus", lambda gpus: None)
    ranks = [{"rank": 0, "param_checksum": 1.0, "global_step": 0}]
    monkeypatch.setattr(rl.sft_dist, "fit", lambda *args: ranks)
    summary = run(sft_config(tiny_corpus, str(tmp_path), "once", ray_workers=2, max_steps=1))
    assert len(started) == 1 and summary["worker_param_checksums"] == [1.0]


def test_more_gpus_than_the_cluster_has_is_one_line_and_exit_2(tiny_corpus, tmp_path):
    wanted = torch.cuda.device_count() + 1  # 1 here: Ray would wait for it forever
    completed = run_module("rl.sft", *sft_args(tiny_corpus, str(tmp_path), "gpus", gpus=wanted), timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"rl.sft: error: --gpus {wanted}: the Ray cluster has {wanted - 1} GPU(s)")
    assert not (tmp_path / "gpus").exists()  # refused before the run folder was started


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--bogus", "1"], "unrecognized arguments: --bogus"),
        (["--max_steps", "0"], "max_steps must be >= 1"),
        (["--policy.text_heads", "5"], "text_heads must divide text_hidden"),
        (["--corpus_dir", "/nonexistent/corpus"], "'/nonexistent/corpus' holds no corpus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, expected, capsys, tmp_path):
    from rl.sft import main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--runs_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("rl.sft: error: ") and err.count("\n") == 1 and expected in err


def test_unknown_yaml_key_and_image_size_mismatch_are_one_line(tiny_corpus, tmp_path, capsys):
    from rl.sft import main

    config = tmp_path / "bad.yaml"
    config.write_text("max_step: 3\n")
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    assert "unknown config key 'max_step'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(sft_args(tiny_corpus, str(tmp_path), "size", policy__image_size=64))
    err = capsys.readouterr().err
    assert "policy.image_size is 64" in err and "128x128" in err and err.count("\n") == 1


def test_missing_corpus_exits_2_from_the_command_line(tmp_path):
    completed = run_module("rl.sft", "--corpus_dir", str(tmp_path / "none"), "--runs_dir", str(tmp_path))
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0 and "holds no corpus" in completed.stderr


def test_missing_corpus_is_built_when_asked(tmp_path):
    from rl.sft_setup import ensure_corpus, has_corpus

    config = sft_config(str(tmp_path / "built"), str(tmp_path), "b", build_corpus="yes", corpus_n=6,
                        corpus_workers=0)
    assert ensure_corpus(config, progress=False) == str(tmp_path / "built")
    assert has_corpus(str(tmp_path / "built"))


def test_a_nan_loss_stops_training_with_one_line_and_no_final(tiny_corpus, tmp_path):
    from policies import build_policy
    from rl.sft_setup import TrainingDiverged, load_splits

    config = sft_config(tiny_corpus, str(tmp_path), "nan", max_steps=6, logging_steps=1, save_steps=1000)
    train, _ = load_splits(tiny_corpus, PolicyConfig())
    policy = build_policy(config.policy, texts=train["code"])
    steps = []
    # From the third step on, the logits are NaN (as a CUDA kernel's NaN gradient leaves them).
    hook = policy.model.get_output_embeddings().register_forward_hook(
        lambda _module, _inputs, logits: logits * float("nan") if len(steps) >= 2 else logits)
    trainer = build_trainer(config, policy, train, str(tmp_path / "run"))
    counter = type("Count", (TrainerCallback,), {"on_step_end": lambda *a, **k: steps.append(1)})
    trainer.add_callback(counter())
    with pytest.raises(TrainingDiverged, match=r"diverged by step 3: train/(loss|grad_norm) is nan"):
        trainer.train()
    hook.remove()
    assert len(steps) == 3, "stopped at the first log event after the NaN step"
