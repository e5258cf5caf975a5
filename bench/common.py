"""Helpers the benches share: bare OpenSCAD runs, the corpus-family programs, writing a result JSON."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from renderer.openscad import openscad_command


def run_bare_openscad(code: str) -> None:
    """``openscad -o part.stl part.scad`` in a temporary folder: the same invocation ``run`` uses,
    without its sandbox checks, limits or mesh loading."""
    with tempfile.TemporaryDirectory() as workdir:
        scad = os.path.join(workdir, "part.scad")
        with open(scad, "w") as fh:
            fh.write(code)
        subprocess.run(openscad_command(scad, os.path.join(workdir, "part.stl")),
                       capture_output=True, check=False)


def family_programs(count: int) -> tuple[dict, list]:
    """Each corpus family's target (seed 10,000) and ``(family, result)`` of ``count`` programs
    cycling through the families (seeds 0, 1, ...), all rendered by :func:`renderer.openscad.run`."""
    from corpus.families import FAMILIES, generate
    from renderer.openscad import run

    families = sorted(FAMILIES)
    targets = {family: run(generate(family, 10_000).code) for family in families}
    picks = [families[i % len(families)] for i in range(count)]
    return targets, [(family, run(generate(family, i).code)) for i, family in enumerate(picks)]


def records_by_mode(records_path: str, modes: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """``{mode: {target id: record}}`` of an ``rl.eval`` ``records.jsonl`` for the given modes."""
    found: dict[str, dict[str, dict]] = {mode: {} for mode in modes}
    with open(records_path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["extra"]["mode"] in found:
                found[record["extra"]["mode"]][record["target_id"]] = record
    return found


def write_json(path: str, data: dict) -> str:
    """Write ``data`` as indented JSON at ``path`` (folders created), print and return the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
    print(f"wrote {path}")
    return path


def add_entry(path: str, key: str, entry: dict) -> str:
    """Add (or replace) ``entry`` under ``key`` in the JSON object at ``path``, keeping the others,
    and print its figures (all but ``per_row``)."""
    results = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            results = json.load(fh)
    results[key] = entry
    written = write_json(path, results)
    print({k: v for k, v in entry.items() if k != "per_row"})
    return written
