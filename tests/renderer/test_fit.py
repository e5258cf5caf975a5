"""renderer.fit: a program scaled per axis to a known size, checked with the real OpenSCAD."""

import numpy as np
import pytest

from renderer.fit import (
    extents_of,
    fit_factors,
    fit_program,
    fit_vertices,
    placed_program,
    scaled_program,
    size_agreement,
)
from renderer.openscad import run
from tests.conftest import needs_openscad

# a program with the definitions a real one has: variables, a module, a function
PROGRAM = """width = 30;
depth = 12;
function half(x) = x / 2;
module plate() { translate([0, -half(depth), 0]) cube([width, depth, 4]); }
difference() { plate(); translate([half(width), 0, -1]) cylinder(d = 5, h = 6, $fn = 24); }
"""


def test_factors_are_the_ratio_per_axis():
    assert np.allclose(fit_factors((30, 12, 4), (60, 6, 4)), (2.0, 0.5, 1.0))


@pytest.mark.parametrize("extents, size", [
    (None, (1, 1, 1)), ((1, 1, 1), None), ((30, 12, 0), (1, 1, 1)), ((30, 12, 4), (1, 0, 1)),
    ((30, 12, 4), (1, -2, 1)), ((30, np.nan, 4), (1, 1, 1)), ((30, 12, 4), (1, np.inf, 1)), ((1, 2), (1, 2)),
])
def test_no_fit_for_a_flat_render_or_a_size_that_is_not_three_positive_numbers(extents, size):
    assert fit_factors(extents, size) is None
    assert fit_program(PROGRAM, extents, size) == PROGRAM


@pytest.mark.parametrize("vertices", [None, [], [[0, 0]], [[0, 0, 0], [1, 1]], [[0, np.nan, 0]]])
def test_extents_of_bad_vertices_is_none(vertices):
    assert extents_of(vertices) is None


@needs_openscad
def test_the_fitted_program_renders_at_the_size_and_is_the_scaled_mesh():
    first = run(PROGRAM)
    assert first.ok and np.allclose(extents_of(first.vertices), (30, 12, 4), atol=1e-6)
    size = (45.0, 6.0, 10.0)
    fitted = fit_program(PROGRAM, extents_of(first.vertices), size)
    assert fitted != PROGRAM and PROGRAM.rstrip() in fitted, "the user's program is kept, inside a module"
    result = run(fitted)
    assert result.ok, result.stderr
    assert np.allclose(extents_of(result.vertices), size, atol=1e-4)
    scaled = fit_vertices(first.vertices, fit_factors(extents_of(first.vertices), size))  # as scored
    assert np.allclose(result.vertices.min(axis=0), scaled.min(axis=0), atol=1e-4)
    assert np.allclose(result.vertices.max(axis=0), scaled.max(axis=0), atol=1e-4)


@needs_openscad
def test_a_scaled_program_keeps_working_when_edited():
    edited = scaled_program(PROGRAM, (1.0, 1.0, 1.0)).replace("width = 30;", "width = 50;")
    result = run(edited)
    assert result.ok and np.allclose(extents_of(result.vertices), (50, 12, 4), atol=1e-6)


@needs_openscad
def test_a_program_that_uses_a_library_still_renders_fitted():
    code = "use <MCAD/regular_shapes.scad>\nlinear_extrude(height = 3) hexagon(5);\n"
    first = run(code)
    assert first.ok, first.stderr
    fitted = fit_program(code, extents_of(first.vertices), (20.0, 20.0, 6.0))
    assert fitted.startswith("use <MCAD/regular_shapes.scad>\nmodule ")
    result = run(fitted)
    assert result.ok, result.stderr
    assert np.allclose(extents_of(result.vertices), (20, 20, 6), atol=1e-4)


@needs_openscad
def test_a_placed_program_lands_on_the_box():
    first = run(PROGRAM)
    box = (np.array([-5.0, 10.0, 2.0]), np.array([40.0, 16.0, 12.0]))
    result = run(placed_program(PROGRAM, first.vertices, box))
    assert result.ok, result.stderr
    assert np.allclose(result.vertices.min(axis=0), box[0], atol=1e-4)
    assert np.allclose(result.vertices.max(axis=0), box[1], atol=1e-4)
    assert placed_program(PROGRAM, first.vertices, (box[0], box[0])) == PROGRAM, "a flat box: no fit"


@needs_openscad
def test_one_factor_scales_every_axis_alike():
    code = scaled_program(PROGRAM, 2.0)
    assert "scale(2) fitted_part();" in code
    result = run(code)
    assert result.ok and np.allclose(extents_of(result.vertices), (60, 24, 8), atol=1e-6)


@pytest.mark.parametrize(
    "extents, size, expected",
    [
        ((10, 20, 30), (10, 20, 30), 1.0),
        ((20, 40, 60), (10, 20, 30), 0.5),  # twice on every axis
        ((5, 10, 15), (10, 20, 30), 0.5),  # half on every axis
        ((80, 20, 30), (10, 20, 30), 0.5),  # eight times on one axis: the geometric mean
        ((0, 20, 30), (0, 20, 30), 1.0),  # flat in both
        (None, (10, 20, 30), 0.0),
        ((10, 20, 30), None, 0.0),
        ((10, np.nan, 30), (10, 20, 30), 0.0),
    ],
)
def test_size_agreement_is_the_geometric_mean_of_the_ratios(extents, size, expected):
    assert size_agreement(extents, size) == pytest.approx(expected)


def test_size_agreement_of_a_flat_render_against_a_solid_is_about_nothing():
    assert size_agreement((0, 20, 30), (10, 20, 30)) < 0.01
