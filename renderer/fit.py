"""Fitting a program to a known size: the part's bounding box in mm, when the input reveals it.

A size-reading policy is told the part's size (``Size: 140 x 20 x 44 mm.``) but writes its
numbers mostly from what it learnt of the family: the main job's policy wrote a 140 mm T-profile
40 mm long. When the size is known (a corpus row shown to a size-reading policy, ``rl.predict
--size`` or ``--mesh``), the program's render says its own bounding box, and scaling each axis
by the ratio gives a program of exactly that size. Owns:

- :func:`extents_of`: a mesh's bounding-box size (x, y, z);
- :func:`fit_factors`: per-axis scale factors from a render's extents to the wanted size
  (None where an axis is flat or a figure is not positive and finite);
- :func:`scaled_program`: any program scaled by given factors and still editable: its text
  becomes the body of a module that is called inside ``scale([...])`` (OpenSCAD allows module,
  function and variable definitions in a module's body, not in a transform's block);
- :func:`fit_program`: the two together (the program unchanged when no fit is possible);
- :func:`placed_program`: fitted to a mesh's bounding box, position included (``rl.predict
  --mesh``: the program comes out in the mesh's own coordinates);
- :func:`size_agreement`: how near a render's bounding box is to the size (the reward's ``size``
  term: what the fit would have to correct, 1 when nothing).

Scaling about the origin is what ``scale()`` does, so a fitted program's mesh is its first
render's vertices times the factors, and a scorer can fit a mesh without running OpenSCAD again
(:func:`fit_vertices`)::

    factors = fit_factors(extents_of(result.vertices), (140, 20, 44))
    code = scaled_program(code, factors)           # what the user gets
    vertices = fit_vertices(result.vertices, factors)   # the same mesh
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

FITTED_MODULE = "fitted_part"
"""The module a fitted program's own text becomes (:func:`fit_program`)."""
FLAT = 1e-6
"""An extent at or below this (mm) is flat: no factor can fit it."""
_USE = re.compile(r"^[ \t]*use[ \t]*<[^>\n]*>[ \t]*;?[ \t]*$", re.MULTILINE)
"""A ``use <library>`` statement on a line of its own."""


def extents_of(vertices) -> np.ndarray | None:
    """Bounding-box size (x, y, z) of ``(N, 3)`` vertices; None for no vertex or a bad array."""
    try:
        array = np.asarray(vertices, dtype=np.float64) if vertices is not None else np.empty((0, 3))
    except (TypeError, ValueError):  # ragged or not numbers: no extents
        return None
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0 or not np.all(np.isfinite(array)):
        return None
    return np.ptp(array, axis=0)


def fit_factors(extents, size: Sequence[float] | None) -> np.ndarray | None:
    """Per-axis factors taking a render of bounding-box ``extents`` to ``size`` (mm, x y z); None
    when either is missing, an extent is flat (:data:`FLAT`) or a figure is not positive and finite."""
    if extents is None or size is None:
        return None
    extents, size = np.asarray(extents, dtype=np.float64), np.asarray(size, dtype=np.float64)
    if extents.shape != (3,) or size.shape != (3,):
        return None
    if not (np.all(np.isfinite(extents)) and np.all(np.isfinite(size))):
        return None
    if np.any(extents <= FLAT) or np.any(size <= 0):
        return None
    return size / extents


def scaled_program(code: str, factors, module: str = FITTED_MODULE, offset=None) -> str:
    """``code`` scaled by ``factors`` (x, y, z; or one number, the same on every axis), then moved
    by ``offset`` when given, as an editable program. Its ``use <...>`` statements stay at the top
    (OpenSCAD refuses them in a module's body; ``include`` is accepted)."""
    uses = "".join(f"{line.strip()}\n" for line in _USE.findall(code))
    body = _USE.sub("", code).rstrip()
    still = offset is None or not np.any(np.abs(np.asarray(offset, dtype=np.float64)) > 5e-7)
    move = "" if still else f"translate([{_numbers(offset)}]) "
    scale = _numbers([factors]) if np.ndim(factors) == 0 else f"[{_numbers(factors)}]"
    return f"{uses}module {module}() {{\n{body}\n}}\n{move}scale({scale}) {module}();\n"


def _numbers(values) -> str:
    return ", ".join(f"{float(v) + 0.0:.6g}" for v in values)


def fit_program(code: str, extents, size: Sequence[float] | None) -> str:
    """``code`` scaled so a render of bounding box ``extents`` becomes ``size``; unchanged when no
    fit is possible (:func:`fit_factors` is None)."""
    factors = fit_factors(extents, size)
    return code if factors is None else scaled_program(code, factors)


def placed_program(code: str, vertices, box) -> str:
    """``code``, whose render has ``vertices``, fitted to the bounding box ``box = (lower, upper)``
    (mm) of a mesh the user gave: scaled to its size, then moved onto it; unchanged when no fit is
    possible."""
    lower, upper = (np.asarray(corner, dtype=np.float64) for corner in box)
    factors = fit_factors(extents_of(vertices), upper - lower)
    if factors is None:
        return code
    offset = lower - factors * np.asarray(vertices, dtype=np.float64).min(axis=0)
    return scaled_program(code, factors, offset=offset)


def fit_vertices(vertices, factors) -> np.ndarray:
    """The vertices of the fitted program's render: ``vertices`` scaled about the origin."""
    return np.asarray(vertices, dtype=np.float64) * np.asarray(factors, dtype=np.float64)


def size_agreement(extents, size: Sequence[float] | None) -> float:
    """How near bounding box ``extents`` is to ``size`` (mm, x y z), in [0, 1]: the geometric mean
    over the axes of the smaller over the larger figure (``exp(-mean |log(extents / size)|)``), so
    1 for the same size and 0.5 for twice or half on every axis. An axis flat in both counts as
    equal, flat in one only as about 0; 0 when either is missing or not finite."""
    if extents is None or size is None:
        return 0.0
    extents, size = np.asarray(extents, dtype=np.float64), np.asarray(size, dtype=np.float64)
    if extents.shape != (3,) or size.shape != (3,) or not np.all(np.isfinite(extents + size)):
        return 0.0
    extents, size = np.maximum(extents, FLAT), np.maximum(size, FLAT)
    return float(np.prod(np.minimum(extents, size) / np.maximum(extents, size)) ** (1 / 3))
