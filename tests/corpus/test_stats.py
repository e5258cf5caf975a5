"""corpus.stats: the dataset card and the contact sheet."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from corpus.dataset import read_build_info
from corpus.stats import card, contact_sheet, distribution, read_columns
from tests.conftest import needs_openscad

pytestmark = needs_openscad

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_distribution_gives_min_median_p95_max():
    assert distribution([1, 2, 3, 4, 100]) == "1 / 3 / 80.8 / 100"
    assert distribution([]) == "-"


def test_card_counts_every_family_and_split(tiny_build):
    root, info = tiny_build
    tables = read_columns(root, info)
    text = card(root, tables, info)
    assert list(tables) == ["train", "val", "test", "test_ood"]
    for family, figures in info["families"].items():
        line = next(ln for ln in text.splitlines() if ln.startswith(family + " "))
        assert int(line.split()[5]) == sum(figures["splits"].get(s, 0) for s in tables)
    assert "code length, bytes" in text and "OpenSCAD time, s" in text and "reject%" in text


def test_contact_sheet_is_seeded(tiny_build, tmp_path):
    root, info = tiny_build
    tables = read_columns(root, info)
    a = contact_sheet(root, tables, str(tmp_path / "a.png"), samples=3, seed=5)
    b = contact_sheet(root, tables, str(tmp_path / "b.png"), samples=3, seed=5)
    sheet = np.asarray(Image.open(a))
    assert np.array_equal(sheet, np.asarray(Image.open(b)))
    assert sheet.shape[1] > 4 * 128 and sheet.shape[0] > 3 * 128


def test_cli_prints_the_card_and_writes_the_sheet(tiny_build, tmp_path):
    root, _ = tiny_build
    sheet = tmp_path / "sheet.png"
    proc = subprocess.run(
        [sys.executable, "-m", "corpus.stats", root, "--sheet", str(sheet), "--samples", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"# corpus card: {root}") and sheet.exists()
    assert read_build_info(root)["kind"] == "build"
    bad = subprocess.run(
        [sys.executable, "-m", "corpus.stats", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
