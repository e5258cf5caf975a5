"""corpus.import on odd folder entries: the good programs import, each bad entry is one warning line,
glob characters in the folder name are plain characters, and a FIFO never hangs the import."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from corpus.importer import Skipped, find_programs
from tests.conftest import needs_openscad

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE = "cube([1, 2, 3]);\n"
FOLDER = "a folder, not a regular file"


@pytest.fixture
def no_hang():
    """Fail (instead of hanging) if the test body blocks for more than 10 s, e.g. opening a FIFO."""

    def timeout(signum, frame):
        raise TimeoutError("blocked for 10 s (a FIFO opened?)")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _picture(path):
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(path)


def good_pair(folder):
    """``folder`` (created) holding the program ``a.scad`` and its picture ``a.png``."""
    folder.mkdir()
    (folder / "a.scad").write_text(CODE)
    _picture(folder / "a.png")
    return folder


def _folder_scad(folder):
    (folder / "x.scad").mkdir()
    return [], [Skipped("x.scad", FOLDER)]


def _broken_symlink(folder):
    (folder / "y.scad").symlink_to(folder / "nowhere.scad")
    return [], [Skipped("y.scad", "a broken symlink")]


def _folder_png(folder):
    (folder / "z.scad").write_text(CODE)
    (folder / "z.png").mkdir()
    return [("z", None)], [Skipped("z.png", FOLDER)]


def _fifo(folder):
    os.mkfifo(folder / "f.scad")
    return [], [Skipped("f.scad", "a FIFO, not a regular file")]


def _hidden(folder):
    (folder / ".hidden.scad").write_text(CODE)
    return [], [Skipped(".hidden.scad", "a hidden file (the name starts with '.'); rename it to import it")]


def _upper_case(folder):
    (folder / "UPPER.SCAD").write_text(CODE)
    _picture(folder / "UPPER.PNG")
    return [("UPPER", "UPPER.PNG")], []


@pytest.mark.parametrize(
    "make",
    [_folder_scad, _broken_symlink, _folder_png, _fifo, _hidden, _upper_case],
    ids=["folder_named_x.scad", "broken_symlink", "folder_named_z.png", "fifo", "hidden", "upper_case"],
)
def test_each_bad_entry_is_skipped_with_a_reason_and_the_rest_found(tmp_path, no_hang, make):
    folder = good_pair(tmp_path / "parts")
    extra, expected_skipped = make(folder)
    programs, skipped = find_programs(str(folder))
    found = [(p.name, p.png_path and os.path.basename(p.png_path)) for p in programs]
    assert sorted(found) == sorted([("a", "a.png"), *extra]) and skipped == expected_skipped
    assert all((p.picture is None) == (p.png_path is None) for p in programs)


def test_glob_characters_in_the_folder_name_are_plain_characters(tmp_path):
    folder = good_pair(tmp_path / "d[1]")
    (folder / "b*.scad").write_text(CODE)
    programs, skipped = find_programs(str(folder))
    assert [p.name for p in programs] == ["a", "b*"] and skipped == []
    assert programs[0].picture == (folder / "a.png").read_bytes()


@needs_openscad
def test_cli_imports_the_good_files_and_warns_once_per_bad_entry(tmp_path):
    folder = good_pair(tmp_path / "d[1]")
    expected = []
    for make in (_folder_scad, _broken_symlink, _folder_png, _fifo, _hidden, _upper_case):
        expected += [f"corpus.import: warning: skipped {s.name!r}: {s.reason}" for s in make(folder)[1]]
    proc = subprocess.run(
        [sys.executable, "-m", "corpus.import", str(folder), "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stderr.splitlines()) == sorted(expected)
    assert "imported 3 of 3 files (2 with a picture)" in proc.stdout
