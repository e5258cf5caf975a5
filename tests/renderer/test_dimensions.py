"""renderer.dimensions: a program's own numbers solved to a known size, checked with the real OpenSCAD."""

import numpy as np
import pytest

from renderer.dimensions import (
    COUNT_MAX,
    RESIDUAL,
    DimensionSettings,
    dimension,
    measure_with_openscad,
    parameters,
)
from renderer.fit import FITTED_MODULE, extents_of, fit_program, size_agreement
from renderer.literals import find_literals
from renderer.openscad import run
from tests.conftest import needs_openscad

WASHER = """inner_d = 8.4;
outer_d = 20;
thickness = 1.6;  // a comment; with 3 numbers [1, 2]
$fn = 48;

difference() {
    cylinder(d = outer_d, h = thickness);
    translate([0, 0, -1]) cylinder(d = inner_d, h = thickness + 2);
}
"""

# a plate with a count of holes that does not move its box, and a list of positions
PLATE = """length = 80;
width = 30;
thickness = 2;
holes = 4;
hole_d = 3.4;
marks = [[10, 10, 2], [20, 10, 2]];
difference() {
    cube([length, width, thickness]);
    for (i = [0 : holes - 1]) translate([10 + i * 15, width / 2, -1]) cylinder(d = hole_d, h = 4, $fn = 16);
    for (m = marks) translate([m[0], m[1], 1]) cylinder(d = m[2], h = 2, $fn = 8);
}
"""


measured = measure_with_openscad  # the real renders' bounding boxes (None: no mesh)


def value(code: str, name: str) -> float:
    """The number assigned to ``name`` at the top of ``code``."""
    line = next(line for line in code.splitlines() if line.startswith(f"{name} ="))
    return float(line.split("=")[1].split(";")[0])


def test_parameters_are_top_level_assignments_of_one_to_four_numbers():
    found = [lit.text for lit in parameters(WASHER)]
    assert found == ["8.4", "20", "1.6"]  # not $fn, nothing in the comment or the body
    found = [lit.text for lit in parameters(PLATE)]
    assert found == ["80", "30", "2", "4", "3.4"]  # the list of positions is no parameter
    inside_module = "module m() {\n  a = 5;\n  cube(a);\n}\nm();\n"
    assert [lit.text for lit in parameters(inside_module)] == ["5"]  # no assignment: its literals
    assert [lit.text for lit in parameters("cube([10, 20, 30]);")] == ["10", "20", "30"]
    assert parameters("cube([10, 20, 30]);", limit=2) == find_literals("cube([10, 20, 30]);")[:2]


@needs_openscad
def test_a_washer_gets_the_size_in_its_own_numbers():
    size = (25.0, 25.0, 1.6)
    [solved] = dimension([WASHER], measured([WASHER]), [size], measured)
    assert solved.clean and solved.program == solved.code and FITTED_MODULE not in solved.code
    assert value(solved.code, "outer_d") == pytest.approx(25, abs=0.01)
    assert value(solved.code, "thickness") == pytest.approx(1.6)
    assert value(solved.code, "inner_d") == pytest.approx(8.4)  # the hole follows the least growth (none)
    assert "$fn = 48;" in solved.code and "// a comment; with 3 numbers [1, 2]" in solved.code
    assert np.allclose(extents_of(run(solved.code).vertices), size, rtol=RESIDUAL)
    assert solved.before < 0.95 and solved.after >= 0.999
    assert solved.renders <= len(solved.changed) + 3 + DimensionSettings().iterations
    assert {c["before"] for c in solved.changed} == {"20"}


@needs_openscad
def test_a_shrinking_part_shrinks_its_holes_and_keeps_its_counts():
    size = (40.0, 15.0, 2.0)
    [solved] = dimension([PLATE], measured([PLATE]), [size], measured)
    assert solved.clean
    assert value(solved.code, "length") == pytest.approx(40)
    assert value(solved.code, "width") == pytest.approx(15)
    assert value(solved.code, "holes") == 4 <= COUNT_MAX  # a count that does not move the box
    assert value(solved.code, "hole_d") < 3.4  # an inner feature shrinks with its part
    assert "marks = [[10, 10, 2], [20, 10, 2]];" in solved.code
    assert np.allclose(extents_of(run(solved.program).vertices), size, rtol=RESIDUAL)


@needs_openscad
def test_a_size_the_numbers_cannot_reach_is_scaled_for_the_rest_and_never_farther():
    size = (50.0, 16.0, 1.0)  # a round washer cannot be 50 x 16
    [solved] = dimension([WASHER], measured([WASHER]), [size], measured)
    assert not solved.clean and solved.after >= solved.before
    assert "scale(" in solved.program and solved.program.startswith(f"module {FITTED_MODULE}()")
    assert np.allclose(extents_of(run(solved.program).vertices), size, rtol=1e-3)


@needs_openscad
def test_many_programs_share_each_round_of_renders():
    calls = []

    def counting(codes):
        calls.append(len(codes))
        return measured(codes)

    codes = [WASHER, PLATE]
    sizes = [(25.0, 25.0, 1.6), (40.0, 15.0, 2.0)]
    solved = dimension(codes, measured(codes), sizes, counting)
    assert [s.clean for s in solved] == [True, True]
    assert calls[0] == sum(len(parameters(c)) for c in codes)  # every probe of both in one round
    assert len(calls) <= 2 + DimensionSettings().iterations


def test_nothing_to_solve_comes_back_unchanged():
    never = []
    unchanged = dimension([WASHER, WASHER, "cube(0);"], [None, (20.0, 20.0, 1.6), (1.0, 1.0, 1.0)],
                          [(25.0, 25.0, 1.6), None, (2.0, 2.0, 2.0)], lambda codes: never.extend(codes) or [])
    assert [s.code for s in unchanged] == [WASHER, WASHER, "cube(0);"] and never == []
    assert all(s.renders == 0 and not s.changed and not s.clean for s in unchanged)
    assert unchanged[0].program == unchanged[1].program == WASHER  # no render, no size: as written
    assert unchanged[2].program == fit_program("cube(0);", (1.0, 1.0, 1.0), (2.0, 2.0, 2.0))  # no parameter


def test_candidates_that_fail_are_never_kept():
    """A fake measure (every probe and candidate fails) beside the real ones above: the logic alone."""
    start = np.array([20.0, 20.0, 1.6])
    [solved] = dimension([WASHER], [start], [(25.0, 25.0, 1.6)], lambda codes: [None] * len(codes))
    assert solved.code == WASHER and solved.after == solved.before == size_agreement(start, (25, 25, 1.6))
    assert solved.renders == 2 * len(parameters(WASHER))  # each probe, then its inverse


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="bad dimension settings"):
        DimensionSettings(probe=1.0)


def test_each_probe_moves_its_own_parameter_by_the_probe_factor_in_every_corpus_program():
    """A probe rewrites one number and keeps every other literal's text, so the probed one is read
    back where it was (a sprocket's 9.525 once became 9.53, shifted the later ones and stopped rl.eval)."""
    from corpus.families import FAMILIES, generate
    from renderer.dimensions import _Solve

    settings = DimensionSettings()
    for family in sorted(FAMILIES):
        for seed in range(4):
            code = generate(family, seed).code
            solve = _Solve(code, np.array([10.0, 10.0, 10.0]), np.array([20.0, 30.0, 40.0]), settings)
            solve.probes("probe")
            assert solve._probed, family
            for index, text, moved in solve._probed:
                before, after = find_literals(code), find_literals(text)
                assert [a.start for a, b in zip(before, after, strict=True) if a.text != b.text] == [
                    solve.literals[index].start], family
                assert moved == pytest.approx(np.log(settings.probe), abs=0.25), family
