"""Run every ``.scad`` file under OpenSCAD's bundled examples through ``run``.

Each must end in ``ok`` or a typed failure within its timeout and leave no OpenSCAD
process behind. Prints a table of statuses and times and writes
``bench/results/openscad_examples.json``.

    .venv/bin/python bench/openscad_examples.py [--root /usr/share/openscad/examples] [--timeout 30]
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402
from renderer.openscad import RenderLimits, run  # noqa: E402


def openscad_pids(workdir: str) -> list[int]:
    """OpenSCAD processes still running on files under ``workdir``."""
    out = subprocess.run(["pgrep", "-f", f"openscad.*{workdir}"], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in out.split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/openscad/examples")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", default="bench/results/openscad_examples.json")
    args = parser.parse_args(argv)

    paths = sorted(glob.glob(os.path.join(args.root, "**", "*.scad"), recursive=True))
    if not paths:
        print(f"no .scad files under {args.root}", file=sys.stderr)
        return 1
    limits = RenderLimits(timeout_s=args.timeout)
    # runs get their temporary folders under one of ours, so stray processes are ours
    tempfile.tempdir = tempfile.mkdtemp(prefix="scadloop-examples-")
    rows = []
    start = time.perf_counter()
    print(f"{'example':<42}{'status':<15}{'faces':>8}{'seconds':>9}  note")
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            result = run(fh.read(), limits)
        leftover = openscad_pids(tempfile.tempdir)
        name = os.path.relpath(path, args.root)
        note = result.stderr.strip().splitlines()[0][:60] if not result.ok and result.stderr.strip() else ""
        rows.append({"example": name, "status": str(result.status), "faces": len(result.faces),
                     "seconds": round(result.seconds, 3), "leftover_processes": leftover, "note": note})
        print(f"{name:<42}{result.status:<15}{len(result.faces):>8}{result.seconds:>9.3f}  {note}")
    counts = collections.Counter(r["status"] for r in rows)
    slowest = max(r["seconds"] for r in rows)
    leftovers = sum(len(r["leftover_processes"]) for r in rows)
    summary = {"files": len(rows), "statuses": dict(counts), "max_seconds": slowest,
               "timeout_s": args.timeout, "leftover_processes": leftovers,
               "wall_s": round(time.perf_counter() - start, 1)}
    print(f"{len(rows)} files: {dict(counts)}; slowest {slowest:.2f} s (timeout {args.timeout} s); "
          f"OpenSCAD processes left behind: {leftovers}")
    write_json(args.out, {"summary": summary, "examples": rows})
    return 0 if leftovers == 0 and slowest < args.timeout + 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
