"""rl.eval and rl.predict: files and figures they write, on a tiny checkpoint and on known-good programs."""

from __future__ import annotations

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from configs.reward import RUN_CONFIG, as_dict
from renderer.stl import read_binary_stl
from renderer.syntax import ScadPrefix
from reward.score import RewardWeights


class TruthPolicy:
    """Stands in for a perfect policy: every program it writes is the target's own code."""

    def __init__(self, codes):
        self.codes = list(codes)

    def sample(self, images, n=1, **_):
        return SimpleNamespace(texts=[self.codes[i] for i in range(len(images)) for _ in range(n)])


@pytest.fixture
def final_dir(smoke_run):
    completed, run_dir = smoke_run
    assert completed.returncode == 0, completed.stderr[-2000:]
    return os.path.join(run_dir, "final")


def test_eval_writes_records_metrics_and_report(final_dir, tmp_path, capsys):
    from rl.eval import main

    out = tmp_path / "eval"
    main(["--checkpoint", final_dir, "--split", "test", "--k", "2", "--limit", "2", "--max_new_tokens", "16",
          "--render_workers", "0", "--out", str(out)])  # corpus_dir comes from final/sft_config.json
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 2 and metrics["k"] == 2
    for mode in ("greedy", "best_of_k"):
        figures = metrics[mode]
        for key in ("invalid_ratio", "iou_mean", "iou_median", "ssim_mean", "chamfer_distance_median",
                    "reward_mean"):
            assert key in figures
        assert {"ir", "cd_median_x1e3", "iou_mean"} <= set(figures["protocol"])
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 * (1 + 2)
    assert sum(r["extra"]["best_of_k"] for r in records) == 2
    assert metrics["syntax_guard"] is True  # greedy and sampled programs never break renderer.syntax
    assert all(ScadPrefix.advance(ScadPrefix.START, r["code"]) is not None for r in records)
    assert all((out / r["pred_views"]).exists() and (out / r["target_views"]).exists() for r in records)
    assert (out / "index.html").exists() and (out / "summary.json").exists()
    printed = capsys.readouterr().out
    assert "protocol IR" in printed and "reward settings from defaults" in printed
    assert "decoded under the syntax guard" in printed
    # what rl.compare checks before pairing two evaluations
    assert metrics["limit"] == 2 and metrics["max_new_tokens"] == 16 and os.path.isabs(metrics["corpus_dir"])
    assert metrics["reward"] == as_dict(RewardWeights()) and metrics["reward_source"].startswith("defaults")
    assert metrics["protocol_settings"]["sampling"] == "independent per mesh"
    assert json.loads((out / "summary.json").read_text())["reward"] == metrics["reward"]
    assert "invalid_penalty -1" in (out / "index.html").read_text()


def test_eval_of_a_ppo_checkpoint_scores_with_the_reward_its_run_trained_with(final_dir, tmp_path, capsys):
    from configs.ppo import PPOConfig
    from rl.eval import main

    run = tmp_path / "ppo"  # a PPO run folder as rl.ppo leaves it (final/ is a policy folder)
    shutil.copytree(final_dir, run / "final")
    trained = RewardWeights(invalid_penalty=-3.0, iou=2.0)
    (run / RUN_CONFIG).write_text(json.dumps(PPOConfig(reward=trained).to_dict()))
    common = ["--split", "test", "--k", "0", "--limit", "1", "--max_new_tokens", "8", "--render_workers", "0",
              "--views", "false", "--protocol", "false"]
    main(["--checkpoint", str(run / "final"), "--out", str(tmp_path / "ppo_eval"), *common])
    metrics = json.loads((tmp_path / "ppo_eval" / "metrics.json").read_text())
    assert metrics["reward"] == as_dict(trained) and str(run / RUN_CONFIG) in metrics["reward_source"]
    assert f"reward settings from {run / RUN_CONFIG}" in capsys.readouterr().out
    lines = (tmp_path / "ppo_eval" / "records.jsonl").read_text().splitlines()
    invalid = [json.loads(line)["total"] for line in lines if json.loads(line)["valid"] == 0]
    assert invalid and set(invalid) == {-3.0}  # the run's penalty, not the default -1 (8 tokens: no program)
    out = tmp_path / "default_eval"
    main(["--checkpoint", str(run / "final"), "--out", str(out), "--reward_from", "default", *common])
    assert json.loads((out / "metrics.json").read_text())["reward"] == as_dict(RewardWeights())


def test_eval_figures_of_correct_programs(tiny_corpus, tmp_path):
    """The target's own program scores IoU ~1 in the target frame and CD at the sampling floor
    (about 0.2-0.5 x1e-3, see reward.metrics) in the protocol."""
    from configs.eval import EvalConfig
    from corpus.dataset import load_mesh
    from renderer.pool import RenderPool
    from reward.protocol_scorer import ProtocolScorer
    from rl.eval import evaluate_batch, figures_of, load_rows, mark_best_of_k

    rows = [dict(r) for r in load_rows(tiny_corpus, "test", 2)]
    pool = RenderPool(ProtocolScorer(), workers=0)
    for row in rows:
        pool.add_target(row["id"], *load_mesh(tiny_corpus, row))
    config = EvalConfig(checkpoint="unused", k=1, views=False)
    records = evaluate_batch(TruthPolicy(r["code"] for r in rows), pool, rows, config, str(tmp_path))
    best = mark_best_of_k(records)
    figures = figures_of([r for r in records if r.extra["mode"] == "greedy"])
    assert len(best) == 2 and figures["invalid_ratio"] == 0.0
    assert figures["iou_mean"] > 0.95 and figures["protocol"]["ir"] == 0.0
    assert figures["protocol"]["cd_median_x1e3"] < 1.0 and figures["protocol"]["iou_mean"] > 0.9


def test_predict_untrained_writes_the_attempt_and_says_invalid(final_dir, tiny_corpus, tmp_path, capsys):
    from corpus.dataset import load
    from rl.predict import main

    image = tmp_path / "part.png"
    load(tiny_corpus, "test")[0]["image"].save(image)
    main([str(image), "--checkpoint", final_dir, "--k", "2", "--max_new_tokens", "16", "--out",
          str(tmp_path / "pred")])
    out = tmp_path / "pred"
    assert (out / "prediction.scad").exists() and (out / "prediction.png").exists()
    summary = json.loads((tmp_path / "pred" / "candidates.json").read_text())
    assert len(summary["candidates"]) == 2
    if not summary["valid"]:  # an untrained model: the attempt is still written, and flagged
        assert "INVALID" in capsys.readouterr().out
        assert not (tmp_path / "pred" / "prediction.stl").exists()


@pytest.mark.parametrize("select", ["input", "consensus"])
def test_predict_keeps_a_valid_program_and_writes_its_stl(tiny_corpus, tmp_path, monkeypatch, select):
    import rl.predict
    from corpus.dataset import load

    row = load(tiny_corpus, "test")[0]
    broken = "cube([1, 2;"  # a syntax error first: the valid program must win
    fake = SimpleNamespace(sample=lambda images, n=1, **_: SimpleNamespace(
        texts=[broken] * n if _.get("greedy") else [row["code"]] * n),
        config=SimpleNamespace(kind="fake", max_new_tokens=16, views="iso", size_in_prompt=False,
                              image_size=128, exemplars=False), exemplars=None)
    monkeypatch.setattr(rl.predict, "load_checkpoint", lambda path: fake)
    image = tmp_path / "wide.jpg"  # another size, aspect and mode than the corpus image
    canvas = Image.new("RGB", (300, 200), (255, 255, 255))
    canvas.paste(row["image"].convert("RGB"), (86, 36))
    canvas.save(image)
    rl.predict.main([str(image), "--k", "3", "--select", select, "--out", str(tmp_path / "pred")])
    summary = json.loads((tmp_path / "pred" / "candidates.json").read_text())
    assert summary["valid"] and summary["chosen"] in (1, 2) and summary["syntax_guard"] is True
    assert (tmp_path / "pred" / "prediction.scad").read_text() == row["code"]
    vertices, faces = read_binary_stl(str(tmp_path / "pred" / "prediction.stl"))
    assert len(faces) > 0 and np.isfinite(vertices).all()
    assert Image.open(tmp_path / "pred" / "prediction.png").size == (5 * 128, 128)


def test_binary_stl_round_trips(tmp_path):
    from renderer.stl import write_binary_stl

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    back_v, back_f = read_binary_stl(write_binary_stl(str(tmp_path / "t.stl"), vertices, faces))
    assert np.allclose(np.sort(back_v, axis=0), np.sort(vertices, axis=0))
    assert np.allclose(back_v[back_f], vertices[faces])


@pytest.mark.parametrize("content, expected", [(None, "does not exist"), (b"not an image", "not an image")])
def test_predict_bad_image_is_one_line_and_exit_2(tmp_path, capsys, content, expected):
    from rl.predict import main

    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main([str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and expected in err


def perturbed(code: str) -> str:
    """``code`` with its tunable literals by turns 1.5 and 0.7 times their value (another shape, not
    only another size): a program refinement can mend."""
    from renderer.literals import find_literals, substitute, tunable

    literals = tunable(find_literals(code))
    return substitute(code, literals, [(1.5, 0.7)[i % 2] * lit.value for i, lit in enumerate(literals)])


def fake_policy(texts_of):
    """A policy whose greedy program is ``texts_of(True)`` and whose sampled ones ``texts_of(False)``."""
    return SimpleNamespace(
        sample=lambda images, n=1, **kw: SimpleNamespace(
            texts=[texts_of(bool(kw.get("greedy")))] * n * len(images)),
        config=SimpleNamespace(kind="fake", max_new_tokens=16, views="iso", size_in_prompt=False,
                              image_size=128, exemplars=False), exemplars=None)


def test_predict_refine_writes_the_program_before_and_after_with_their_scores(tiny_corpus, tmp_path,
                                                                              monkeypatch):
    import rl.predict
    from corpus.dataset import load
    from renderer.literals import find_literals

    row = load(tiny_corpus, "test")[0]
    start = perturbed(row["code"])
    monkeypatch.setattr(rl.predict, "load_checkpoint", lambda path: fake_policy(lambda greedy: start))
    row["image"].save(tmp_path / "part.png")
    out = tmp_path / "pred"
    rl.predict.main([str(tmp_path / "part.png"), "--k", "1", "--refine", "12", "--render_workers", "0",
                     "--out", str(out)])
    summary = json.loads((out / "candidates.json").read_text())
    refined = summary["refine"]
    assert (out / "unrefined.scad").read_text() == start == refined["start_code"]
    assert (out / "prediction.scad").read_text() == refined["code"]
    assert refined["renders"] <= 12 and refined["best"]["total"] > refined["start"]["total"]
    assert refined["start"]["total"] == summary["candidates"][0]["agreement"]["total"]
    assert refined["changed"] and len(find_literals(refined["code"])) == len(find_literals(start))
    rl.predict.main([str(tmp_path / "part.png"), "--k", "1", "--render_workers", "0", "--out", str(out)])
    assert not (out / "unrefined.scad").exists()  # a run without --refine leaves no stale 'before'


def test_predict_with_a_mesh_keeps_the_program_of_the_right_size(tiny_corpus, tmp_path, monkeypatch):
    """A picture cannot tell a part from the same part twice as large; its mesh can."""
    import rl.predict
    from corpus.dataset import load, load_mesh
    from renderer.stl import write_binary_stl

    row = load(tiny_corpus, "test")[0]
    twice = f"scale(2) {{\n{row['code']}\n}}\n"
    monkeypatch.setattr(rl.predict, "load_checkpoint",
                        lambda path: fake_policy(lambda greedy: twice if greedy else row["code"]))
    row["image"].save(tmp_path / "part.png")
    write_binary_stl(str(tmp_path / "part.stl"), *load_mesh(tiny_corpus, row))
    rl.predict.main([str(tmp_path / "part.png"), "--k", "2", "--mesh", str(tmp_path / "part.stl"),
                     "--fit", "false", "--out", str(tmp_path / "pred")])
    summary = json.loads((tmp_path / "pred" / "candidates.json").read_text())
    greedy, truth = (c["agreement"] for c in summary["candidates"])
    assert summary["chosen"] == 1 and truth["iou"] > 0.9 > greedy["iou"]
    assert abs(greedy["ssim"] - truth["ssim"]) < 0.05  # the same shape in its own frame


@pytest.mark.parametrize("size_from", ["mesh", "size"])
def test_predict_fits_the_greedy_program_to_a_known_size(tiny_corpus, tmp_path, monkeypatch, size_from):
    """The policy writes the right shape stretched; the size (of a mesh, or --size) fits it back."""
    import renderer.openscad
    import rl.predict
    from corpus.dataset import load, load_mesh
    from renderer.fit import scaled_program
    from renderer.stl import write_binary_stl

    row = load(tiny_corpus, "test")[0]
    stretched = scaled_program(row["code"], (2.0, 0.5, 1.0), "stretched")
    monkeypatch.setattr(rl.predict, "load_checkpoint", lambda path: fake_policy(lambda greedy: stretched))
    rendered, real_run = [], renderer.openscad.run
    monkeypatch.setattr(renderer.openscad, "run",
                        lambda code, *args, **kw: rendered.append(code) or real_run(code, *args, **kw))
    target, faces = load_mesh(tiny_corpus, row)
    row["image"].save(tmp_path / "part.png")
    write_binary_stl(str(tmp_path / "part.stl"), target, faces)
    size = "x".join(f"{e:.6g}" for e in np.ptp(target, axis=0))
    given = ["--mesh", str(tmp_path / "part.stl")] if size_from == "mesh" else [
        str(tmp_path / "part.png"), "--size", size]
    for dimension, modes in (("true", ["greedy", "fitted", "dimensioned"]), ("false", ["greedy", "fitted"])):
        out = tmp_path / f"pred_{dimension}"
        rendered.clear()
        rl.predict.main(given + ["--k", "1", "--dimension", dimension, "--out", str(out)])
        assert len(rendered) == len(set(rendered))  # the solve's renders are used, never made twice
        summary = json.loads((out / "candidates.json").read_text())
        candidates = summary["candidates"]
        assert [c["mode"] for c in candidates] == modes
        assert stretched.rstrip() in candidates[1]["code"]  # fitted: scaled as written
        if dimension == "true":  # its numbers solved first: another text, the same size
            assert stretched.rstrip() not in candidates[2]["code"] and candidates[2]["valid"]
        assert summary["chosen"] == 1  # the exact un-stretching agrees best with the input
        vertices, _ = read_binary_stl(str(out / "prediction.stl"))
        assert np.allclose(np.ptp(vertices, axis=0), np.ptp(target, axis=0), rtol=1e-4)
        if size_from == "mesh":  # placed on the mesh's box: the program is in the mesh's coordinates
            assert np.allclose(vertices.min(axis=0), target.min(axis=0), atol=1e-3)
            assert candidates[1]["agreement"]["iou"] > 0.99
    rl.predict.main(given + ["--k", "1", "--fit", "false", "--out", str(tmp_path / "unfitted")])
    summary = json.loads((tmp_path / "unfitted" / "candidates.json").read_text())
    assert [c["mode"] for c in summary["candidates"]] == ["greedy"]


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"), (b"solid ascii\n", "not a binary STL"), (b"x" * 84, "not a binary STL")])
def test_predict_bad_mesh_is_one_line_and_exit_2(tmp_path, capsys, content, expected):
    from rl.predict import main

    Image.new("RGB", (64, 64), (255, 255, 255)).save(tmp_path / "part.png")
    mesh = tmp_path / "part.stl"
    if content is not None:
        mesh.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "part.png"), "--mesh", str(mesh)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and expected in err


def test_eval_selects_without_the_target_and_refines_with_paired_figures(tiny_corpus, tmp_path, monkeypatch,
                                                                          capsys):
    import rl.eval
    from corpus.dataset import load

    codes = {r["image"].tobytes(): r["code"] for r in load(tiny_corpus, "test")}
    policy = SimpleNamespace(
        sample=lambda images, n=1, **kw: SimpleNamespace(texts=[
            perturbed(codes[part.views[0].tobytes()]) if kw.get("greedy") else "cube([1, 2;"
            for part in images for _ in range(n)]),
        config=SimpleNamespace(kind="fake", max_new_tokens=16, views="iso", size_in_prompt=False,
                              image_size=128, exemplars=False), exemplars=None)
    monkeypatch.setattr(rl.eval, "load_checkpoint", lambda path: policy)
    out = tmp_path / "eval"
    rl.eval.main(["--checkpoint", "unused", "--corpus_dir", tiny_corpus, "--split", "test", "--k", "1",
                  "--limit", "2", "--refine", "10", "--render_workers", "0", "--reward_from", "default",
                  "--protocol", "false", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["extra"]["mode"] for r in records].count("refined") == 2
    selected = [r for r in records if r["extra"]["selected"]]
    assert len(selected) == 2 and all(r["extra"]["mode"] == "greedy" for r in selected)  # samples fail
    assert "ORACLE" in metrics["picks"]["best_of_k"] and metrics["against"] == "image"
    refine = metrics["refine"]
    assert refine["n"] == 2 and refine["renders_per_image"]["max"] <= 10
    assert refine["paired"]["agreement"]["after"] >= refine["paired"]["agreement"]["before"]
    assert metrics["refined"] == refine["after"] and metrics["selected"]["n"] == 2
    assert all((out / r["pred_views"]).exists() for r in records if r["extra"]["mode"] == "refined")
    printed = capsys.readouterr().out
    assert "best_of_k (oracle)" in printed and "refine (--against image), 2 paired targets" in printed


def test_eval_renders_each_program_once_on_one_pool_and_reads_each_mesh_once(tiny_corpus, tmp_path,
                                                                               monkeypatch, capsys):
    """The selection uses the agreement from the render that scored a program (no second render),
    refinement runs on the same pool, and each headline mean comes with its 95 % interval."""
    import corpus.dataset
    import renderer.pool
    import rl.eval
    from corpus.dataset import load

    codes = {r["image"].tobytes(): r["code"] for r in load(tiny_corpus, "test")}
    policy = SimpleNamespace(  # greedy: a perturbed program; sampled: the target's own program
        sample=lambda images, n=1, **kw: SimpleNamespace(texts=[
            perturbed(codes[part.views[0].tobytes()]) if kw.get("greedy") else codes[part.views[0].tobytes()]
            for part in images for _ in range(n)]),
        config=SimpleNamespace(kind="fake", max_new_tokens=16, views="iso", size_in_prompt=False,
                              image_size=128, exemplars=False), exemplars=None)
    monkeypatch.setattr(rl.eval, "load_checkpoint", lambda path: policy)
    rendered, meshes, pools = [], [], []
    real_run, real_load_mesh = renderer.pool.run, corpus.dataset.load_mesh
    monkeypatch.setattr(renderer.pool, "run",
                        lambda code, limits: rendered.append(code) or real_run(code, limits))
    monkeypatch.setattr(corpus.dataset, "load_mesh",
                        lambda corpus_dir, row: meshes.append(row["id"]) or real_load_mesh(corpus_dir, row))

    class CountedPool(renderer.pool.RenderPool):
        def __init__(self, *args, **kwargs):
            pools.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(renderer.pool, "RenderPool", CountedPool)
    out = tmp_path / "eval"
    rl.eval.main(["--checkpoint", "unused", "--corpus_dir", tiny_corpus, "--split", "test", "--k", "2",
                  "--limit", "2", "--refine", "3", "--render_workers", "0", "--reward_from", "default",
                  "--views", "false", "--out", str(out)])
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    decoded = [r for r in records if r["extra"]["mode"] != "refined"]
    refined = [r for r in records if r["extra"]["mode"] == "refined"]
    assert len(decoded) == 2 * (1 + 2) and len(refined) == 2
    refine_renders = sum(r["extra"]["refine_renders"] for r in refined)
    assert len(rendered) == len(decoded) + refine_renders + len(refined)  # each scored program once
    assert len(pools) == 1 and sorted(meshes) == sorted({r["target_id"] for r in records})
    assert all(r["extra"]["agreement"] > 0.9 for r in decoded if r["extra"]["mode"] == "sample")
    selected = [r for r in records if r["extra"]["selected"]]
    assert [(r["extra"]["mode"], r["extra"]["sample"]) for r in selected] == [("sample", 0)] * 2
    metrics = json.loads((out / "metrics.json").read_text())
    for mode in ("greedy", "selected", "best_of_k", "refined"):
        figures, protocol = metrics[mode], metrics[mode]["protocol"]
        for mean, interval in ((figures["iou_mean"], figures["iou_mean_ci95"]),
                               (protocol["iou_mean"], protocol["iou_mean_ci95"]),
                               (protocol["cd_mean_x1e3"], protocol["cd_mean_x1e3_ci95"])):
            assert interval[0] <= mean <= interval[1]
    protocol = metrics["greedy"]["protocol"]
    low, high = protocol["iou_mean_ci95"]
    assert f"IoU {protocol['iou_mean']:.3f} [{low:.3f}, {high:.3f}]" in capsys.readouterr().out


@pytest.mark.parametrize("split", ["test", "train"])
def test_eval_retrieve_adds_the_nearest_training_programs_as_candidates(tiny_corpus, tmp_path, monkeypatch,
                                                                        split):
    import rl.eval
    from corpus.dataset import load

    train = {r["id"]: r["code"] for r in load(tiny_corpus, "train")}
    policy = SimpleNamespace(  # writes a broken program: the selected one can only be retrieved
        sample=lambda images, n=1, **kw: SimpleNamespace(texts=["cube([1, 2;"] * (len(images) * n)),
        config=SimpleNamespace(kind="fake", max_new_tokens=16, views="iso", size_in_prompt=False,
                               image_size=128, exemplars=False), exemplars=None)
    monkeypatch.setattr(rl.eval, "load_checkpoint", lambda path: policy)
    out = tmp_path / "eval"
    rl.eval.main(["--checkpoint", "unused", "--corpus_dir", tiny_corpus, "--split", split, "--k", "0",
                  "--retrieve", "2", "--limit", "3", "--render_workers", "0", "--reward_from", "default",
                  "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    retrieved = [r for r in records if r["extra"]["mode"] == "retrieved"]
    assert len(retrieved) == 6
    assert {r["id"].rsplit("/", 1)[1] for r in retrieved} == {"retrieved0", "retrieved1"}
    for record in retrieved:
        assert record["code"] == train[record["extra"]["retrieved_from"]], "a training part's own program"
        assert record["extra"]["retrieved_from"] != record["target_id"], "never the part itself"
    selected = [r for r in records if r["extra"]["selected"]]
    assert len(selected) == 3 and all(r["extra"]["mode"] == "retrieved" for r in selected)
    for target in {r["target_id"] for r in retrieved}:
        group = [r for r in retrieved if r["target_id"] == target]
        chosen = [r for r in group if r["extra"]["selected"]][0]
        assert chosen["extra"]["agreement"] == max(r["extra"]["agreement"] for r in group)
    assert metrics["retrieve"] == 2 and metrics["selected_modes"]["retrieved"] == 3
    assert metrics["selected"]["invalid_ratio"] == 0 and metrics["greedy"]["invalid_ratio"] == 1


def test_predict_retrieve_keeps_a_training_part_program_when_the_policy_writes_none(tiny_corpus, tmp_path,
                                                                                    monkeypatch):
    import rl.predict
    from corpus.dataset import load, load_mesh
    from renderer.stl import write_binary_stl

    train = {r["id"]: r["code"] for r in load(tiny_corpus, "train")}
    row = load(tiny_corpus, "test")[0]
    monkeypatch.setattr(rl.predict, "load_checkpoint", lambda path: fake_policy(lambda greedy: "cube([1, 2;"))
    write_binary_stl(str(tmp_path / "part.stl"), *load_mesh(tiny_corpus, row))
    rl.predict.main(["--mesh", str(tmp_path / "part.stl"), "--k", "2", "--retrieve", "3", "--corpus_dir",
                     tiny_corpus, "--out", str(tmp_path / "pred")])
    summary = json.loads((tmp_path / "pred" / "candidates.json").read_text())
    modes = [c["mode"] for c in summary["candidates"]]
    assert modes == ["greedy", "sample", "retrieved", "retrieved", "retrieved"] and summary["retrieve"] == 3
    assert summary["candidates"][0]["status"] != "ok", "an invalid greedy program has nothing to fit"
    retrieved = summary["candidates"][2:]
    for c in retrieved:  # scaled to the mesh's size: a look-alike part may be of any size
        assert "scale([" in c["code"] and train[c["retrieved_from"]].rstrip() in c["code"]
        assert c["valid"], c["stderr"]  # modules and functions of the program still parse
    assert summary["valid"] and summary["chosen"] >= 2
    assert summary["chosen"] == 2 + max(range(3), key=lambda i: (retrieved[i]["score"], -i))
    vertices, _ = read_binary_stl(str(tmp_path / "pred" / "prediction.stl"))
    target, _ = load_mesh(tiny_corpus, row)
    extents = np.ptp(vertices, axis=0)
    assert np.allclose(extents, np.ptp(target, axis=0), rtol=0.02), (extents, np.ptp(target, axis=0))
    with pytest.raises(SystemExit):  # a corpus without a train split is one line
        rl.predict.main(["--mesh", str(tmp_path / "part.stl"), "--retrieve", "1", "--corpus_dir",
                         str(tmp_path), "--out", str(tmp_path / "pred2")])


def test_eval_fits_the_greedy_program_to_the_size_the_policy_is_shown(tiny_corpus, tmp_path, monkeypatch,
                                                                      capsys):
    """A size-reading policy that writes the right shape at the wrong size: the fitted program (each
    axis scaled to the size it is shown) is the target; without the size nothing is fitted."""
    import rl.compare
    import rl.eval
    from corpus.dataset import load
    from renderer.fit import scaled_program

    codes = {r["image"].tobytes(): r["code"] for r in load(tiny_corpus, "test")}
    shown = []
    policy = SimpleNamespace(  # the target's own program, stretched
        sample=lambda images, n=1, **kw: shown.extend(part.size for part in images) or SimpleNamespace(texts=[
            scaled_program(codes[part.views[0].tobytes()], (2, 0.5, 1.5), "stretched")
            for part in images for _ in range(n)]),
        config=SimpleNamespace(kind="fake", max_new_tokens=16, views="iso", size_in_prompt=True,
                               image_size=128, exemplars=False), exemplars=None)
    monkeypatch.setattr(rl.eval, "load_checkpoint", lambda path: policy)
    argv = ["--checkpoint", "unused", "--corpus_dir", tiny_corpus, "--split", "test", "--k", "0",
            "--limit", "3", "--render_workers", "0", "--reward_from", "default", "--views", "false"]
    rl.eval.main(argv + ["--out", str(tmp_path / "eval")])
    assert len(shown) == 3 and all(size is not None for size in shown)
    records = [json.loads(line) for line in (tmp_path / "eval" / "records.jsonl").read_text().splitlines()]
    fitted = [r for r in records if r["extra"]["mode"] == "fitted"]
    assert len(fitted) == 3 and all("scale([" in r["code"] and r["id"].endswith("/fitted") for r in fitted)
    assert all(r["extra"]["protocol_iou"] > 0.95 and r["iou"] > 0.95 for r in fitted)
    dimensioned = [r for r in records if r["extra"]["mode"] == "dimensioned"]
    assert len(dimensioned) == 3 and all(r["valid"] and r["iou"] > 0.5 for r in dimensioned)
    assert all(r["extra"]["size_agreement"] >= r["extra"]["size_agreement_before"] for r in dimensioned)
    assert all(r["extra"]["size_agreement_before"] < 0.9 and r["extra"]["dimension_renders"] > 0
               for r in dimensioned)
    assert any(r["extra"]["dimension_clean"] and "scale(" not in r["code"].split("stretched();")[-1]
               for r in dimensioned)  # at the size in its own numbers: no scale after its own
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["dimension"]["n"] == 3 and metrics["dimension"]["clean"] > 0
    assert metrics["dimensioned"]["protocol"]["n_valid"] == 3
    assert metrics["greedy"]["invalid_ratio"] == 0 and metrics["greedy"]["protocol"]["iou_mean"] < 0.5
    written = metrics["size_written"]  # 2, 1/2 and 3/2 times the size shown
    assert written["n"] == 3 and written["within_5pct"] == 0
    assert written["agreement_mean"] == pytest.approx((0.5 * 0.5 * 2 / 3) ** (1 / 3), abs=0.01)
    printed = capsys.readouterr().out
    assert "fitted to size" in printed and "size written: 0% of 3" in printed and "dimensioned: " in printed
    comparison = rl.compare.compare(str(tmp_path / "eval"), str(tmp_path / "eval"), ("greedy", "fitted"),
                                    ("greedy", "fitted"))
    assert comparison["picks"] == ["greedy", "fitted"]
    from bench import fit_size

    same = f"{tmp_path / 'eval'},{tmp_path / 'eval'}"
    fit_size.main(["--evals", str(tmp_path / "eval"), "--greedy_pair", same, "--label", "t", "--out",
                   str(tmp_path / "fit.json")])
    result = json.loads((tmp_path / "fit.json").read_text())["t"]
    entry = result["greedy_vs_fitted"][str(tmp_path / "eval")]
    assert entry["paired"]["protocol IoU, both valid"]["difference"] > 0.45
    assert result["size_written"][str(tmp_path / "eval")] == written
    assert result["greedy_pairs"][same]["paired"]["protocol IoU, both valid"]["difference"] == 0
    assert result["fitted_vs_dimensioned"][str(tmp_path / "eval")]["n_paired"] == 3
    assert result["dimension"][str(tmp_path / "eval")] == metrics["dimension"]
    for flags, modes in ((["--no_size"], {"greedy"}), (["--fit", "false"], {"greedy", "dimensioned"}),
                         (["--dimension", "false"], {"greedy", "fitted"})):
        out = tmp_path / flags[0].strip("-")
        rl.eval.main(argv + flags + ["--out", str(out)])
        records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
        assert {r["extra"]["mode"] for r in records} == modes
        metrics = json.loads((out / "metrics.json").read_text())
        assert (metrics["fitted"] is None) == ("fitted" not in modes)
        assert (metrics["dimensioned"] is None) == ("dimensioned" not in modes)
    assert json.loads((tmp_path / "no_size" / "metrics.json").read_text())["size_written"] is None
