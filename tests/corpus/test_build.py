"""corpus.build: determinism, resumption, splits without leakage, views as the reward sees them, CLI."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from corpus.build import build, chunk_ranges, plan
from corpus.dataset import decode_png, load, load_mesh
from corpus.splits import SPLITS, normalize_code
from tests.conftest import needs_openscad
from tests.corpus.conftest import TINY_N, tiny_settings

pytestmark = needs_openscad

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def snapshot(root):
    """Everything that must be reproducible: per split, ids, codes, image and view bytes, meshes."""
    result = {}
    for split in SPLITS:
        table = load(root, split, decode=False)
        rows = [
            (
                r["id"],
                r["seed"],
                r["code"],
                r["params"],
                r["image"]["bytes"],
                tuple(v["bytes"] for v in r["views"]),
            )
            for r in table
        ]
        meshes = [tuple(a.tobytes() for a in load_mesh(root, r)) for r in table]
        result[split] = (rows, meshes)
    return result


def test_plan_cycles_families_and_is_seeded():
    slots = plan(40, 0)
    families = [s.family for s in slots]
    assert len(set(families[:17])) == 17 and families[:17] == families[17:34]
    assert [s.base_seed for s in slots[:17]] == [0] * 17 and slots[17].base_seed == 1
    assert plan(40, 0) == slots and [s.family for s in plan(40, 1)] != families
    assert len({s.id for s in slots}) == 40
    assert chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_a_build_writes_every_part_and_a_build_json(tiny_build):
    root, info = tiny_build
    assert info["counts"]["requested"] == TINY_N
    assert info["counts"]["rendered"] + info["counts"]["failed"] == TINY_N
    assert (
        sum(info["splits"].values()) + info["counts"]["dropped_code_duplicate"] == info["counts"]["rendered"]
    )
    assert set(info["families"]) >= {r.family for r in plan(TINY_N, 0)}
    assert info["timing"]["parts_per_second"] > 0
    assert os.path.exists(os.path.join(root, "build.json"))
    train = load(root, "train")
    assert train[0]["image"].size == (128, 128) and len(train[0]["views"]) == 4


def test_the_same_seed_gives_the_same_dataset(tiny_build, tmp_path):
    root, _ = tiny_build
    build(tiny_settings(tmp_path / "again"), progress=False)
    assert snapshot(str(tmp_path / "again")) == snapshot(root)


def test_resuming_after_an_interruption_gives_the_same_dataset(tiny_build, tmp_path, capsys):
    import json

    root, _ = tiny_build
    out = tmp_path / "resumed"
    partial = build(tiny_settings(out), progress=False, chunk_limit=1)
    assert partial["complete"] is False
    assert len(glob.glob(str(out / "chunks" / "*.parquet"))) == 1 and not (out / "data").exists()
    build(tiny_settings(out), progress=False, chunk_limit=1)  # a second interruption
    second = sorted(glob.glob(str(out / "chunks" / "0*.json")))[1]
    meta = json.loads(open(second).read())
    with open(second, "w") as fh:  # as if the family generators had changed since
        json.dump({**meta, "plan_hash": "stale"}, fh)
    (out / "chunks" / "0000008-0000012.parquet.tmp").write_bytes(b"killed while writing")
    info = build(tiny_settings(out), progress=False)
    assert info["timing"]["chunks_resumed"] == 1
    assert "1 finished chunks were made by other family generators" in capsys.readouterr().err
    assert snapshot(str(out)) == snapshot(root)


def test_no_program_is_in_two_splits_and_held_out_families_only_in_test_ood(tiny_build):
    root, info = tiny_build
    holdout = set(info["settings"]["holdout"])
    seen = {}
    for split in SPLITS:
        for row in load(root, split, decode=False).select_columns(["family", "code"]):
            key = normalize_code(row["code"])
            assert seen.setdefault(key, split) == split
            assert (row["family"] in holdout) == (split == "test_ood")
    assert len(load(root, "test_ood")) > 0


def test_images_are_the_views_the_reward_renders_for_the_stored_mesh(tiny_build):
    """Same cameras, frame and shading as the reward's views, at the corpus's size (the reward
    compares at its own ``view_size``)."""
    from renderer.views import to_uint8
    from reward.score import Scorer

    root, info = tiny_build
    scorer = Scorer(size=info["settings"]["size"])
    for split in SPLITS:
        for row in load(root, split, decode=False):
            target = scorer.prepare(*load_mesh(root, row)).images
            views = np.stack([to_uint8(decode_png(v["bytes"])) for v in row["views"]])
            assert np.abs(views.astype(int) - to_uint8(target).astype(int)).max() <= 1
            assert row["image"]["bytes"] == row["views"][0]["bytes"]  # the iso camera comes first


def test_ray_workers_give_the_same_dataset(tiny_build, tmp_path):
    root, _ = tiny_build
    build(tiny_settings(tmp_path / "ray", workers=2), progress=False)
    assert snapshot(str(tmp_path / "ray")) == snapshot(root)


def _cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "corpus.build", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_builds_a_dataset_that_load_dataset_reads(tmp_path):
    from datasets import load_dataset

    out = tmp_path / "cli"
    proc = _cli(
        "--n", "3", "--out", str(out), "--workers", "0", "--quiet", "--holdout_families", "gear,plate"
    )
    assert proc.returncode == 0, proc.stderr
    assert "3/3 parts rendered" in proc.stdout
    files = {s: glob.glob(str(out / "data" / f"{s}-*.parquet")) for s in SPLITS}
    table = load_dataset("parquet", data_files={k: v for k, v in files.items() if v})
    assert sum(len(t) for t in table.values()) == 3


def test_cli_fractions_choose_the_splits_and_are_in_the_reproducing_command(tmp_path):
    import json

    out = tmp_path / "all_test"
    proc = _cli("--n", "3", "--out", str(out), "--workers", "0", "--quiet", "--fractions", "0,0,1",
                "--families", "washer,plate", "--holdout_families", "plate")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "build.json").read_text())
    assert info["splits"]["test"] == 2 and info["splits"]["test_ood"] == 1
    assert info["splits"]["train"] == info["splits"]["val"] == 0
    assert "--fractions 0,0,1" in info["command"] and info["settings"]["fractions"] == [0, 0, 1]


def test_cli_bad_n_or_out_is_a_one_line_error(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        ("--n", "0", "--out", str(tmp_path / "a")),
        ("--n", "many", "--out", str(tmp_path / "a")),
        ("--n", "3", "--out", str(a_file)),
        ("--n", "3", "--out", str(foreign)),
        ("--n", "3", "--out", str(tmp_path / "b"), "--holdout_families", "nope"),
    ]
    for args in cases:
        proc = _cli(*args, "--workers", "0")
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("corpus.build: error:")
    assert a_file.read_text() == "x" and os.listdir(foreign) == ["notes.txt"]


@pytest.mark.parametrize(
    "option, value",
    [("max_tries", "0"), ("chunk_size", "-1"), ("workers", "many"), ("size", "4"), ("timeout", "x"),
     ("fractions", "0.9,0.1"), ("fractions", "1,-1,0.5")],
)
def test_cli_bad_value_is_one_line_naming_the_key(option, value, tmp_path, capsys):
    from corpus.build_cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["--n", "3", "--out", str(tmp_path / "o"), f"--{option}", value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("corpus.build: error:") and err.count("\n") == 1 and option in err, err
    assert not (tmp_path / "o").exists()


def test_cli_kebab_case_options_are_gone(tmp_path, capsys):
    from corpus.build_cli import main

    with pytest.raises(SystemExit):
        main(["--n", "3", "--out", str(tmp_path / "o"), "--max-tries", "2"])
    assert "unrecognized arguments: --max-tries 2" in capsys.readouterr().err


class FlakyPool:
    """Stands in for RenderPool (no OpenSCAD): every program of the first ``fail_rounds``
    batches fails, every later one succeeds."""

    def __init__(self, fail_rounds):
        self.fail_rounds = fail_rounds
        self.rounds = 0

    def score(self, requests):
        from corpus.dataset import RenderRecord

        self.rounds += 1
        status = "syntax_error" if self.rounds <= self.fail_rounds else "ok"
        return [RenderRecord(status, 0.1, "ERROR: nope" if status != "ok" else "") for _ in requests]


def test_failed_tries_are_retried_with_derived_seeds_and_counted():
    from corpus.build import render_with_retries
    from corpus.families import derive_seed

    slots = plan(5, 0)
    accepted, rejects = render_with_retries(FlakyPool(fail_rounds=2), slots, max_tries=5)
    assert [part.seed for _, part, _ in accepted] == [derive_seed(s.base_seed, 2) for s in slots]
    assert len(rejects) == 10 and {r["attempt"] for r in rejects} == {0, 1}
    assert rejects[0]["status"] == "syntax_error" and rejects[0]["detail"] == "ERROR: nope"
    accepted, rejects = render_with_retries(FlakyPool(fail_rounds=9), slots, max_tries=3)
    assert accepted == [] and len(rejects) == 15


def test_canonical_faces_keep_orientation_and_sort():
    from corpus.dataset import canonical_faces

    faces = np.array([[3, 1, 2], [0, 5, 4], [2, 3, 1]])
    assert canonical_faces(faces).tolist() == [[0, 5, 4], [1, 2, 3], [1, 2, 3]]
    assert canonical_faces(faces[::-1]).tolist() == canonical_faces(faces).tolist()
