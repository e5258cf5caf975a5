"""bench/greedy_gap.py on hand-made rl.eval records: the figures it writes are the records' own."""

from __future__ import annotations

import json

import pytest

from bench.greedy_gap import gap
from reward.records import SampleRecord, write_records


def write_eval(folder, programs: dict[str, tuple[float, list[float]]]) -> str:
    """An rl.eval-shaped folder: per target, a greedy total and sampled totals."""
    records = []
    for target, (greedy, samples) in programs.items():
        records.append(SampleRecord(f"{target}/greedy", target, "cube(1);", "ok", greedy,
                                    extra={"mode": "greedy"}))
        records += [SampleRecord(f"{target}/s{i}", target, "cube(1);", "ok", s, extra={"mode": "sample"})
                    for i, s in enumerate(samples)]
    write_records(folder / "records.jsonl", records)
    (folder / "metrics.json").write_text(json.dumps({"split": "train", "k": 4, "temperature": 0.7}))
    return str(folder)


def test_greedy_sampled_best_and_the_share_beating_greedy(tmp_path):
    folder = write_eval(tmp_path / "e", {"a": (0.5, [0.1, 0.6, 0.51, 0.3]), "b": (0.2, [0.2, 0.2, 0.9, 0.0])})
    figures = gap(folder, margin=0.02)
    assert figures["images"] == 2 and figures["split"] == "train"
    assert figures["greedy_mean"] == pytest.approx(0.35)
    assert figures["sample_mean"] == pytest.approx((1.51 / 4 + 1.3 / 4) / 2)
    assert figures["best_of_k_mean"] == pytest.approx((0.6 + 0.9) / 2)
    # a: only 0.6 (0.51 is within the margin); b: only 0.9 (0.2 ties)
    assert figures["samples_beating_greedy"] == pytest.approx((1 / 4 + 1 / 4) / 2)


def test_an_evaluation_without_samples_is_refused(tmp_path):
    folder = write_eval(tmp_path / "e", {"a": (0.5, [])})
    with pytest.raises(SystemExit, match="--k 1 or more"):
        gap(folder, margin=0.02)
