"""Procedural OpenSCAD part families and their registry.

Each family turns a seed into one human-style, parameterised OpenSCAD program::

    from corpus.families import FAMILIES, generate, generate_valid

    part = generate("flange", seed=7)         # Part(family, seed, params, code)
    print(part.code)
    part, mesh, rejects = generate_valid("hinge", seed=3)   # rendered with OpenSCAD

The same ``(family, seed)`` always gives the same program, byte for byte: each
generator draws from its own ``random.Random`` seeded with the string
``"{family}/{seed}"`` (string seeds are hashed with SHA-512, so this does not
depend on ``PYTHONHASHSEED`` or the platform).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from corpus.families import boxes, brackets, gears, panels, pipes, plates, profiles, turned
from corpus.families._common import Draw, Family

__all__ = ["FAMILIES", "Family", "Part", "derive_seed", "generate", "generate_valid", "is_valid_mesh"]

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("plate", "rectangular mounting plates with hole patterns, slots and cut-outs", plates.plate),
        Family("flange", "round and square flanges with hub, bore, bolt circle, keyway", plates.flange),
        Family("washer", "washers, spacers, shoulder bushings, shims", plates.washer),
        Family("l_bracket", "L brackets with holes or slots and optional gussets", brackets.l_bracket),
        Family(
            "u_bracket", "U and hat-channel brackets with base, wall and flange holes", brackets.u_bracket
        ),
        Family("hinge", "two-leaf butt hinges with knuckles, pin and screw holes", brackets.hinge),
        Family(
            "stepped_shaft",
            "turned shafts with steps, chamfers, keyways and cross holes",
            turned.stepped_shaft,
        ),
        Family("standoff", "hex and round standoffs, studs and standoff plates", turned.standoff),
        Family("knob", "fluted, round and star knobs with D-shaft bores and nut traps", turned.knob),
        Family("pulley", "V-belt and timing pulleys with hub and set screw", turned.pulley),
        Family("pipe_fitting", "elbows, tees, reducers, couplers, caps and hose barbs", pipes.pipe_fitting),
        Family(
            "profile", "extruded 2-D profiles: T-slot, I-beam, channel, heat sink, DIN rail", profiles.profile
        ),
        Family("clip", "pipe clips, cable clips, snap hooks and edge clips", profiles.clip),
        Family(
            "rounded_box", "rounded blocks, trays and bins built with hull or minkowski", boxes.rounded_box
        ),
        Family("enclosure", "project boxes with screw posts, lid, vents, ports and ears", boxes.enclosure),
        Family("gear", "spur and helical gears, racks and chain sprockets", gears.gear),
        Family(
            "panel", "front panels with cut-outs for switches, pots, displays and connectors", panels.panel
        ),
    )
}


@dataclass(frozen=True)
class Part:
    """One generated part: which family and seed made it, its parameters and its program."""

    family: str
    seed: int
    params: dict[str, Any] = field(compare=False)
    code: str

    @property
    def code_bytes(self) -> int:
        return len(self.code.encode("utf-8"))


def generate(family: str, seed: int) -> Part:
    """The part of ``family`` for ``seed``; the same arguments give the same code."""
    try:
        fam = FAMILIES[family]
    except KeyError:
        raise KeyError(f"unknown family {family!r}; known: {', '.join(sorted(FAMILIES))}") from None
    rng = random.Random(f"{family}/{int(seed)}")
    params, code = fam.generate(Draw(rng))
    return Part(family=family, seed=int(seed), params=params, code=code)


def derive_seed(seed: int, attempt: int) -> int:
    """The seed of retry ``attempt`` of ``seed`` (attempt 0 is ``seed`` itself)."""
    if attempt == 0:
        return int(seed)
    digest = hashlib.sha256(f"{int(seed)}/retry{attempt}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # 56 bits: far from the small seeds a build uses


def is_valid_mesh(result) -> bool:
    """True when ``result`` (a ``MeshResult``) is ok and its mesh has volume in all three axes."""
    if not result.ok or len(result.faces) == 0:
        return False
    extent = result.vertices.max(axis=0) - result.vertices.min(axis=0)
    return bool((extent > 1e-6).all())


def generate_valid(family: str, seed: int, limits=None, max_tries: int = 5):
    """Generate and render a part, retrying with derived seeds until OpenSCAD gives a 3-D mesh.

    Returns ``(part, result, rejects)``: the first part whose ``renderer.openscad.run``
    result is ok with a mesh that has extent in x, y and z, its ``MeshResult``, and
    how many earlier tries were rejected. ``part.seed`` is the seed actually used
    (``derive_seed(seed, rejects)``). If all ``max_tries`` fail, the last try is
    returned with its failing result and ``rejects == max_tries``: a failure is a
    value, the caller checks ``result.ok``.
    """
    from renderer.openscad import RenderLimits, run

    if max_tries < 1:
        raise ValueError(f"max_tries must be at least 1, got {max_tries}")
    limits = limits or RenderLimits()
    rejects = 0
    for attempt in range(max_tries):
        part = generate(family, derive_seed(seed, attempt))
        result = run(part.code, limits)
        if is_valid_mesh(result):
            return part, result, rejects
        rejects += 1
    return part, result, rejects
