"""A policy that reads exemplars, through the commands: rl.sft indexes the train split and saves the
index with every policy folder; rl.eval shows each test part its nearest training program."""

from __future__ import annotations

import json
import os

import pytest

from tests.rl.conftest import run_module, sft_args


@pytest.fixture(scope="module")
def exemplar_run(tiny_corpus, tmp_path_factory):
    runs = str(tmp_path_factory.mktemp("exemplar_runs"))
    args = sft_args(tiny_corpus, runs, "ex", max_steps=2, save_steps=100, eval_steps=100,
                    policy__exemplars="true", policy__size_in_prompt="true", policy__max_position=2048)
    completed = run_module("rl.sft", *args)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return os.path.join(runs, "ex")


def test_sft_saves_the_train_splits_index_with_the_policy(exemplar_run, tiny_corpus):
    from corpus.dataset import load
    from policies import PartInput, load_policy
    from policies.exemplars import FILE

    train = load(tiny_corpus, "train")
    for folder in ("initial", "final"):
        assert os.path.isfile(os.path.join(exemplar_run, folder, FILE))
    policy = load_policy(os.path.join(exemplar_run, "final"))
    assert sorted(policy.exemplars.ids) == sorted(train["id"])
    sizes = dict(zip(train["id"], train["extents"], strict=True))  # --retrieve scales with them
    assert all(list(policy.exemplars.sizes[i]) == sizes[part] for i, part in enumerate(policy.exemplars.ids))
    row = load(tiny_corpus, "test")[0]
    shown_code = policy.exemplars.nearest(PartInput.of(row))
    prompt = policy.tokenizer.decode(policy.prompt_inputs([row])["input_ids"][0])
    assert shown_code in prompt and shown_code in train["code"]


def test_eval_states_that_exemplars_were_shown(exemplar_run, tiny_corpus, tmp_path):
    from corpus.dataset import load

    out = str(tmp_path / "eval")
    checkpoint = os.path.join(exemplar_run, "final")
    args = ["--checkpoint", checkpoint, "--corpus_dir", tiny_corpus, "--split", "test", "--limit", "2",
            "--k", "0", "--max_new_tokens", "16", "--render_workers", "1", "--out", out]
    completed = run_module("rl.eval", *args)
    assert completed.returncode == 0, completed.stderr[-2000:]
    metrics = json.loads(open(os.path.join(out, "metrics.json")).read())
    assert metrics["policy_input"]["exemplars"] is True and metrics["policy_input"]["size_in_prompt"] is True

    from bench.exemplar_copying import measure, structure

    assert structure("cube([10, 2.5]);") == structure("cube([4, 60]);") != structure("cube(1);")
    copying = measure(checkpoint, out, tiny_corpus, "test")
    train_ids = set(load(tiny_corpus, "train")["id"])
    assert copying["rows"] == 2 and all(row["exemplar"] in train_ids for row in copying["per_row"])
    assert 0 < copying["exemplar_protocol_iou"] <= 1, "a part of the same families overlaps"


def test_predict_names_the_training_part_it_was_shown(exemplar_run, tiny_corpus, tmp_path):
    from corpus.dataset import load

    row = load(tiny_corpus, "test")[0]
    picture = str(tmp_path / "part.png")
    row["views"][0].save(picture)
    out = str(tmp_path / "predict")
    checkpoint = os.path.join(exemplar_run, "final")
    args = ["--checkpoint", checkpoint, picture, "--k", "1", "--max_new_tokens", "16",
            "--render_workers", "1",
            "--out", out]
    completed = run_module("rl.predict", *args)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(open(os.path.join(out, "candidates.json")).read())
    assert summary["exemplar"] in load(tiny_corpus, "train")["id"]
