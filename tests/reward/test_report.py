"""reward.report: the HTML page, its summary figures, the reward-hack detectors and the CLI's errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reward import report_checks as checks
from reward.records import SampleRecord, load_records, read_records, write_records
from reward.report import build_report

CHROMIUM = "/usr/bin/chromium"


def view_row(side: int | None, gray: int = 120) -> np.ndarray:
    """Four 128 px views on white, each with a centred gray square of ``side`` px (None: blank)."""
    row = np.full((128, 512), 255, np.uint8)
    if side:
        lo = (128 - side) // 2
        for v in range(4):
            row[lo : lo + side, v * 128 + lo : v * 128 + lo + side] = gray
    return row


def save_png(folder: Path, name: str, pixels: np.ndarray) -> str:
    Image.fromarray(pixels).save(folder / name)
    return name


def ok(id, target, code, ssim=0.8, chamfer=0.7, iou=0.75, pred="pred_ok.png", **kw):
    total = (ssim + chamfer + iou + 0.1) / 3.1
    return SampleRecord(
        id=id, target_id=target, code=code, status="ok", total=total, ssim=ssim, chamfer=chamfer, iou=iou,
        valid=1.0, chamfer_distance=0.03, render_seconds=0.2, score_seconds=0.05,
        target_views="target.png", pred_views=pred, **kw,
    )  # fmt: skip


def failed(id, target, status, stderr=""):
    return SampleRecord(
        id=id, target_id=target, code="cube(;", status=status, total=-1.0, render_seconds=0.1,
        target_views="target.png", pred_views="blank.png", stderr=stderr,
    )  # fmt: skip


def planted_records() -> list[SampleRecord]:
    """Four clean samples and one sample planted for each detector (ids say which)."""
    return [
        ok("clean1", "t1", "cube([10, 20, 5]);", ssim=0.9, chamfer=0.8, iou=0.85),
        ok("clean2", "t2", "cylinder(r=4, h=9);", ssim=0.7, chamfer=0.6, iou=0.65),
        ok("clean3", "t3", "if (1 < 2) sphere(r=6);", ssim=0.5, chamfer=0.5, iou=0.4),
        ok("clean4", "t4", "translate([1,0,0]) cube(3);", ssim=0.3, chamfer=0.4, iou=0.2, pred="gone.png"),
        ok("hack_ssim", "t5", "cube(7);", ssim=0.85, iou=0.1),
        ok("hack_blank", "t6", "cube(0.001);", pred="blank.png"),
        ok("hack_huge", "t7", "cube(1000);", pred="pred_huge.png"),
        ok("hack_same1", "t8", "difference() { cube(5); sphere(3); }"),
        ok("hack_same2", "t9", "difference(){cube(5);  // hole\n sphere(3);}"),
        ok("hack_same3", "t10", "/* same */ difference() {\n  cube( 5 );\n  sphere( 3 );\n}"),
        failed("fail_syntax", "t1", "syntax_error", "ERROR: Parser error in file <stdin>, line 1"),
        failed("hack_degenerate", "t2", "degenerate"),
    ]


EXPECTED_FLAGS = {
    "high_ssim_low_iou": ["hack_ssim"],
    "blank_render": ["hack_blank"],
    "huge_render": ["hack_huge"],
    "same_program": ["hack_same1", "hack_same2", "hack_same3"],
    "degenerate": ["hack_degenerate"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A records folder with planted samples and its report: ``(records path, out dir, html path)``."""
    folder = tmp_path_factory.mktemp("run")
    save_png(folder, "target.png", view_row(40))
    save_png(folder, "pred_ok.png", view_row(44))
    save_png(folder, "pred_huge.png", view_row(100))
    save_png(folder, "blank.png", view_row(None))
    records = write_records(folder / "records.jsonl", planted_records())
    with records.open("a") as f:
        f.write("{not json at all\n")
    out = folder / "report"
    page = build_report(records, out, top_k=3, title="Planted run")
    return records, out, Path(page)


def test_writes_html_and_summary(built):
    _, out, page = built
    assert page == out / "index.html" and page.is_file()
    assert (out / "summary.json").is_file()


def test_every_image_is_embedded_as_a_data_uri(built):
    text = built[2].read_text()
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) >= 6 + 2 * 3  # plots, then target and prediction of top-3 and bottom-3 samples
    assert all(src.startswith("data:image/") for src in sources)
    assert "<link" not in text and "<script" not in text


def test_summary_numbers_for_known_inputs(built):
    summary = json.loads((built[1] / "summary.json").read_text())["summary"]
    valid = [r for r in planted_records() if r.valid > 0]
    assert summary["count"] == 12 and summary["valid"] == 10
    assert summary["valid_pct"] == pytest.approx(100 * 10 / 12)
    assert summary["terms"]["iou"]["mean"] == pytest.approx(np.mean([r.iou for r in valid]))
    assert summary["terms"]["iou"]["min"] == pytest.approx(0.1)
    assert summary["total_mean_all"] == pytest.approx(np.mean([r.total for r in planted_records()]))
    assert summary["distinct_targets"] == 10
    assert summary["status_counts"] == {"ok": 10, "syntax_error": 1, "degenerate": 1}


def test_each_detector_flags_its_planted_sample_and_no_clean_one(built):
    figures = json.loads((built[1] / "summary.json").read_text())
    assert figures["hack_ids"] == EXPECTED_FLAGS
    assert figures["hacks"] == {k: len(v) for k, v in EXPECTED_FLAGS.items()}


def test_corrupt_line_is_skipped_and_counted(built):
    records, out, page = built
    loaded = load_records(records)
    assert len(loaded.records) == 12 and [n for n, _ in loaded.skipped] == [13]
    assert json.loads((out / "summary.json").read_text())["skipped_lines"] == 1
    assert "1 bad JSONL line(s) skipped" in page.read_text()


def test_missing_image_shows_no_image(built):
    assert "no image (gone.png)" in built[2].read_text()


def test_code_and_stderr_are_html_escaped(built):
    text = built[2].read_text()
    assert "file &lt;stdin&gt;, line 1" in text and "<stdin>" not in text
    assert "if (1 &lt; 2) sphere(r=6);" in text


def test_records_round_trip(tmp_path):
    records = planted_records()
    path = write_records(tmp_path / "sub" / "r.jsonl", records)
    assert read_records(path) == records


def test_high_ssim_low_iou_detector():
    records = [ok("a", "t", "x", ssim=0.7, iou=0.3), ok("b", "t", "y", ssim=0.69, iou=0.1),
               ok("c", "t", "z", ssim=0.95, iou=0.31), failed("d", "t", "syntax_error")]  # fmt: skip
    assert [f.id for f in checks.high_ssim_low_iou(records)] == ["a"]


def test_blank_render_detector_skips_failed_and_missing():
    records = [
        ok("blank", "t", "a"),
        ok("fine", "t", "b"),
        failed("failed", "t", "empty"),
        ok("none", "t", "c"),
    ]
    images = {"blank": view_row(None), "fine": view_row(20), "failed": view_row(None), "none": None}
    assert [f.id for f in checks.blank_renders(records, images)] == ["blank"]


def test_huge_render_detector_relative_and_absolute():
    records = [ok("double", "t", "a"), ok("triple", "t", "b"), ok("full", "t", "c")]
    target = view_row(40)
    preds = {"double": view_row(56), "triple": view_row(70), "full": np.full((128, 512), 100, np.uint8)}
    flagged = checks.huge_renders(records, preds, {k: target for k in preds})
    assert [f.id for f in flagged] == ["triple", "full"]
    assert [f.id for f in checks.huge_renders(records, preds, {})] == [
        "full"
    ]  # no target: only the 90 % rule


def test_same_program_detector_needs_distinct_targets():
    many = [ok(f"s{i}", f"t{i}", "cube(5); // v" + str(i)) for i in range(3)]
    one_target = [ok(f"r{i}", "t_same", "sphere(2);") for i in range(5)]
    others = [ok(f"o{i}", f"u{i}", f"cylinder(h={i});") for i in range(20)]
    flagged = checks.repeated_programs(many + one_target + others)
    assert sorted(f.id for f in flagged) == ["s0", "s1", "s2"]


def test_normalise_code_ignores_comments_and_whitespace_not_strings():
    assert checks.normalise_code("cube( 5 ) ;/* a */\n// b\n") == checks.normalise_code("cube(5);")
    assert checks.normalise_code('echo("a // b");') == 'echo("a // b");'


def test_degenerate_detector():
    records = [failed("d", "t", "degenerate"), failed("e", "t", "empty"), ok("o", "t", "cube(1);")]
    assert [f.id for f in checks.degenerate(records)] == ["d"]


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    x = [0.1, 0.4, 0.4, 0.9, 0.2, 0.7, 0.7, 0.7]
    y = [0.3, 0.1, 0.5, 0.8, 0.2, 0.9, 0.4, 0.6]
    assert checks.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert checks.pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert checks.spearman([1, 1, 1], [1, 2, 3]) is None


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "reward.report", *map(str, args)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cli_builds_the_report_and_prints_its_path(built, tmp_path):
    result = run_cli(built[0], "--out", tmp_path / "cli", "--top_k", "1", "--title", "CLI run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "cli" / "index.html")
    assert "<title>CLI run</title>" in (tmp_path / "cli" / "index.html").read_text()


def test_cli_missing_file_exits_2_with_one_line(tmp_path):
    result = run_cli(tmp_path / "nope.jsonl", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "records file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_top_k_exits_2_naming_the_key(tmp_path):
    result = run_cli(tmp_path / "r.jsonl", "--out", tmp_path / "out", "--top_k", "-1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("reward.report: error:") and "top_k must be >= 0" in result.stderr


def test_cli_file_without_records_exits_2(tmp_path):
    (tmp_path / "bad.jsonl").write_text('[1, 2]\n{"id": 3}\n\n')
    result = run_cli(tmp_path / "bad.jsonl", "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no readable records" in result.stderr and "2 bad line(s)" in result.stderr


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed at /usr/bin/chromium")
def test_headless_chromium_screenshot_is_not_blank(built, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
         built[2].resolve().as_uri()],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert (pixels < 80).mean() > 0.001  # text and plots, not an empty page
