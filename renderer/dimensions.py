"""Dimensioning a program: its own numbers solved so that its render has a known size.

:mod:`renderer.fit` reaches a known size (the part's bounding box in mm) by wrapping the program
in ``scale([...])``: exact, but the numbers a user reads stay wrong, and a round hole in a
stretched plate turns oval. Here the program's **parameters** are changed instead, so the text
that comes back is the policy's own program with other values (``outer_d = 25;`` where it wrote
``outer_d = 20;``). Owns:

- :func:`parameters`: the literals to solve: those of top-level assignments whose value holds one
  to four numbers (``length = 80;``, ``panel = [482.6, 43.65];``, not a list of hole positions);
  a program with none gives its first tunable literals (:func:`renderer.literals.tunable`);
- :func:`dimension`: the solve, for many programs at once; each :class:`Dimensioned` also holds
  the program a user gets (``program``): the solved text, scaled for the rest of the way only
  where an axis is still more than :data:`RESIDUAL` (1 %) off.

The solve, per program, in log space (sizes and factors as logarithms):

1. **Probe**: each parameter times :data:`DimensionSettings.probe` (x1.25) is rendered once; the
   change of the three log extents over the change of the log value is the parameter's column of
   a 3 x n sensitivity matrix ``J`` (a failed probe is tried at x0.8; no effect, zero).
2. **Start as a fit would**: a parameter that moves the bounding box takes the log factor of the
   axes it moves, weighted by how much (``fit_factors`` of :mod:`renderer.fit` per axis); one that
   does not (a hole, an inset) takes the smallest of those factors, so an inner feature shrinks
   with its part but never grows past it; an integer of at most :data:`COUNT_MAX` with no effect
   (a count) is left alone.
3. **Correct**: damped least squares on what is left, ``dx = J^T (J J^T + damping I)^-1 r`` with
   ``r`` the remaining log size error (the least change of the parameters that closes it), halving
   the step once when the render gets no nearer; at most ``iterations`` renders of candidates.

A candidate is kept only when its render is valid and strictly nearer the size
(:func:`renderer.fit.size_agreement`), so the result is never farther from the size than the
program was, and a program that does not render, has no parameter, or whose parameters do not
move its box comes back unchanged. Every candidate is written with
:func:`renderer.literals.substitute` before it is measured: the text returned is the text
measured. Integers above :data:`COUNT_MAX` that move the box may become decimals (``24`` ->
``17.32``).

Rendering is the caller's (:func:`measure_with_openscad` without a pool): ``measure(codes) ->
[extents or None]`` (the bounding-box size of each
program's render, None when it gave no mesh), called once per round with every program's
candidates, so a pool renders a batch in parallel. The main job's PPO greedy programs on ``test``
(README "Dimensioning"): protocol IoU 0.303 as written, 0.538 scaled (``renderer.fit``), 0.540
dimensioned, with about 6 renders per program.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from renderer.fit import FLAT, extents_of, fit_factors, scaled_program, size_agreement
from renderer.literals import NUMBER, Literal, blanked, find_literals, substitute, tunable

RESIDUAL = 0.01
"""Relative error per axis below which a dimensioned program is at its size (no scale is added)."""
COUNT_MAX = 12
"""An integer literal at most this large that does not move the bounding box is taken for a count
and never changed."""
_ASSIGNMENT = re.compile(r"(?<![\w$.])([A-Za-z_]\w*)\s*=(?!=)[^;]*;")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class DimensionSettings:
    """Budget and steps of :func:`dimension`."""

    probe: float = 1.25
    """Factor a parameter is multiplied by to measure its effect (a failed probe tries its inverse)."""
    iterations: int = 4
    """Most corrections rendered after the start (a halved step counts as one)."""
    damping: float = 1e-2
    """Damping of the least-squares correction (keeps a step finite where J J^T is singular)."""
    max_factor: float = 64.0
    """Each parameter stays within [value / max_factor, value * max_factor]."""
    max_parameters: int = 16
    """Most literals solved (the first ones, in program order)."""
    tolerance: float = 0.999
    """Size agreement at which the solve stops."""

    def __post_init__(self):
        if self.probe <= 1 or self.iterations < 1 or self.damping <= 0 or self.max_factor <= 1 \
                or self.max_parameters < 1 or not 0 < self.tolerance <= 1:
            raise ValueError(f"bad dimension settings: {self}")


@dataclass
class Dimensioned:
    """What :func:`dimension` did to one program."""

    code: str
    """The dimensioned program (the start's text when nothing nearer the size was found)."""
    extents: np.ndarray | None
    """Its render's bounding-box size."""
    before: float
    """Size agreement of the program as written."""
    after: float
    """Size agreement of ``code``."""
    parameters: int
    """Literals solved."""
    renders: int
    """Programs rendered (probes and candidates; the start was measured by the caller)."""
    program: str = ""
    """What a user gets: ``code``, scaled (:func:`renderer.fit.scaled_program`) for what the solve
    left when an axis is still more than :data:`RESIDUAL` off the size; ``code`` when no size or
    no render."""
    clean: bool = False
    """``code`` has the size within :data:`RESIDUAL` on every axis: ``program`` is ``code``, no scale."""
    changed: list[dict] = field(default_factory=list)
    """``{"offset", "before", "after"}`` of each literal whose text changed."""

    def to_extra(self) -> dict:
        """The figures a record keeps (``rl.eval``'s ``extra``)."""
        return {"size_agreement_before": self.before, "size_agreement": self.after,
                "dimension_clean": self.clean, "dimension_parameters": self.parameters,
                "dimension_renders": self.renders, "literals_changed": len(self.changed)}


def parameters(code: str, limit: int = DimensionSettings.max_parameters) -> list[Literal]:
    """The literals :func:`dimension` solves in ``code``, in program order (at most ``limit``)."""
    literals = tunable(find_literals(code))
    masked = blanked(code)
    chosen = []
    for start, end in _top_level_assignments(masked):
        inside = [lit for lit in literals if start <= lit.start < end]
        if 1 <= len(inside) <= 4:
            chosen += inside
    return (chosen or literals)[:limit]


def _top_level_assignments(masked: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each ``name = value;`` outside every bracket of the masked program."""
    depth_at = np.cumsum([1 if c in _CLOSE else -1 if c in _CLOSE.values() else 0 for c in masked] or [0])
    spans = []
    for match in _ASSIGNMENT.finditer(masked):
        before = depth_at[match.start() - 1] if match.start() else 0
        if before == 0:
            spans.append((match.start(), match.end()))
    return spans


Measure = Callable[[list[str]], list]


def measure_with_openscad(codes: list[str], renders: dict | None = None) -> list:
    """A :data:`Measure` without a pool: each program run in the sandboxed OpenSCAD
    (:func:`renderer.openscad.run`), on as many threads as cores (``rl.predict``); each
    :class:`renderer.openscad.MeshResult` is also kept in ``renders`` under its program, when given."""
    from renderer.openscad import run

    def measured(code: str):
        result = run(code)
        if renders is not None:
            renders[code] = result
        return extents_of(result.vertices) if result.ok and len(result.faces) else None

    with ThreadPoolExecutor(max_workers=max(1, min(len(codes), os.cpu_count() or 1))) as threads:
        return list(threads.map(measured, codes))


def dimension(codes: Sequence[str], extents: Sequence, sizes: Sequence, measure: Measure,
              settings: DimensionSettings | None = None) -> list[Dimensioned]:
    """Each program of ``codes``, whose render has bounding box ``extents`` (None: it gave no mesh),
    with its parameters solved to ``sizes`` (mm, x y z; None: no size known), rendering with
    ``measure``; one :class:`Dimensioned` per program, in order."""
    settings = settings or DimensionSettings()
    solves = [_Solve(code, extent, size, settings)
              for code, extent, size in zip(codes, extents, sizes, strict=True)]
    for stage in ("probe", "retry"):
        asked = [solve.probes(stage) for solve in solves]
        flat = [code for codes in asked for code in codes]
        answers = iter(measure(flat) if flat else [])
        for solve, codes in zip(solves, asked, strict=True):
            solve.take_probes(stage, [next(answers) for _ in codes])
    for solve in solves:
        solve.start()
    while True:
        active = [solve for solve in solves if solve.candidate is not None]
        if not active:
            return [solve.result() for solve in solves]
        for solve, answer in zip(active, measure([solve.candidate for solve in active]), strict=True):
            solve.take(answer)


class _Solve:
    """The state of one program's solve (see the module docstring for the steps)."""

    def __init__(self, code: str, extents, size, settings: DimensionSettings):
        self.code, self.settings, self.renders = code, settings, 0
        self.size = None if size is None else np.asarray(size, dtype=np.float64)
        self.extents = None if extents is None else np.asarray(extents, dtype=np.float64)
        self.before = size_agreement(self.extents, self.size)
        self.best = (self.before, code, self.extents)
        usable = (self.extents is not None and self.size is not None and np.all(self.extents > FLAT)
                  and np.all(self.size > FLAT) and self.before < settings.tolerance)
        self.literals = parameters(code, settings.max_parameters) if usable else []
        self.values = np.array([lit.value for lit in self.literals])
        self.sensitivity = np.zeros((3, len(self.literals)))
        self._probed: list[tuple[int, str, float]] = []
        self.candidate: str | None = None

    def probes(self, stage: str) -> list[str]:
        """Programs to render in this probe ``stage``: every parameter, then the failed ones again."""
        if stage == "probe":
            indices, factor = range(len(self.literals)), self.settings.probe
        else:
            indices, factor = [i for i, _, _ in self._probed], 1.0 / self.settings.probe
        self._probed = []
        for index in indices:
            values = self.values.copy()
            values[index] *= factor
            text = substitute(self.code, self.literals, list(values))
            written = _value_at(text, self.literals[index].start)
            moved = math.log(written / self.literals[index].value) if written and written > 0 else 0.0
            if moved != 0.0:
                self._probed.append((index, text, moved))
        return [text for _, text, _ in self._probed]

    def take_probes(self, stage: str, answers: list) -> None:
        """The probes' extents: fill the sensitivity columns; keep the failed probes for a retry."""
        self.renders += len(answers)
        failed = []
        for (index, text, moved), extents in zip(self._probed, answers, strict=True):
            if extents is None or np.any(np.asarray(extents) <= FLAT):
                failed.append((index, text, moved))
                continue
            self.sensitivity[:, index] = (np.log(extents) - np.log(self.extents)) / moved
        self._probed = failed if stage == "probe" else []

    def start(self) -> None:
        """The first candidate: every parameter moved as a per-axis fit would move it."""
        weights = np.abs(self.sensitivity)
        moves = weights.sum(axis=0) > 0.05
        if not moves.any():
            return
        wanted = np.log(self.size) - np.log(self.extents)
        start = np.zeros(len(self.literals))
        start[moves] = (weights[:, moves] * wanted[:, None]).sum(axis=0) / weights[:, moves].sum(axis=0)
        inner = start[moves].min()
        for index, literal in enumerate(self.literals):
            if not moves[index] and not (literal.is_int and literal.value <= COUNT_MAX):
                start[index] = inner
        self.written = [replace(lit, is_int=False) if moves[i] and lit.value > COUNT_MAX else lit
                        for i, lit in enumerate(self.literals)]
        self.best_x, self.step, self.halved, self.tries = np.zeros(len(self.literals)), start, False, 0
        self._propose()

    def _propose(self) -> None:
        if self.tries >= self.settings.iterations:
            self.candidate = None
            return
        self.tries += 1
        self.trial = self.best_x + (0.5 if self.halved else 1.0) * self.step
        bound = math.log(self.settings.max_factor)
        values = self.values * np.exp(np.clip(self.trial, -bound, bound))
        candidate = substitute(self.code, self.written, list(values))
        self.candidate = None if candidate == self.best[1] else candidate

    def take(self, extents) -> None:
        """A candidate's extents: keep it when nearer the size, then propose the next one (or stop)."""
        self.renders += 1
        agreement = size_agreement(extents, self.size) if extents is not None else -1.0
        if agreement > self.best[0] + 1e-4:
            self.best = (agreement, self.candidate, np.asarray(extents, dtype=np.float64))
            self.best_x, self.halved = self.trial, False
            if agreement >= self.settings.tolerance:
                self.candidate = None
                return
            remaining = np.log(self.size) - np.log(self.best[2])
            gram = self.sensitivity @ self.sensitivity.T + self.settings.damping * np.eye(3)
            self.step = self.sensitivity.T @ np.linalg.solve(gram, remaining)
        elif not self.halved:
            self.halved = True
        else:
            self.candidate = None
            return
        self._propose()

    def result(self) -> Dimensioned:
        after, code, extents = self.best
        changed = [{"offset": old.start, "before": old.text, "after": new.text}
                   for old, new in zip(find_literals(self.code), find_literals(code), strict=False)
                   if old.text != new.text] if code != self.code else []
        factors = fit_factors(extents, self.size)
        clean = factors is not None and bool(np.all(np.abs(factors - 1.0) <= RESIDUAL))
        program = code if clean or factors is None else scaled_program(code, factors)
        return Dimensioned(code, extents, self.before, after, len(self.literals), self.renders, program,
                           clean, changed)


def _value_at(text: str, start: int) -> float | None:
    """The number written at offset ``start`` of ``text`` (a probe changes one literal, so the
    literals before it, and its offset, are as in the program); None if there is none (the
    parameter is then not probed)."""
    found = NUMBER.match(text, start)
    return float(found.group()) if found else None
