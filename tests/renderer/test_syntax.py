"""renderer.syntax: what the prefix check refuses is a syntax error to the real OpenSCAD, what it
lets through parses, every corpus program passes, and letters, digits and spaces are never refused."""

import pytest

from corpus.families import FAMILIES, generate
from policies.constrained import PLAIN_TOKEN
from renderer.openscad import run
from renderer.syntax import ScadPrefix
from tests.conftest import needs_openscad

REFUSED = [
    "translate([18, 25();",  # ';' inside brackets (a policy's own error)
    "translate([18, 25() { cube(1); }",  # '{' inside brackets
    "base_w = 11);\ncube(1);",  # ')' closes nothing
    "translate([0, 0, 1, 0), 2]) cube(1);",  # ')' closes '['
    "thickness = 0.6.4;\ncube(1);",  # a number with two dots
    "web_t = ;\ncube(1);",  # no value after '='
    "f(a = );\ncube(1);",
    "16.4;\ncube(1);",  # a statement that is a number
    "cube(1);\n8;",
    "length = 65, 65;\ncube(1);",  # ',' outside brackets
    "cube(10)",  # ends with no ';'
    "x = [1, 2",  # ends with a bracket open
    "cube(1); /* open",  # ends in a comment
    's = "abc;\ncube(1);',  # ends in a string
    "x = 1;\ncube(1);\n/",
    "s\ndifference() cube(1);",  # two operands with nothing between
    "x = [1, b c];\ncube(x);",
    "x = a = 3;\ncube(1);",  # a second assignment in one statement
    "x = difference() { cube(1); }\ncube(1);",  # a block as a value
    "outer_d = < 17;\ncube(1);",  # an operator with nothing on its left
    "handle11;\ncube(1);",  # a statement that is a name alone
    "25US10;\ncube(1);",
    "x/2;\ncube(1);",
    "x.y = 2;\ncube(1);",
    "225855 = 4;\ncube(1);",  # a statement that begins with a number
    "16 /* c */;\ncube(1);",
    "translate([0, 0, -2, $fn = 32]) cube(1);",  # an assignment inside a list (a PPO policy's own)
    "x = [1, a = 2];\ncube(1);",
]
ACCEPTED = [
    "5size = 3;\ncube(5size);",  # a name may begin with digits
    "2d = 3;\ncube(2d);",
    "cube(1); // note ) ]",  # brackets in comments and strings are text
    'echo("a\\"); b");\ncube(1);',
    "x = [for (i = [0:2]) i * .5];\ncube(x[2] + 1);",
    "$fn = 16;\nmodule m() { sphere(2); }\nm();",
    "a = 2 == 2 ? 1 : 3;\ncube(a);",
    "width = 60;  // [30:5:120]\n/* [Hidden] */\ncube([width, 1, 1]);",
    "cube(1);;",
    "module m() cube(1);\nif (true) m(); else cube(2);",  # keywords a name may follow
    "x = [each [1, 2]];\ncube(x[1]);",
    "a = 1;\nb = a <= 2 ? 3 : 4;\ncube(b);",  # comparisons in a value
    "x = 2 == 2 ? 1 : 3;\ncube(x);",
    "function f(x) = let (y = 2) x * y;\ncube(f(1));",
    "module m(a = 1, b = 2) { cube(a + b); }\nm(b = 3);",  # named arguments
    "if (1 != 2) cube(1); else sphere(1);",
    "f = function(x) x * 2;\ncube(f(1));",
    "$fn=12;\nsphere(1);",
    "x = [1 == 1 ? 2 : 3, 2 <= 3 ? 1 : 0, 1 != 2 ? 4 : 5];\ncube(x);",  # comparisons inside a list
    "x = [for (i = [0:2]) let (j = i) j];\ncube(x[1] + 1);",
]


@needs_openscad
@pytest.mark.parametrize("code", REFUSED)
def test_refused_programs_are_syntax_errors_to_openscad(code):
    assert not ScadPrefix.accepts(code)
    assert run(code).status == "syntax_error"


@needs_openscad
@pytest.mark.parametrize("code", ACCEPTED)
def test_accepted_programs_parse(code):
    assert ScadPrefix.accepts(code)
    assert run(code).status == "ok"


def test_refusal_comes_at_the_character_that_makes_the_error():
    assert ScadPrefix.advance(ScadPrefix.START, "translate([18, 25()") is not None
    assert ScadPrefix.advance(ScadPrefix.START, "translate([18, 25();") is None
    assert ScadPrefix.advance(ScadPrefix.START, "x = 0.6") is not None
    assert ScadPrefix.advance(ScadPrefix.START, "x = 0.6.") is None
    digits = ScadPrefix.advance(ScadPrefix.START, "x = 1;\n4855")  # may still become a name: 4855x = 2;
    assert digits is not None and ScadPrefix.advance(digits, "x = 2;") is not None
    assert ScadPrefix.advance(digits, "\n") is None and ScadPrefix.advance(digits, " /* c */") is None
    open_state = ScadPrefix.advance(ScadPrefix.START, "cube([1, 2, 3])")
    assert not ScadPrefix.may_end(open_state) and ScadPrefix.may_end(ScadPrefix.advance(open_state, ";\n"))


def test_every_corpus_program_passes_and_plain_tokens_are_allowed_where_promised():
    programs = [generate(family, seed).code for family in sorted(FAMILIES) for seed in range(6)]
    states = set()
    for code in programs:
        state = ScadPrefix.START
        for char in code:
            states.add(state)
            state = ScadPrefix.advance(state, char)
            assert state is not None, code
        assert ScadPrefix.may_end(state), code
    plain = ["a", "Z", "_", "7", "cube", "x2 ", "05\n", " ", "\n\t"]
    assert all(PLAIN_TOKEN.fullmatch(text) for text in plain)
    for state in states:  # the promise policies.constrained relies on
        if ScadPrefix.plain_allowed(state):
            assert all(ScadPrefix.advance(state, text) is not None for text in plain), state


def test_deep_brackets_are_counted_not_refused():
    deep = "x = " + "[" * 14 + "1" + "]" * 14 + ";"
    assert ScadPrefix.accepts(deep)
    assert not ScadPrefix.accepts("x = " + "[" * 14 + "1" + "]" * 13 + ";")
