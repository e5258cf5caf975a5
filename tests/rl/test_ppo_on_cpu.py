"""rl.ppo on CPU: a toy reward improves, KL starts at 0, a killed run resumes exactly, the render path runs.

The policy is a tiny from-config model (the four views tiled at 256 px, 64 px patches -> 4
image tokens, two text layers of width 32, vocabulary 400) saved as the "SFT checkpoint". Most
tests inject a toy reward (program length near 20 characters) through ``rl.ppo.run``'s
``rewarder`` seam, so the PPO math is tested without OpenSCAD; one subprocess smoke test runs
the real reward on a 6-part corpus with ``--workers 0``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from configs.loader import load
from configs.ppo import PPOConfig
from reward.score import RewardBreakdown
from rl.ppo_state import read_metrics
from tests.rl.conftest import FAST_FAMILIES, ROOT, build_tiny_policy, run_module

TOY = {"batch_size": 4, "k": 8, "minibatch_size": 8, "ppo_epochs": 2, "learning_rate": 1e-2,
       "length_guard": False, "tensorboard": False, "records_every": 1000, "save_every": 1000,
       "workers": 0, "kl_coef": 0.01}
NOT_COMPARED = ("timing_s/", "charts/samples_per_s")


class LengthReward:
    """Toy reward: -|len(code) - 20| / 20 (a class, so it would pickle like a real reward)."""

    invalid_penalty = -1.0

    def __init__(self, fail_after: int | None = None, delay_s: float = 0.0):
        self.calls = 0
        self.fail_after = fail_after
        self.delay_s = delay_s

    def score(self, codes, rows, views):
        self.calls += 1
        time.sleep(self.delay_s)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        return [RewardBreakdown(total=-abs(len(c) - 20) / 20, ssim=0.0, chamfer=0.0, iou=0.0, valid=1.0,
                                status="ok", seconds=0.0) for c in codes]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ppo") / "sft_final")
    build_tiny_policy().save(path)
    return path


def toy_rows() -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"id": f"t{i}", "image": rng.integers(0, 256, size=(128, 128), dtype=np.uint8)} for i in range(4)]


@pytest.fixture(scope="module")
def rows():
    return toy_rows()


TOY_SCRIPT = """
import sys
from rl.ppo import run
from tests.rl.test_ppo_on_cpu import LengthReward, toy_config, toy_rows
checkpoint, runs, name, iterations = sys.argv[1:]
config = toy_config(checkpoint, runs, name, iterations=int(iterations), save_every=1)
run(config, LengthReward(delay_s=0.3), toy_rows())
"""


def toy_process(checkpoint: str, runs, name: str, iterations: int) -> subprocess.Popen:
    """rl.ppo.run with the toy reward in a child process (so it can be SIGKILLed)."""
    args = [sys.executable, "-c", TOY_SCRIPT, checkpoint, str(runs), name, str(iterations)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def toy_config(checkpoint: str, runs_dir, name: str, **overrides) -> PPOConfig:
    values = {**TOY, "checkpoint": checkpoint, "runs_dir": str(runs_dir), "name": name, **overrides}
    return load(PPOConfig, None, [f"{k}={v}" for k, v in values.items()])


@pytest.fixture(scope="module")
def toy_run(checkpoint, rows, tmp_path_factory):
    from rl.ppo import run

    runs = tmp_path_factory.mktemp("toy_runs")
    summary = run(toy_config(checkpoint, runs, "toy", iterations=8), rewarder=LengthReward(), rows=rows)
    return summary, read_metrics(summary["run_dir"])


def test_toy_reward_improves_within_a_few_iterations(toy_run):
    _, metrics = toy_run
    rewards = [m["reward/total/mean"] for m in metrics]
    assert len(rewards) == 8
    assert np.mean(rewards[-2:]) > rewards[0] + 0.2, rewards


def test_kl_to_reference_is_zero_before_the_first_update_and_finite_after(toy_run):
    _, metrics = toy_run
    assert metrics[0]["kl/ref_mean"] == 0.0 and metrics[0]["kl/ref_token_mean"] == 0.0
    later = [m["kl/ref_mean"] for m in metrics[1:]]
    assert all(math.isfinite(v) for v in later) and any(v != 0.0 for v in later)
    for key in ("losses/pg_loss", "losses/v_loss", "losses/kl_loss", "losses/approx_kl", "losses/clipfrac",
                "losses/entropy", "losses/explained_var", "kl/coef", "reward/invalid_frac",
                "reward/infra_failed_frac", "reward/duplicate_frac", "charts/samples_per_s",
                "timing_s/generate", "timing_s/render", "timing_s/update"):
        assert key in metrics[-1], key


def test_updates_move_the_ratio_off_one_and_clip(toy_run):
    # old log-probs are the rollout policy's: after the first minibatch step the ratio leaves 1
    _, metrics = toy_run
    assert max(m["losses/approx_kl"] for m in metrics) > 1e-4
    assert max(m["losses/clipfrac"] for m in metrics) > 0.01


def test_adaptive_kl_coefficient_moves_within_a_short_run(toy_run):
    # 8 iterations: a horizon of 1 iteration; the KL starts at 0, far below the target of 6
    _, metrics = toy_run
    coefs, kls = [m["kl/coef"] for m in metrics], [m["kl/ref_mean"] for m in metrics]
    assert coefs[0] == TOY["kl_coef"]
    for i in range(len(metrics) - 1):  # each iteration's coefficient follows from the last one's KL
        step = min(max(kls[i] / 6.0 - 1, -0.2), 0.2)
        assert coefs[i + 1] == pytest.approx(coefs[i] * (1 + step)), i
    assert max(coefs) / min(coefs) > 2  # not the <= 1.3 % of a 10,000-program horizon


def test_killed_run_resumes_with_the_same_next_iteration_metrics(checkpoint, rows, tmp_path):
    from rl.ppo import run

    straight = run(toy_config(checkpoint, tmp_path, "straight", iterations=3), LengthReward(), rows)
    config = toy_config(checkpoint, tmp_path, "killed", iterations=3, save_every=1)
    with pytest.raises(KeyboardInterrupt):  # dies inside iteration 3, after checkpoint-2
        run(config, LengthReward(fail_after=2), rows)
    assert not os.path.exists(tmp_path / "killed" / "checkpoint-3")
    with open(tmp_path / "killed" / "metrics.jsonl", "a") as fh:  # a line cut short by the kill
        fh.write('{"iteration": 3, "reward/tot')
    resumed = run(config, LengthReward(), rows)
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["iterations_this_run"] == 1
    expected, got = read_metrics(straight["run_dir"])[-1], read_metrics(resumed["run_dir"])
    assert [m["iteration"] for m in got] == [1, 2, 3]
    for key, value in expected.items():
        if not key.startswith(NOT_COMPARED):
            assert got[-1][key] == value or (value is None and got[-1][key] is None), key


def test_sigkilled_process_resumes_with_the_same_metrics_as_an_uninterrupted_run(checkpoint, tmp_path):
    straight = toy_process(checkpoint, tmp_path, "straight", 5)
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err[-2000:]
    killed = toy_process(checkpoint, tmp_path, "killed", 5)
    deadline = time.monotonic() + 300
    while not (tmp_path / "killed" / "checkpoint-2" / "state.json").exists():
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before checkpoint-2"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # no handler runs: whatever is half-written stays half-written
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "ppo_summary.json").exists()
    resumed = toy_process(checkpoint, tmp_path, "killed", 5)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    summary = json.loads((tmp_path / "killed" / "ppo_summary.json").read_text())
    assert summary["resumed_from"] is not None and summary["iterations_this_run"] < 5
    expected, got = read_metrics(str(tmp_path / "straight")), read_metrics(str(tmp_path / "killed"))
    assert [m["iteration"] for m in got] == [1, 2, 3, 4, 5]
    for want, have in zip(expected, got, strict=True):
        for key, value in want.items():
            if not key.startswith(NOT_COMPARED):
                assert have[key] == value, (want["iteration"], key)


def test_grpo_estimator_runs_without_a_critic(checkpoint, rows, tmp_path):
    from rl.ppo import run

    config = toy_config(checkpoint, tmp_path, "grpo", iterations=2, estimator="grpo")
    summary = run(config, LengthReward(), rows)
    metrics = read_metrics(summary["run_dir"])
    assert metrics[-1]["losses/v_loss"] == 0.0 and metrics[-1]["losses/explained_var"] is None
    assert os.path.exists(os.path.join(summary["final"], "policy.json"))


def test_length_guard_penalises_truncated_programs_and_duplicates_are_counted():
    from rl.ppo_loop import duplicate_fraction, score_samples

    eos = 2
    tokens = torch.tensor([[5, 6, eos, 0], [5, 6, 7, 8]])
    rollout = types.SimpleNamespace(tokens=tokens, mask=torch.ones_like(tokens, dtype=torch.bool),
                                    texts=["cube(1);", "cube(1); cube(2);"])
    learner = types.SimpleNamespace(policy=types.SimpleNamespace(eos_ids=[eos]), rewarder=LengthReward(),
                                    config=types.SimpleNamespace(length_guard=True))
    breakdowns, truncated, _ = score_samples(learner, rollout, [{"id": "a"}], 2, 1, None)
    assert truncated == [False, True]
    assert breakdowns[0].status == "ok"
    assert breakdowns[1].status == "truncated" and breakdowns[1].total == -1.0
    assert duplicate_fraction(["x", "x", "y", "x"], ["a", "a", "b", "b"]) == 0.75


def test_missing_checkpoint_and_bad_learner_counts_are_one_line_errors(tmp_path, capsys):
    from rl.ppo import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(tmp_path / "nothing"), "--runs_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rl.ppo: error:")]
    assert len(errors) == 1 and "python -m rl.sft" in errors[0]
    with pytest.raises(SystemExit):
        main(["--ray_workers", "3", "--batch_size", "4", "--runs_dir", str(tmp_path)])
    assert "batch_size must divide by the 3 learners" in capsys.readouterr().err


def test_shipped_yaml_is_the_defaults_and_bad_values_name_the_field():
    from configs.loader import ConfigError, field_help

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert load(PPOConfig, os.path.join(root, "configs", "ppo.yaml")) == PPOConfig()
    assert set(field_help(PPOConfig)) == {f for f in PPOConfig.__dataclass_fields__}
    with pytest.raises(ConfigError, match="estimator must be one of gae, grpo"):
        load(PPOConfig, None, ["estimator=ppo2"])
    with pytest.raises(ConfigError, match="k must be >= 2"):
        load(PPOConfig, None, ["estimator=grpo", "k=1"])
    with pytest.raises(ConfigError, match="kl_kind must be k3 or mse with estimator grpo"):
        load(PPOConfig, None, ["estimator=grpo", "kl_kind=k1"])
    with pytest.raises(ConfigError, match="grpo_baseline must be one of group, greedy"):
        load(PPOConfig, None, ["estimator=grpo", "grpo_baseline=best"])
    with pytest.raises(ConfigError, match="grpo_baseline must be group unless estimator is grpo"):
        load(PPOConfig, None, ["estimator=gae", "grpo_baseline=greedy"])
    with pytest.raises(ConfigError, match="unknown config key 'kl_horizon'"):  # it counted programs
        load(PPOConfig, None, ["kl_horizon=10000"])


@pytest.fixture(scope="module")
def six_part_corpus(tmp_path_factory) -> str:
    if shutil.which("openscad") is None:
        pytest.skip("OpenSCAD CLI not installed (apt-get install openscad)")
    from corpus.build import BuildSettings, build

    out = str(tmp_path_factory.mktemp("ppo_corpus") / "corpus")
    settings = BuildSettings(n=6, out=out, workers=0, families=FAST_FAMILIES, holdout=("panel",),
                             fractions=(0.8, 0.1, 0.1))
    info = build(settings, progress=False)
    assert info["splits"]["train"] >= 1
    return out


def test_command_scores_with_openscad_and_writes_records_and_report(six_part_corpus, checkpoint, tmp_path):
    args = ["--checkpoint", checkpoint, "--corpus_dir", six_part_corpus, "--runs_dir", str(tmp_path),
            "--name", "smoke", "--workers", "0", "--iterations", "1", "--batch_size", "2", "--k", "2",
            "--minibatch_size", "4", "--max_new_tokens", "8", "--length_guard", "false",
            "--tensorboard", "false", "--threads", "1"]
    completed = run_module("rl.ppo", *args, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "reward/total/mean=" in completed.stdout
    run_dir = tmp_path / "smoke"
    (metrics,) = read_metrics(str(run_dir))
    assert metrics["reward/invalid_frac"] == 1.0 and metrics["reward/total/mean"] == -1.0  # random programs
    records_dir = run_dir / "records" / "it1"
    assert len((records_dir / "records.jsonl").read_text().splitlines()) == 4
    assert len(list((records_dir / "views").glob("*.png"))) >= 4
    assert (records_dir / "index.html").exists() and (run_dir / "final" / "policy.json").exists()
    assert (run_dir / "checkpoint-1" / "state.json").exists()


def test_ppo_trains_on_the_split_it_is_given(six_part_corpus, checkpoint):
    """``--split val``: the parts SFT never fitted; a split the corpus lacks is a one-line error."""
    from configs.cli import UsageError
    from corpus.dataset import load as load_split
    from policies import load_policy
    from rl.ppo_run import load_train_rows

    policy = load_policy(checkpoint)
    for split in ("train", "test_ood"):  # test_ood: the held-out family, panel
        config = PPOConfig(checkpoint=checkpoint, corpus_dir=six_part_corpus, split=split)
        _, rows = load_train_rows(config, policy)
        assert sorted(rows["id"]) == sorted(load_split(six_part_corpus, split, decode=False)["id"])
    assert set(load_split(six_part_corpus, "test_ood", decode=False)["family"]) == {"panel"}
    with pytest.raises(UsageError, match="no split 'nosuch'"):
        load_train_rows(PPOConfig(checkpoint=checkpoint, corpus_dir=six_part_corpus, split="nosuch"), policy)


CUBES = ("cube([4, 3, 2]);", "cube([6, 2, 1]);")


@pytest.fixture(scope="module")
def cube_writer(six_part_corpus, tmp_path_factory) -> str:
    """The tiny policy after 30 SFT steps on the train images, each labelled with a short cube."""
    from corpus.dataset import load as load_split

    images = list(load_split(six_part_corpus, "train")["image"])
    policy = build_tiny_policy(seed=0)
    batch = policy.collate(images, [CUBES[i % 2] for i in range(len(images))])
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    policy.train()
    for _ in range(30):
        optimizer.zero_grad()
        policy.model(**batch).loss.backward()
        optimizer.step()
    return policy.eval().save(str(tmp_path_factory.mktemp("cubes") / "sft_final"))


def test_real_reward_scores_valid_programs_above_the_penalty_and_the_policy_learns(
    six_part_corpus, cube_writer, tmp_path
):
    from policies import load_policy
    from rl.ppo import run
    from rl.world import parameter_checksum

    config = toy_config(cube_writer, tmp_path, "valid", corpus_dir=six_part_corpus, iterations=2,
                        batch_size=2, k=4, estimator="grpo", learning_rate=1e-3, length_guard=True,
                        records_every=1)
    summary = run(config)  # OpenSCAD and the reward on a RenderPool with workers=0
    metrics = read_metrics(summary["run_dir"])
    records = [json.loads(line) for it in (1, 2)
               for line in (tmp_path / "valid" / "records" / f"it{it}" / "records.jsonl").open()]
    valid = [r for r in records if r["valid"] > 0]
    assert len(records) == 16 and valid, [r["code"] for r in records]
    assert all(r["status"] == "ok" and r["total"] > -1.0 for r in valid)
    assert max(r["iou"] for r in valid) > 0 and max(r["ssim"] for r in valid) > 0
    assert min(m["reward/invalid_frac"] for m in metrics) < 1.0
    assert all(m["reward/infra_failed_frac"] == 0.0 for m in metrics)
    for it, m in enumerate(metrics, start=1):  # sampled IoU over the valid programs alone
        ious = [r["iou"] for r in records[8 * (it - 1):8 * it] if r["valid"] > 0]
        if ious:
            assert m["reward/iou/valid_mean"] == pytest.approx(np.mean(ious), abs=1e-9)
    assert summary["param_checksum"] != parameter_checksum(load_policy(cube_writer).model)


def test_more_gpus_than_the_cluster_has_is_one_line_and_exit_2(six_part_corpus, checkpoint, tmp_path):
    wanted = torch.cuda.device_count() + 1  # 1 here: Ray would wait for it forever
    args = ["--checkpoint", checkpoint, "--corpus_dir", six_part_corpus, "--runs_dir", str(tmp_path),
            "--gpus", str(wanted), "--batch_size", str(2 * wanted), "--k", "2"]
    completed = run_module("rl.ppo", *args, timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"rl.ppo: error: --gpus {wanted}: the Ray cluster has {wanted - 1} GPU(s)")


def test_ray_train_with_two_cpu_learners_keeps_replicas_in_sync(six_part_corpus, checkpoint, tmp_path):
    from policies import load_policy
    from rl.world import parameter_checksum

    args = ["--checkpoint", checkpoint, "--corpus_dir", six_part_corpus, "--runs_dir", str(tmp_path),
            "--name", "dp", "--ray_workers", "2", "--workers", "0", "--iterations", "2", "--batch_size", "2",
            "--k", "2", "--minibatch_size", "2", "--max_new_tokens", "8", "--length_guard", "false",
            "--tensorboard", "false", "--learning_rate", "1e-3"]
    completed = run_module("rl.ppo", *args, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "rl.ppo: it 2/2" in completed.stdout  # rank 0's lines reach the driver, each once
    lines = [line for line in completed.stdout.splitlines() if line.startswith("rl.ppo: it ")]
    assert [line.split()[2] for line in lines] == ["1/2", "2/2"], lines
    summary = json.loads((tmp_path / "dp" / "ppo_summary.json").read_text())
    checksums = summary["worker_param_checksums"]
    assert summary["world_size"] == 2 and summary["iteration"] == 2
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert checksums[0] != parameter_checksum(load_policy(checkpoint).model)  # and they did learn
    assert [m["iteration"] for m in read_metrics(str(tmp_path / "dp"))] == [1, 2]
    assert (tmp_path / "dp" / "final" / "policy.json").exists()
