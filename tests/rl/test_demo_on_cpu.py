"""rl.demo, the main job: every stage runs for real (tiny sizes), a re-run reuses them, stale runs restart.

The end-to-end test starts from the session's 40-part corpus copied into the demo folder (the
corpus stage is ``corpus.build``, tested in tests/corpus), then runs rl.sft, rl.ppo and rl.eval
of both policies as child processes with real OpenSCAD scoring.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
import yaml

from configs.cli import UsageError
from configs.demo import DemoConfig
from rl import demo
from tests.rl.conftest import TINY, run_module

PPO_TINY = {
    "batch_size": 2,
    "k": 2,
    "minibatch_size": 4,
    "max_new_tokens": 24,
    "records_every": 1,
    "tensorboard": False,
    "threads": 1,
}


def nested(flat: dict) -> dict:
    """``{"policy.x": 1}`` -> ``{"policy": {"x": 1}}`` (YAML sections)."""
    out: dict = {}
    for key, value in flat.items():
        section, _, name = key.rpartition(".")
        (out.setdefault(section, {}) if section else out)[name] = value
    return out


@pytest.mark.slow
def test_main_job_runs_every_stage_then_reuses_them(tiny_corpus, tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(tiny_corpus, out / "corpus")
    (out / demo.MARKER).touch()
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(nested(TINY)))
    (tmp_path / "ppo.yaml").write_text(yaml.safe_dump(PPO_TINY))
    args = [
        "--out",
        str(out),
        "--corpus_n",
        "40",
        "--split_fractions",
        "0.6,0.2,0.2",  # the tiny corpus's (tests/rl/conftest.py): reused, not rebuilt
        "--sft_config",
        str(tmp_path / "sft.yaml"),
        "--sft_steps",
        "3",
        "--ppo_config",
        str(tmp_path / "ppo.yaml"),
        "--ppo_iterations",
        "2",
        "--eval_splits",
        "test",
        "--eval_limit",
        "2",
        "--workers",
        "0",
    ]
    first = run_module("rl.demo", *args, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((out / demo.SUMMARY).read_text())
    assert summary["stages"]["corpus"]["reused"] and not summary["stages"]["sft"]["reused"]
    assert summary["sft"]["global_step"] == 3 and summary["ppo"]["iteration"] == 2
    comparison = summary["comparisons"]["test"]
    assert comparison["names"] == ["SFT", "PPO"] and comparison["n_paired"] == 2
    assert "| invalid ratio |" in first.stdout and "[95% CI]" in first.stdout
    kept = summary["kept"]["test"]["ppo"]  # greedy or the nearest training part's program (--retrieve 1)
    assert kept["selected"]["n"] == 2 and kept["selected"]["ir"] <= kept["greedy"]["ir"]
    assert "ppo test kept program (--retrieve 1" in first.stdout
    page = (out / "index.html").read_text()
    for link in (
        "reward_curves.png",
        "eval/sft_test/index.html",
        "eval/ppo_test/index.html",
        "ppo/records/it2/index.html",
    ):
        assert link in page and (out / link).exists(), link
    assert (out / "comparison_test" / "comparison.md").exists()

    again = run_module("rl.demo", *args, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": reused ") == 5  # corpus, sft, ppo, two evaluations
    assert json.loads((out / demo.SUMMARY).read_text())["comparisons"]["test"] == comparison


def test_a_stage_is_finished_only_when_newer_than_its_input_and_stale_when_begun_before_it(tmp_path):
    upstream, started, done = (tmp_path / name for name in ("upstream.json", "started.json", "done.json"))
    upstream.write_text("{}")
    stage = demo.Stage(
        "x",
        [],
        str(done),
        str(upstream),
        str(started),
        str(tmp_path),
        check=lambda values: values.get("steps", 0) >= 5,
    )
    assert not stage.finished() and not stage.stale()
    started.write_text("{}")
    done.write_text(json.dumps({"steps": 5}))
    assert stage.finished() and not stage.stale()
    done.write_text(json.dumps({"steps": 4}))  # asks for more than was done
    assert not stage.finished()
    done.write_text(json.dumps({"steps": 5}))
    later = time.time() + 10
    os.utime(upstream, (later, later))  # the input was made again after this stage
    assert not stage.finished() and stage.stale()


def test_out_folder_rules(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(UsageError, match="did not write"):
        demo.prepare_out(DemoConfig(out=str(foreign), fresh=True))
    assert (foreign / "thesis.tex").exists()
    ours = tmp_path / "demo"
    demo.prepare_out(DemoConfig(out=str(ours)))
    (ours / "old.txt").write_text("stale")
    demo.prepare_out(DemoConfig(out=str(ours)))
    assert (ours / "old.txt").exists()  # reused without --fresh
    demo.prepare_out(DemoConfig(out=str(ours), fresh=True))
    assert not (ours / "old.txt").exists() and (ours / demo.MARKER).exists()
    completed = run_module("rl.demo", "--out", str(foreign), "--corpus_n", "10")
    assert completed.returncode == 2 and completed.stderr.strip().count("\n") == 0
    assert "corpus_n must be >= 40" in completed.stderr


def test_stage_commands_name_the_shared_corpus_and_checkpoints():
    config = DemoConfig(out="runs/x", eval_splits=("test", "test_ood"), eval_limit=None, workers=1)
    plan = demo.stages(config)
    assert [s.name for s in plan] == [
        "corpus",
        "sft",
        "ppo",
        "eval sft test",
        "eval ppo test",
        "eval sft test_ood",
        "eval ppo test_ood",
    ]
    build = plan[0].args
    assert build[build.index("--fractions") + 1] == "0.85,0.05,0.1"
    assert build[build.index("--n") + 1] == "1600"
    finished = {"n": 1600, "fractions": [0.85, 0.05, 0.1]}
    assert plan[0].check({"settings": finished})
    assert not plan[0].check({"settings": {**finished, "fractions": [0.9, 0.05, 0.05]}})
    assert not plan[0].check({"settings": {**finished, "n": 1500}})
    ppo = plan[2].args
    assert ppo[ppo.index("--checkpoint") + 1] == os.path.join("runs/x", "sft", "final")
    for stage in plan[3:]:
        assert stage.args[stage.args.index("--corpus_dir") + 1] == os.path.join("runs/x", "corpus")
        assert "--limit" not in stage.args and stage.args[stage.args.index("--render_workers") + 1] == "1"
        assert "--refine" not in stage.args  # off by default


def test_sft_stage_trains_in_bf16_where_the_machine_computes_it_natively():
    from rl.runtime import bf16_native

    def bf16_of(**settings) -> str:
        sft = demo.stages(DemoConfig(out="runs/x", **settings))[1].args
        return sft[sft.index("--bf16") + 1]

    assert bf16_of() == str(bf16_native())
    assert bf16_of(sft_bf16=False) == "False" and bf16_of(sft_bf16=True) == "True"


def test_bf16_native_reads_the_cpu_flags():
    from rl.runtime import bf16_native

    zen4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
    sapphire = "flags\t\t: fpu avx512f amx_tile amx_bf16\n"
    skylake = "flags\t\t: fpu sse avx2 avx512f avx512bw\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"
    assert bf16_native(zen4) and bf16_native(sapphire)
    assert not bf16_native(skylake) and not bf16_native("")


def test_refinement_in_the_evaluation_stages_and_a_changed_setting_reruns_them(tmp_path):
    plan = demo.stages(DemoConfig(out=str(tmp_path), eval_splits=("test",), eval_refine=50))
    for stage in plan[3:]:
        assert stage.args[stage.args.index("--refine") + 1] == "50"
    metrics = {"k": 0, "n_images": 40, "reward": None, "retrieve": 1, "fitted": {}, "dimensioned": {}}
    assert plan[3].check({**metrics, "refine": {"renders": 50}})  # --retrieve 1 by default
    older = {k: v for k, v in metrics.items() if k != "dimensioned"}
    assert not plan[3].check({**older, "refine": {"renders": 50}}), "an rl.eval without dimensioning reruns"
    assert not plan[3].check({**metrics, "refine": {"renders": 20}})
    assert not plan[3].check({**metrics, "refine": None})
    plain = demo.stages(DemoConfig(out=str(tmp_path), eval_splits=("test",)))
    assert plain[3].check({**metrics, "refine": None})
    assert not plain[3].check({**metrics, "refine": {"renders": 50}})
    assert plain[3].args[plain[3].args.index("--retrieve") + 1] == "1"
    assert not plain[3].check({**metrics, "refine": None, "retrieve": 0}), "evaluated without retrieval"
    greedy_only = demo.stages(DemoConfig(out=str(tmp_path), eval_splits=("test",), eval_retrieve=0))
    assert "--retrieve" not in greedy_only[3].args and greedy_only[3].check({**metrics, "retrieve": 0})


def test_default_stage_configs_load():
    from configs.loader import load
    from configs.ppo import PPOConfig
    from configs.sft import SFTConfig

    defaults = DemoConfig()
    ppo = load(PPOConfig, defaults.ppo_config)
    assert ppo.estimator == "grpo" and ppo.k >= 2 and ppo.temperature < 1
    assert load(SFTConfig, defaults.sft_config).policy.kind == "tiny"
