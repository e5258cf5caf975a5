"""rl.refine and reward.agreement on real OpenSCAD renders (an in-process RenderPool): the budgets hold,
a failed render is never kept, the result is never worse than the start, only literals change."""

from __future__ import annotations

import time

import numpy as np
import pytest

from configs.eval import OPTIMISERS
from renderer.literals import find_literals
from renderer.openscad import run
from renderer.pool import RenderPool
from reward.agreement import INVALID, AgreementScorer, own_frame_views, picture_cameras
from rl.refine import OPTIMISE, RefineSettings, pick, refine
from tests.conftest import needs_openscad

pytestmark = needs_openscad

TARGET = "cube([20, 10, 6]);"
START = "// a box\nw = 11; $fn = 24;\ncube([w, 12.5, 6]);\n"


class CountingPool(RenderPool):
    """An in-process pool that counts the programs it renders and remembers each agreement."""

    def __init__(self):
        super().__init__(AgreementScorer(), workers=0)
        self.rendered: list[tuple[str, object]] = []

    def score(self, batch):
        results = super().score(batch)
        self.rendered += [(request.code, result) for request, result in zip(batch, results, strict=True)]
        return results


def picture_of_program(code: str) -> np.ndarray:
    result = run(code)
    assert result.ok, result.stderr
    return own_frame_views(result.vertices, result.faces, picture_cameras(1), 128)


@pytest.fixture(scope="module")
def target_picture():
    return picture_of_program(TARGET)


@pytest.fixture
def pool(target_picture):
    pool = CountingPool()
    pool.add_target("t", target_picture, None)
    return pool


def test_agreement_is_highest_for_the_pictured_program_and_invalid_for_a_broken_one(pool):
    own, other, broken = (a.total for a in pick(pool, "t", [TARGET, START, "cube([1,"])[1])
    assert own > 0.99 and 0 < other < own and broken == INVALID


def test_with_a_mesh_the_frame_terms_count_size(target_picture):
    result = run(TARGET)
    pool = RenderPool(AgreementScorer(), workers=0)
    pool.add_target("m", None, (result.vertices, result.faces))
    same, twice = pick(pool, "m", [TARGET, "cube([40, 20, 12]);"])[1]
    assert same.total > 0.99 and same.chamfer > 0.99 and same.iou > 0.99
    assert twice.ssim > 0.99  # the same shape in its own frame ...
    assert twice.iou < 0.5 and twice.total < same.total  # ... but twice the size in the mesh's frame


def test_pick_never_keeps_an_invalid_program_and_prefers_the_earlier_on_a_tie(pool):
    index, agreements = pick(pool, "t", ["cube([1,", START, TARGET, TARGET])
    assert index == 2 and not agreements[0].valid
    assert pick(pool, "t", ["cube([1,", "sphere("])[0] == 0  # none valid: the first


def test_every_optimiser_the_options_offer_has_a_search():
    assert set(OPTIMISE) == set(OPTIMISERS)
    with pytest.raises(ValueError, match="optimiser"):
        RefineSettings(optimiser="nelder-mead")


@pytest.mark.parametrize("optimiser", OPTIMISERS)
def test_refine_improves_and_never_exceeds_the_render_budget(pool, optimiser):
    settings = RefineSettings(renders=25, seconds=60, optimiser=optimiser, popsize=6)
    result = refine(START, pool, "t", settings, progress=False)
    assert len(pool.rendered) == result.renders <= 25
    assert result.best.total > result.start.total
    assert dict(pool.rendered)[result.code].total == result.best.total  # the text returned is what scored
    assert result.stopped in ("renders", "converged")


@pytest.mark.parametrize("renders", [1, 2, 3])
def test_a_tiny_render_budget_counts_the_start_it_renders(pool, renders):
    result = refine(START, pool, "t", RefineSettings(renders=renders, popsize=4), progress=False)
    assert len(pool.rendered) == result.renders <= renders
    assert result.stopped == "renders" and (renders > 1 or result.code == START)


def test_refine_changes_only_tunable_literals_and_rounds_them(pool):
    result = refine(START, pool, "t", RefineSettings(renders=20, seconds=60), progress=False)
    before, after = find_literals(START), find_literals(result.code)
    assert result.changed and len(before) == len(after)
    assert all(a.text == b.text for a, b in zip(after, before, strict=True) if b.frozen)  # $fn = 24
    def outside(code, lits):
        return [code[x.end:y.start] for x, y in zip(lits, lits[1:], strict=False)], code[:lits[0].start]

    assert outside(START, before) == outside(result.code, after)  # every other character is unchanged
    assert START[before[-1].end:] == result.code[after[-1].end:]
    w = next(a for a, b in zip(after, before, strict=True) if b.text == "11")
    assert w.is_int and w.text.isdigit()  # an integer stays an integer
    assert all(len(a.text.partition(".")[2]) <= 2 for a in after)  # 0.01 precision


def test_a_failed_candidate_is_never_kept(pool):
    """Every w >= 13 fails its assert; the target wants w = 20, so the best valid program is below it."""
    code = "w = 10;\nassert(w < 13);\ncube([w, 10, 6]);\n"
    result = refine(code, pool, "t", RefineSettings(renders=30, seconds=60), progress=False)
    failed = [text for text, agreement in pool.rendered if not agreement.valid]
    assert failed, "the search never tried a failing program: the test proves nothing"
    assert result.code not in failed and result.best.valid and run(result.code).ok
    assert result.best.total >= max(a.total for _, a in pool.rendered)


def test_never_worse_than_the_start(pool):
    """The pictured program itself: nothing is strictly better, so it comes back as it was."""
    result = refine(TARGET, pool, "t", RefineSettings(renders=20, seconds=60), progress=False)
    assert result.best.total >= result.start.total and result.code == TARGET
    assert all(a.total <= result.start.total for _, a in pool.rendered)


@pytest.mark.parametrize("code", [
    "// no number at all\nmodule m() { cube(size = PI); }\nm();",
    "$fn = 16;  // only a frozen literal and a zero\nc = PI;\n"
    "rotate_extrude() translate([c, 0]) circle(r = PI / c);",
])
def test_no_tunable_literal_comes_back_unchanged_without_a_search(pool, code):
    result = refine(code, pool, "t", RefineSettings(renders=20, seconds=60), progress=False)
    assert result.code == code and result.stopped == "no_literals" and result.renders == 1


def test_an_invalid_start_comes_back_unchanged(pool):
    result = refine("cube([w, 2, 3]);\nw = 4;\nassert(false);", pool, "t", RefineSettings(renders=20),
                    progress=False)
    assert result.stopped == "invalid_start" and result.renders == 1 and not result.best.valid


@pytest.mark.parametrize("optimiser", ["powell", "cma"])
def test_the_seconds_budget_holds(pool, optimiser):
    slow = ("// about 0.15 s a render\n"
            "difference() { cube([20, 10, 6]); translate([5, 5, -1]) cylinder(r = 3, h = 8, $fn = 64); }")
    started = time.monotonic()
    result = refine(slow, pool, "t", RefineSettings(renders=10_000, seconds=1.5, optimiser=optimiser),
                    progress=False)
    elapsed = time.monotonic() - started
    assert result.stopped == "seconds" and 1 < result.renders < 10_000
    longest = max(a.seconds for _, a in pool.rendered)  # no new render starts unless one fits
    assert elapsed <= 1.5 + longest + 0.25, (elapsed, longest)
