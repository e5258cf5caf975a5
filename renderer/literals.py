"""The numeric literals of an OpenSCAD program: where they are, and the program with new values.

Pure text, no OpenSCAD run. :func:`find_literals` lexes a program with OpenSCAD's own rules
(those of its ``lexer.l``, checked against OpenSCAD 2021.01):

- ``//`` line comments, ``/* */`` block comments, ``"..."`` strings (with ``\\`` escapes) and the
  ``<path>`` of ``include`` / ``use`` are skipped: a digit inside them is no literal;
- a number is ``D+ E? | D* . D+ E? | D+ . D* E?`` with ``E = [eE][+-]?D+``; an identifier is
  ``$?[A-Za-z0-9_]+``. The longer match wins and a tie is a number, so ``1e5`` is a number but
  ``1e5a``, ``2d_shape`` and ``0x10`` are identifiers (OpenSCAD has no hexadecimal literal);
- a literal is unsigned: in ``-1.5`` the ``-`` is OpenSCAD's unary operator, so scaling the
  literal by a positive factor keeps its sign.

A literal is **frozen** (never tuned) when it lies in the value given to a special variable
(``$fn``, ``$fa``, ``$fs``, or any ``$name``), as ``$fn = 48;`` or ``cylinder(d = 5, $fn = 32)``,
up to the ``,``, ``;`` or closing bracket that ends that value: it sets tessellation, not shape.

:func:`substitute` writes the program again with new values for some literals and every other
character untouched; :func:`format_value` is how a value is written (integers stay integers,
others rounded to 0.01, or two significant digits below 1). :func:`blanked` is the program with
its comments and strings turned to spaces, every offset kept (by the same rules).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NUMBER = re.compile(r"(?:\d+\.\d*|\d*\.\d+|\d+)(?:[eE][+-]?\d+)?")
"""A numeric literal as OpenSCAD lexes one (unsigned)."""
_IDENTIFIER = re.compile(r"\$?[A-Za-z0-9_]+")
_SPACE = re.compile(r"\s+")
DECIMALS = 2
"""Decimal places a tuned non-integer literal is written with (0.01 mm)."""


@dataclass(frozen=True)
class Literal:
    """One numeric literal of a program."""

    start: int
    """Offset of its first character in the program text."""
    end: int
    """Offset just past its last character."""
    text: str
    """As written, e.g. ``2.50`` or ``1e-3``."""
    value: float
    """Its value (always >= 0: a minus sign is an operator, not part of the literal)."""
    is_int: bool
    """Written with digits only (no ``.`` or exponent): tuned values stay integers."""
    frozen: bool
    """In the value of a special variable (``$fn = 48``): never tuned."""


def find_literals(code: str) -> list[Literal]:
    """Every numeric literal of ``code`` outside comments, strings and include paths, in order."""
    found: list[Literal] = []
    special_depth: int | None = None  # bracket depth of the value of a $variable being read
    depth = 0
    previous_id = ""  # the last identifier, while only spaces or comments followed it
    position, size = 0, len(code)
    while position < size:
        char = code[position]
        skipped = _skipped_end(code, position)
        if skipped is not None:  # a comment keeps the identifier before it; a string does not
            previous_id = "" if char == '"' else previous_id
            position = skipped
            continue
        if char.isspace():
            position = _SPACE.match(code, position).end()
            continue
        if char == "<" and previous_id in ("include", "use"):
            end = code.find(">", position)
            position = size if end < 0 else end + 1
            previous_id = ""
            continue
        number = NUMBER.match(code, position)
        word = _IDENTIFIER.match(code, position)
        if number and (word is None or number.end() >= word.end()):
            text = number.group()
            frozen = special_depth is not None
            found.append(Literal(position, number.end(), text, float(text), text.isdigit(), frozen))
            position, previous_id = number.end(), ""
            continue
        if word:
            previous_id = word.group()
            position = word.end()
            continue
        if char == "=" and previous_id.startswith("$") and not code.startswith("==", position):
            special_depth = depth
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if special_depth is not None and depth < special_depth:
                special_depth = None
        elif char in ",;" and special_depth is not None and depth == special_depth:
            special_depth = None
        previous_id = ""
        position += 1
    return found


def blanked(code: str) -> str:
    """``code`` with its comments and strings turned to spaces (newlines kept, so every offset is
    the same): what is left is code, its brackets and ``;`` the program's own."""
    out, position = [], 0
    while position < len(code):
        skipped = _skipped_end(code, position)
        if skipped is None:
            out.append(code[position])
            position += 1
        else:
            out.append(re.sub(r"[^\n]", " ", code[position:skipped]))
            position = skipped
    return "".join(out)


def _skipped_end(code: str, position: int) -> int | None:
    """Offset just past the comment or string that opens at ``position`` (the end of the text if
    unterminated); None when none opens there."""
    if code.startswith("//", position):
        end = code.find("\n", position)
        return len(code) if end < 0 else end
    if code.startswith("/*", position):
        end = code.find("*/", position + 2)
        return len(code) if end < 0 else end + 2
    if code[position] == '"':
        return _string_end(code, position)
    return None


def _string_end(code: str, start: int) -> int:
    """Offset just past the string that opens at ``start`` (the end of the text if unterminated)."""
    position = start + 1
    while position < len(code):
        if code[position] == "\\":
            position += 2
        elif code[position] == '"':
            return position + 1
        else:
            position += 1
    return len(code)


def tunable(literals: list[Literal]) -> list[Literal]:
    """The literals a search may change: not frozen and not zero (no factor moves a zero)."""
    return [lit for lit in literals if not lit.frozen and lit.value != 0.0]


def format_value(value: float, is_int: bool) -> str:
    """``value`` as an OpenSCAD literal: an integer for an integer literal (a positive value
    never rounds to 0), else rounded to :data:`DECIMALS` places (two significant digits below 1),
    without trailing zeros. Never negative and never in exponent form (``value`` is a magnitude).
    """
    value = abs(float(value))
    if value == 0.0 or not math.isfinite(value):
        return "0"
    if is_int:
        return str(max(1, int(math.floor(value + 0.5))))
    decimals = max(DECIMALS, 1 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def substitute(code: str, literals: list[Literal], values: list[float]) -> str:
    """``code`` with each of ``literals`` (from :func:`find_literals` of ``code``) written as the
    matching entry of ``values`` (:func:`format_value`); a value equal to the literal's own keeps
    its original text, and every other character is unchanged."""
    if len(literals) != len(values):
        raise ValueError(f"{len(literals)} literals but {len(values)} values")
    pieces, cursor = [], 0
    for literal, value in sorted(zip(literals, values, strict=True), key=lambda pair: pair[0].start):
        if code[literal.start:literal.end] != literal.text:
            raise ValueError(f"literal {literal.text!r} is not at offset {literal.start} of this program")
        text = format_value(value, literal.is_int)
        if value == literal.value or float(text) == literal.value:  # unchanged: its own text (9.525 stays)
            text = literal.text
        pieces += [code[cursor:literal.start], text]
        cursor = literal.end
    pieces.append(code[cursor:])
    return "".join(pieces)
