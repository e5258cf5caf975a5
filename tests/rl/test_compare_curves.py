"""rl.compare (paired bootstrap intervals over two evaluations) and rl.curves (the PPO reward plot)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from configs.cli import UsageError
from rl import compare, curves
from tests.rl.conftest import run_module

SETTINGS = {
    "corpus_dir": "/corpus",
    "limit": 40,
    "k": 0,
    "temperature": 1.0,
    "top_p": 1.0,
    "max_new_tokens": 128,
    "reward": {"ssim": 1.0, "chamfer": 1.0, "iou": 1.0, "valid": 0.1, "invalid_penalty": -1.0},
    "protocol_settings": {"n_points": 8192, "sampling": "independent per mesh"},
}
"""What rl.eval records and rl.compare checks (abridged: the comparison only tests equality)."""


def write_eval(folder, split: str, rewards: list[float], ious: list[float] | None = None, selected=False,
               **settings) -> str:
    """An rl.eval-shaped folder: one greedy record per target (reward < 0: invalid) and metrics.json;
    ``selected``: the sampled record (reward 5, IoU 1) is each target's selected one."""
    folder.mkdir(parents=True)
    ious = ious or [max(r, 0.0) for r in rewards]
    with open(folder / "records.jsonl", "w") as fh:
        for i, (reward, iou) in enumerate(zip(rewards, ious, strict=True)):
            reward, iou, valid = float(reward), float(iou), bool(reward >= 0)
            protocol = {"protocol_valid": valid, "protocol_cd": 0.02 if valid else None,
                        "protocol_iou": iou if valid else None}
            greedy = {"id": f"t{i}/greedy", "target_id": f"t{i}", "code": "cube(1);", "total": reward,
                      "status": "ok" if valid else "syntax_error", "iou": iou, "valid": float(valid),
                      "extra": {"mode": "greedy", **protocol}}
            sample = {"id": f"t{i}/sample0", "target_id": f"t{i}", "code": "", "status": "ok", "total": 5.0,
                      "iou": 1.0, "valid": 1.0,
                      "extra": {"mode": "sample", "selected": selected, "protocol_valid": True,
                                "protocol_cd": 0.01, "protocol_iou": 1.0}}
            fh.write(json.dumps(greedy) + "\n" + json.dumps(sample) + "\n")
    invalid = sum(r < 0 for r in rewards) / len(rewards)
    greedy = {"invalid_ratio": invalid, "reward_mean": float(np.mean(rewards))}
    metrics = {"split": split, "n_images": len(rewards), "greedy": greedy, **SETTINGS, **settings}
    (folder / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if v != "absent"}))
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


def test_protocol_iou_is_paired_over_the_targets_where_both_programs_are_valid(tmp_path):
    # t0: only A valid, t1: only B valid, t2..t5: both valid, B's geometry better by 0.2 there
    a = write_eval(tmp_path / "a", "test", [0.5, -1.0, 0.5, 0.5, 0.5, 0.5], [0.9, 0.0, 0.2, 0.3, 0.4, 0.5])
    b = write_eval(tmp_path / "b", "test", [-1.0, 0.5, 0.5, 0.5, 0.5, 0.5], [0.0, 0.9, 0.4, 0.5, 0.6, 0.7])
    result = compare.compare(a, b, ("SFT", "PPO"))
    both = result["paired_bootstrap"]["protocol IoU, both valid"]
    assert both["n"] == 4 and result["n_paired"] == 6
    assert both["a_mean"] == pytest.approx(0.35) and both["b_mean"] == pytest.approx(0.55)
    assert both["difference"] == pytest.approx(0.2)
    assert "| protocol IoU, both valid (4 targets) | 0.350 | 0.550 | +0.200" in compare.table_markdown(result)
    reward = result["paired_bootstrap"]["reward, both valid"]  # the same 4 targets: equal rewards there
    assert reward["n"] == 4 and reward["difference"] == 0 and not reward["excludes_zero"]


def test_table_and_files_and_bad_input(tmp_path):
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, 0.5])
    ood = write_eval(tmp_path / "ood", "test_ood", [0.1, 0.2, 0.3])
    table = compare.table_markdown(compare.compare(a, b, ("SFT", "PPO")))
    assert "| reward mean | 0.200 | 0.400 | +0.200 |" in table
    json_path, md_path = compare.write(compare.compare(a, b), str(tmp_path / "out"))
    assert json.load(open(json_path))["split"] == "test" and open(md_path).read().startswith("split `test`")
    with pytest.raises(UsageError, match="differ in split: 'test' vs 'test_ood'"):
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


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"corpus_dir": "/other"}, "differ in corpus"),
        ({"n_images": 4}, r"differ in images evaluated \(limit\): 3 vs 4"),
        ({"k": 4}, "differ in decoding k"),
        ({"temperature": 0.7}, "differ in decoding temperature"),
        ({"max_new_tokens": 256}, "differ in decoding max_new_tokens"),
        ({"reward": {**SETTINGS["reward"], "iou": 2.0}}, "differ in reward settings: iou 1.0 vs 2.0"),
        ({"protocol_settings": None}, "differ in protocol"),
        ({"reward": "absent"}, "records no reward .* older rl.eval"),
    ],
)
def test_evaluations_that_measured_different_things_are_refused(tmp_path, change, reason):
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, 0.5], **change)
    with pytest.raises(UsageError, match=reason):
        compare.compare(a, b)


def test_the_command_refuses_different_reward_settings_in_one_line(tmp_path):
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, 0.5], reward={**SETTINGS["reward"], "valid": 0.0})
    completed = run_module("rl.compare", a, b)
    assert completed.returncode == 2 and len(completed.stderr.strip().splitlines()) == 1
    assert "reward settings: valid 0.1 vs 0.0" in completed.stderr and "--reward_from" in completed.stderr


def test_a_target_missing_from_one_evaluation_is_refused(tmp_path):
    # before: the table's means covered all of each evaluation's targets, the intervals only the shared ones
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3, -1.0])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, 0.5], n_images=4)  # one record lost
    with pytest.raises(UsageError, match="different targets: 1 only in .*a, 0 only in .*b .*'t3'"):
        compare.compare(a, b)


def test_table_rows_and_intervals_describe_the_same_records(tmp_path):
    a = write_eval(tmp_path / "a", "test", [0.1, -1.0, 0.3, 0.5])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, -1.0, 0.6])
    (tmp_path / "a" / "metrics.json").write_text(  # a stale summary must not reach the table
        (tmp_path / "a" / "metrics.json").read_text().replace('"reward_mean": -0.025', '"reward_mean": 9.0')
    )
    result = compare.compare(a, b)
    rows = {row["figure"]: row for row in result["figures"]}
    paired = result["paired_bootstrap"]
    assert rows["reward mean"]["a"] == pytest.approx(paired["reward"]["a_mean"]) == pytest.approx(-0.025)
    assert rows["invalid ratio"]["b"] == paired["invalid"]["b_mean"] == 0.25
    assert rows["protocol IR"]["a"] == 0.25


def test_a_target_the_render_pool_failed_on_is_left_out_of_both_sides(tmp_path):
    a = write_eval(tmp_path / "a", "test", [0.1, 0.2, 0.3, 0.4])
    b = write_eval(tmp_path / "b", "test", [0.3, 0.4, 0.5, -1.0])
    lines = (tmp_path / "b" / "records.jsonl").read_text().splitlines()
    crashed = json.loads(lines[6])  # t3's greedy record: a dead worker, not the program
    crashed["extra"]["infrastructure"] = True
    lines[6] = json.dumps(crashed)
    (tmp_path / "b" / "records.jsonl").write_text("\n".join(lines) + "\n")
    result = compare.compare(a, b)
    rows = {row["figure"]: row for row in result["figures"]}
    assert result["n_paired"] == 3 and result["infra_failed_targets"] == ["t3"]
    assert rows["invalid ratio"]["b"] == 0.0  # the crash is not counted as the policy's invalid program
    assert result["paired_bootstrap"]["reward"]["a_mean"] == pytest.approx(0.2)  # and A loses t3 too
    assert "1 left out: the render pool failed" in compare.table_markdown(result)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["A_EVAL", "B_EVAL", "--names", "SFT"], "names"),
        (["A_EVAL", "B_EVAL", "--names", "SFT,"], "names"),
        (["A_EVAL"], "B"),
        (["A_EVAL", "B_EVAL", "--top", "1"], "--top"),
    ],
)
def test_bad_compare_options_are_one_line_naming_the_key(argv, named, capsys):
    with pytest.raises(SystemExit) as stopped:
        compare.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("rl.compare: error:") and err.count("\n") == 1
    assert named in err, err


def test_bad_curves_smooth_is_one_line_naming_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        curves.main([str(tmp_path), "--smooth", "0"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err == "rl.curves: error: CurvesConfig: smooth must be >= 1, got 0\n"


def test_the_selected_programs_compare_with_the_greedy_ones_of_the_same_evaluation(tmp_path):
    rewards = list(np.linspace(0.1, 0.5, 12))
    folder = write_eval(tmp_path / "e", "test", rewards, selected=True, k=4)
    result = compare.compare(folder, folder, ("greedy", "kept"), ("greedy", "selected"))
    iou = result["paired_bootstrap"]["IoU (invalid = 0)"]
    assert result["picks"] == ["greedy", "selected"] and iou["b_mean"] == 1.0 and iou["excludes_zero"]
    other_k = write_eval(tmp_path / "f", "test", rewards, selected=True, k=0)
    with pytest.raises(UsageError, match="decoding k"):
        compare.compare(folder, other_k)  # greedy against greedy: the settings must match
    assert compare.compare(folder, other_k, picks=("selected", "selected"))["n_paired"] == 12
    none = write_eval(tmp_path / "g", "test", rewards)
    with pytest.raises(UsageError, match="selected no program"):
        compare.compare(none, none, picks=("greedy", "selected"))
    with pytest.raises(SystemExit):
        compare.main([folder, folder, "--picks", "greedy,best"])
