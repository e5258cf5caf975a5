"""corpus.import: a folder of .scad (+ .png) files -> the corpus format; bad files reported and skipped."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from corpus.dataset import decode_png, load, load_mesh, read_build_info
from corpus.importer import find_programs, import_folder
from tests.conftest import needs_openscad

pytestmark = needs_openscad

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FILES = {
    "box.scad": "cube([10, 20, 5]);\n",
    "ring part.scad": "difference() { cylinder(r = 10, h = 5); cylinder(r = 4, h = 20, center = true); }\n",
    "broken.scad": "cube([10, 20, 5]\n",
    "empty.scad": "",
    "flat.scad": "square(10);\n",
    "sneaky.scad": "include </etc/passwd>\ncube(1);\n",
}


def user_folder(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for name, code in FILES.items():
        (folder / name).write_text(code)
    Image.fromarray(np.full((32, 48), 90, np.uint8)).save(folder / "box.png")
    (folder / "notes.txt").write_text("not a program")
    return folder


def test_find_programs_lists_scad_files_with_their_pictures(tmp_path):
    programs, skipped = find_programs(str(user_folder(tmp_path)))
    assert skipped == []
    assert [p.name for p in programs] == ["box", "broken", "empty", "flat", "ring part", "sneaky"]
    assert programs[0].png_path.endswith("box.png") and programs[1].png_path is None
    assert programs[4].id == "ring_part"


def test_broken_files_are_reported_and_the_rest_imported(tmp_path):
    out = tmp_path / "out"
    info, failures = import_folder(str(user_folder(tmp_path)), str(out), workers=0)
    assert {f.name: f.status for f in failures} == {
        "broken": "syntax_error",
        "empty": "empty",
        "flat": "not_3d",
        "sneaky": "forbidden",
    }
    assert next(f for f in failures if f.name == "broken").detail.startswith("ERROR")
    rows = load(str(out), "test", decode=False)
    assert rows["id"] == ["box", "ring_part"] and set(rows["family"]) == {"imported"}
    assert info["counts"] == {"files": 6, "rendered": 2, "failed": 4, "with_user_image": 1}
    box = rows[0]
    assert decode_png(box["user_image"]["bytes"]).shape == (32, 48) and rows[1]["user_image"] is None
    vertices, _ = load_mesh(str(out), box)
    assert np.allclose(vertices.max(0) - vertices.min(0), [10, 20, 5])
    assert decode_png(box["image"]["bytes"]).shape == (128, 128)  # rendered from the .scad, not the png
    assert read_build_info(str(out))["kind"] == "import"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "corpus.import", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_cli_prints_a_table_of_skipped_files(tmp_path):
    proc = _cli(str(user_folder(tmp_path)), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    assert table[0] == "skipped 4 of 6 files:" and table[1].split() == [
        "name",
        "status",
        "first",
        "error",
        "line",
    ]
    assert any(line.split()[:2] == ["sneaky", "forbidden"] for line in table)
    assert "imported 2 of 6 files (1 with a picture)" in proc.stdout


def test_cli_errors_are_one_line(tmp_path):
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.scad").write_text("cube(")
    for args in (
        [str(tmp_path / "missing"), "--out", str(tmp_path / "o1")],
        [str(nothing), "--out", str(tmp_path / "o2")],
        [str(bad), "--out", str(tmp_path / "o3")],
    ):
        proc = _cli(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("corpus.import: error:")
