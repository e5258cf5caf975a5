"""renderer.literals: OpenSCAD's numeric literals found by its own lexical rules, and substituted alone."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.literals import find_literals, format_value, substitute, tunable
from tests.conftest import needs_openscad


def texts(code: str, only_tunable: bool = False) -> list[str]:
    literals = find_literals(code)
    return [lit.text for lit in (tunable(literals) if only_tunable else literals)]


def test_comments_are_skipped_line_and_block_and_unterminated():
    code = "// 12 mm plate\ncube(7); /* 8\n 9 */ sphere(3);\n/* 4"
    assert texts(code) == ["7", "3"]


def test_strings_are_skipped_with_escaped_quotes():
    code = 'echo("size 5 \\" 6", "a\\\\"); cube(3); echo("7'
    assert texts(code) == ["3"]


def test_include_and_use_paths_are_not_literals():
    assert texts("include <MCAD/gears2.scad>\nuse <lib3.scad>\ncube(4);") == ["4"]


@pytest.mark.parametrize("code, value", [
    ("x = 1e-3;", 1e-3), ("x = 2.5E+2;", 250.0), ("x = .5;", 0.5), ("x = 5.;", 5.0), ("x = 1e5;", 1e5),
])
def test_exponent_and_dotted_literals_are_one_literal(code, value):
    (literal,) = find_literals(code)
    assert literal.value == value and literal.text == code[4:-1] and not literal.is_int


def test_identifiers_with_digits_are_not_literals():
    """OpenSCAD takes the longer match: 1e5a, 2d_shape and 0x10 are identifiers (no hex literals)."""
    assert texts("x2 = 1; 2d_shape = 1e5a + 0x10 + v[3];") == ["1", "3"]


def test_a_negative_literal_is_unsigned_and_keeps_its_sign_when_scaled():
    code = "translate([-2.5, 0, -1e1]) cube(1);"
    literals = tunable(find_literals(code))  # the 0 is not tunable
    assert [lit.value for lit in literals] == [2.5, 10.0, 1.0]
    assert code[literals[0].start - 1] == "-"
    assert substitute(code, literals, [5.0, 20.0, 1.0]) == "translate([-5, 0, -20]) cube(1);"


def test_special_variables_are_frozen_to_the_end_of_their_value():
    code = "$fn = 48; $fa = 12; $fs = 0.5;\ncylinder(d = 5, $fn = 2 * 16, h = 3);\nfoo($fs = f(1, 2), 7);"
    frozen = {lit.text: lit.frozen for lit in find_literals(code)}
    assert [lit.text for lit in find_literals(code) if lit.frozen] == ["48", "12", "0.5", "2", "16", "1", "2"]
    assert not frozen["5"] and not frozen["3"] and not frozen["7"]
    assert texts(code, only_tunable=True) == ["5", "3", "7"]


def test_a_comparison_with_a_special_variable_is_not_an_assignment():
    assert texts("if ($t == 2) cube(3);", only_tunable=True) == ["2", "3"]


def test_a_program_without_literals_comes_back_unchanged():
    code = "// no numbers here\nmodule m() { cube(size); }\nm();\n"
    assert find_literals(code) == [] and substitute(code, [], []) == code


def test_substitute_changes_only_the_given_literals():
    code = "w = 2.50; // 40\nh = 8;\n$fn = 32;\ncube([w, h, 3.25]);\n"
    literals = find_literals(code)
    chosen = [lit for lit in literals if lit.text in ("8", "3.25")]
    out = substitute(code, chosen, [11.6, 3.2449])
    assert out == "w = 2.50; // 40\nh = 12;\n$fn = 32;\ncube([w, h, 3.24]);\n"


def test_an_unchanged_value_keeps_its_original_text():
    code = "a = 2.50; b = 1e1; c = 007;"
    literals = find_literals(code)
    assert substitute(code, literals, [lit.value for lit in literals]) == code


def test_an_unchanged_value_with_more_decimals_than_written_ones_keeps_its_text_and_the_offsets():
    """A corpus sprocket's chain pitch 9.525 was rewritten 9.53 when another literal changed, which
    moved every later literal: the dimension solve then read the wrong number and stopped rl.eval."""
    code = "pitch = 9.525;\nbore_d = 8;\ncylinder(d = bore_d, h = pitch);\n"
    literals = find_literals(code)
    out = substitute(code, literals, [9.525, 10.0, *(lit.value for lit in literals[2:])])
    assert out == "pitch = 9.525;\nbore_d = 10;\ncylinder(d = bore_d, h = pitch);\n"


@pytest.mark.parametrize("value, is_int, text", [
    (11.6, True, "12"), (0.3, True, "1"), (3.14159, False, "3.14"), (2.0, False, "2"),
    (0.0123, False, "0.012"), (0.5, False, "0.5"), (1234.5678, False, "1234.57"), (0.0, True, "0"),
])
def test_format_value_keeps_integers_integral_and_rounds_others(value, is_int, text):
    assert format_value(value, is_int) == text


def test_substitute_refuses_literals_of_another_program():
    with pytest.raises(ValueError):
        substitute("cube(12);", find_literals("cube(3);"), [4.0])


@needs_openscad
def test_substituted_literals_change_the_rendered_geometry_as_intended():
    from renderer.openscad import run

    code = "// box 1 2 3\n$fn = 16;\ncube([10, 20.5, 3e1]);\n"
    literals = tunable(find_literals(code))
    out = substitute(code, literals, [2 * lit.value for lit in literals])
    result = run(out)
    assert result.ok, result.stderr
    extent = np.ptp(np.asarray(result.vertices), axis=0)
    assert np.allclose(extent, [20, 41, 60]) and "$fn = 16;" in out and "// box 1 2 3" in out
