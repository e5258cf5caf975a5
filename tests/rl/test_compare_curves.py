"""rl.compare (paired bootstrap intervals over two evaluations) and rl.curves (the PPO reward plot)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rl import compare, curves
from rl.cli import UsageError
from tests.rl.conftest import run_module


def write_eval(folder, split: str, rewards: list[float], ious: list[float] | None = None) -> str:
    """An rl.eval-shaped folder: one greedy record per target (reward < 0: invalid) and metrics.json."""
    folder.mkdir(parents=True)
    ious = ious or [max(r, 0.0) for r in rewards]
    with open(folder / "records.jsonl", "w") as fh:
        for i, (reward, iou) in enumerate(zip(rewards, ious, strict=True)):
            valid = 1.0 if reward >= 0 else 0.0
            fh.write(
                json.dumps(
                    {
                        "id": f"t{i}/greedy",
                        "target_id": f"t{i}",
                        "code": "cube(1);",
                        "status": "ok",
                        "total": reward,
                        "iou": iou,
                        "valid": valid,
                        "extra": {"mode": "greedy"},
                    }
                )
                + "\n"
            )
            fh.write(
                json.dumps(
                    {
                        "id": f"t{i}/sample0",
                        "target_id": f"t{i}",
                        "code": "",
                        "status": "ok",
                        "total": 5.0,
                        "iou": 1.0,
                        "valid": 1.0,
                        "extra": {"mode": "sample"},
                    }
                )
                + "\n"
            )
    invalid = sum(r < 0 for r in rewards) / len(rewards)
    greedy = {
        "invalid_ratio": invalid,
        "reward_mean": float(np.mean(rewards)),
        "iou_mean": 0.5,
        "ssim_mean": 0.4,
        "chamfer_distance_median": 0.3,
        "protocol": {"ir": invalid, "cd_median_x1e3": 20.0, "iou_mean": 0.5},
    }
    (folder / "metrics.json").write_text(json.dumps({"split": split, "greedy": greedy}))
    return str(folder)


def test_a_clear_improvement_has_an_interval_above_zero_and_no_change_has_none(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.6, size=40)
    a = write_eval(tmp_path / "a", "test", list(base))
    b = write_eval(tmp_path / "b", "test", list(base + 0.2 + rng.normal(0, 0.05, size=40)))
    result = compare.compare(a, b, ("SFT", "PPO"))
    reward = result["paired_bootstrap"]["reward"]
    assert result["n_paired"] == 40
    assert reward["difference"] == pytest.approx(reward["b_mean"] - reward["a_mean"])
    assert (
        0.1 < reward["ci95"][0] < reward["difference"] < reward["ci95"][1] < 0.3 and reward["excludes_zero"]
    )
    same = compare.compare(a, a)["paired_bootstrap"]["reward"]
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and not same["excludes_zero"]
    # only greedy records are paired: the sample records (total 5.0) are not in the means
    assert reward["a_mean"] == pytest.approx(base.mean())


def test_noise_without_a_shift_gives_an_interval_around_zero(tmp_path):
    rng = np.random.default_rng(1)
    a = write_eval(tmp_path / "a", "test", list(rng.uniform(0, 1, size=60)))
    b = write_eval(tmp_path / "b", "test", list(rng.uniform(0, 1, size=60)))
    low, high = compare.compare(a, b)["paired_bootstrap"]["reward"]["ci95"]
    assert low < 0 < high


def test_invalid_programs_count_zero_iou_and_one_invalid(tmp_path):
    a = write_eval(tmp_path / "a", "test", [-1.0, -1.0, 0.5, 0.5], [0.0, 0.0, 0.6, 0.6])
    b = write_eval(tmp_path / "b", "test", [0.5, 0.5, 0.5, 0.5], [0.6, 0.6, 0.6, 0.6])
    paired = compare.compare(a, b)["paired_bootstrap"]
    assert paired["invalid"]["a_mean"] == 0.5 and paired["invalid"]["b_mean"] == 0.0
    assert paired["IoU (invalid = 0)"]["difference"] == pytest.approx(0.3)


def test_table_and_files_and_bad_input(tmp_path):
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, 0.5])
    ood = write_eval(tmp_path / "ood", "test_ood", [0.1, 0.2, 0.3])
    table = compare.table_markdown(compare.compare(a, b, ("SFT", "PPO")))
    assert "| reward mean | 0.200 | 0.400 | +0.200 |" in table
    json_path, md_path = compare.write(compare.compare(a, b), str(tmp_path / "out"))
    assert json.load(open(json_path))["split"] == "test" and open(md_path).read().startswith("split `test`")
    with pytest.raises(UsageError, match="different splits"):
        compare.compare(a, ood)
    completed = run_module("rl.compare", a, str(tmp_path / "nowhere"))
    assert completed.returncode == 2 and len(completed.stderr.strip().splitlines()) == 1
    assert "not an rl.eval output folder" in completed.stderr


def test_curves_plot_every_panel_and_reject_an_empty_run(tmp_path):
    lines = [
        {
            "iteration": i,
            "reward/total/mean": 0.1 * i,
            "reward/ssim/mean": 0.2,
            "reward/chamfer/mean": 0.3,
            "reward/iou/mean": None,
            "reward/invalid_frac": 1 - 0.1 * i,
            "reward/truncated_frac": 0.0,
            "reward/duplicate_frac": 0.0,
            "kl/ref_mean": 0.5 * i,
            "kl/coef": 0.05,
        }
        for i in range(1, 11)
    ]
    run = tmp_path / "ppo"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in reversed(lines)))
    assert [line["iteration"] for line in curves.read_metrics(str(run))] == list(range(1, 11))
    completed = run_module("rl.curves", str(run), "--smooth", "3")
    assert completed.returncode == 0, completed.stderr
    image = Image.open(run / "reward_curves.png")
    assert image.size[0] > 1000 and len(np.unique(np.asarray(image.convert("L")))) > 10
    np.testing.assert_allclose(
        curves.trailing_mean(np.array([1.0, 2.0, np.nan, 4.0]), 2), [1.0, 1.5, 2.0, 4.0]
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    with pytest.raises(UsageError, match="no iteration"):
        curves.read_metrics(str(tmp_path / "empty"))


def test_throughput_shares_add_up_to_one():
    lines = [
        {
            "iteration": i,
            "timing_s/generate": 2.0,
            "timing_s/render": 1.0,
            "timing_s/update": 1.0,
            "charts/samples_per_s": 4.0,
        }
        for i in range(1, 4)
    ]
    figures = curves.throughput(lines)
    assert figures["share"] == {"generate": 0.5, "render": 0.25, "update": 0.25}
    assert figures["seconds"] == 12.0 and figures["samples_per_s_mean"] == 4.0


def test_one_program_for_every_target_shows_as_a_low_distinct_share(tmp_path):
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3, 0.4])  # every record is "cube(1);"
    (row,) = [r for r in compare.compare(a, a)["figures"] if r["figure"].startswith("distinct")]
    assert row["a"] == 0.25 and row["difference"] == 0
