"""rl.demo_page: paths and names from records and summaries are escaped in attributes and text."""

from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

from rl.demo_page import example_rows, write_index

EVIL = "x'><script>alert(1)</script>"


def _attribute_values(page: str) -> list[str]:
    """The unescaped values of every ``src='…'`` / ``href='…'`` in ``page``."""
    return [html.unescape(v) for v in re.findall(r"(?:src|href)='([^']*)'", page)]


def test_example_rows_escape_record_paths(tmp_path):
    eval_dir = tmp_path / "eval" / "ppo_test"
    eval_dir.mkdir(parents=True)
    record = {"target_id": f"t{EVIL}", "target_views": f"views/{EVIL}.png", "pred_views": f"pred/{EVIL}.png",
              "total": 0.5, "iou": 0.25, "code": "cube(1); // </pre><script>", "extra": {"mode": "greedy"}}
    (eval_dir / "records.jsonl").write_text(json.dumps(record) + "\n")
    page = example_rows(str(eval_dir), str(tmp_path))
    assert "<script>" not in page and "&#x27;&gt;&lt;script&gt;" in page
    assert _attribute_values(page) == [f"eval/ppo_test/views/{EVIL}.png", f"eval/ppo_test/pred/{EVIL}.png"]


def _comparison(names: list[str]) -> dict:
    bootstrap = {"a_mean": 0.1, "b_mean": 0.2, "difference": 0.1, "ci95": [0.0, 0.2], "excludes_zero": True}
    return {"names": names, "n_paired": 2, "paired_bootstrap": {"reward": bootstrap},
            "figures": [{"figure": "reward", "format": ".3f", "a": 0.1, "b": 0.2, "difference": 0.1}]}


def test_index_escapes_paths_links_and_names(tmp_path):
    report = tmp_path / "eval" / EVIL.replace("/", "") / "index.html"
    report.parent.mkdir(parents=True)
    report.write_text("")
    summary = {
        "stages": {"sft": {"reused": False, "seconds": 3.0}},
        "comparisons": {"test": _comparison([f"sft{EVIL}", "ppo'"])},
        "ppo_throughput": {"samples_per_s_mean": 1.0, "share": {"render<script>": 0.5}},
        "curves": str(tmp_path / f"curves{EVIL}.png"),
        "example": str(tmp_path / f"example{EVIL}.png"),
        "ppo": {"report": None},
    }
    page = open(write_index(SimpleNamespace(out=str(tmp_path)), summary), encoding="utf-8").read()
    assert "<script>" not in page and "ppo'" not in page
    assert _attribute_values(page) == [f"curves{EVIL}.png", f"example{EVIL}.png",
                                       f"eval/{EVIL.replace('/', '')}/index.html"]
