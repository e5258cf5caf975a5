"""Shared helpers for the part families: seeded draws, number formatting, program headers.

A family generator is ``fn(draw: Draw) -> tuple[dict, str]``: it draws its parameters
from ``draw`` (already seeded) and returns them with the OpenSCAD program. Programs
are written the way a person writes them: named variables at the top (built with
:class:`Header`, which also records them as the part's parameters), then modules and
the geometry, with numbers rounded like a person would round them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def fmt(value: Any) -> str:
    """An OpenSCAD literal for a Python value: ``3.0 -> 3``, ``2.50 -> 2.5``, lists, bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as an OpenSCAD literal")


def rnd(x: float, step: float = 0.1) -> float:
    """``x`` rounded to a multiple of ``step`` (and to 3 decimals, to drop float noise)."""
    return round(round(x / step) * step, 3)


CUSTOMIZER_P = 0.2
"""Share of programs written in OpenSCAD Customizer style (sections, ranges on parameters)."""


class Draw:
    """Seeded draws of human-looking parameter values (wraps one ``random.Random``).

    The first draw decides the program's header style, so every family gets the same
    share of Customizer-style programs.
    """

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.customizer = rng.random() < CUSTOMIZER_P

    def header(self, title: str | None = None) -> Header:
        """A :class:`Header` in this program's style."""
        return Header(title, customizer=self.customizer)

    def num(self, lo: float, hi: float, step: float = 0.5) -> float:
        """A multiple of ``step`` in ``[lo, hi]`` (both rounded to the step), uniformly."""
        first, last = round(lo / step), round(hi / step)
        if last < first:
            last = first
        return rnd(self.rng.randint(first, last) * step, step)

    def int(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        return self.rng.randint(lo, max(lo, hi))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def weighted(self, options: dict[Any, float]) -> Any:
        """One key of ``options``, drawn with the given relative weights."""
        keys = list(options)
        return self.rng.choices(keys, weights=[options[k] for k in keys])[0]

    def flag(self, p: float = 0.5) -> bool:
        return self.rng.random() < p


class Header:
    """The ``name = value;`` block at the top of a program; also the part's parameters.

    With ``customizer=True`` it is written for OpenSCAD's Customizer: a ``/* [Parameters] */``
    section, a ``// [min:step:max]`` range after each plain number and ``$fn`` under
    ``/* [Hidden] */``.
    """

    def __init__(self, title: str | None = None, customizer: bool = False):
        self.lines: list[str] = [f"// {title}"] if title else []
        self.customizer = customizer
        if customizer:
            self.lines.append("/* [Parameters] */")
        self.params: dict[str, Any] = {}

    def __call__(self, name: str, value: Any, comment: str | None = None) -> Any:
        """Add ``name = value;`` (with an optional trailing comment); return ``value``."""
        line = f"{name} = {fmt(value)};"
        if self.customizer and name == "$fn":
            self.lines += ["", "/* [Hidden] */"]
        elif self.customizer and comment is None:
            comment = customizer_range(value)
        self.lines.append(f"{line}  // {comment}" if comment else line)
        self.params[name.lstrip("$")] = value
        return value

    def blank(self) -> None:
        self.lines.append("")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def customizer_range(value: Any) -> str | None:
    """A Customizer range comment for a plain positive number, e.g. ``[20:5:160]``; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    if isinstance(value, int) or float(value).is_integer():
        step = 5 if value >= 40 and value % 5 == 0 else 1
        lo, hi = max(step, rnd(value / 2, step)), rnd(value * 2, step)
        return (
            f"[{fmt(int(lo))}:{fmt(int(step))}:{fmt(int(hi))}]"
            if step > 1
            else f"[{fmt(int(lo))}:{fmt(int(hi))}]"
        )
    step = 0.5 if float(value * 2).is_integer() else 0.1
    return f"[{fmt(max(step, rnd(value / 2, step)))}:{fmt(step)}:{fmt(rnd(value * 2, step))}]"


def program(header: Header, *blocks: str) -> str:
    """Join a header and body blocks with one blank line between them, ending in a newline."""
    parts = [header.text().rstrip("\n")] + [b.strip("\n") for b in blocks if b and b.strip()]
    return "\n\n".join(parts) + "\n"


def indent(text: str, levels: int = 1) -> str:
    """Indent every non-empty line of ``text`` by four spaces per level."""
    pad = "    " * levels
    return "\n".join(pad + line if line.strip() else line for line in text.splitlines())


Generator = Callable[[Draw], tuple[dict, str]]


@dataclass(frozen=True)
class Family:
    """A procedural family of parts: a name, what it makes, and its generator."""

    name: str
    description: str
    generate: Generator
