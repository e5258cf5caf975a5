"""Render the built-in example parts to PNG views and print a status/timing table.

    python -m renderer.demo                      # writes runs/examples/renders/
    python -m renderer.demo --out DIR --size 256
"""

from __future__ import annotations

import argparse
import os
import time

from renderer.examples import EXAMPLES
from renderer.openscad import RenderLimits, run
from renderer.views import Frame, render, save_contact_sheet, save_views


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="renderer.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/examples/renders", help="folder for the PNG views")
    parser.add_argument("--size", type=int, default=128, help="view size in pixels")
    parser.add_argument("--timeout", type=float, default=30.0, help="OpenSCAD timeout, seconds")
    args = parser.parse_args(argv)

    limits = RenderLimits(timeout_s=args.timeout)
    rows, labels = [], []
    print(f"{'part':<16}{'status':<15}{'faces':>8}{'openscad_s':>12}{'views_s':>10}")
    for name, code in EXAMPLES.items():
        result = run(code, limits)
        start = time.perf_counter()
        views = render(result, Frame.of(result.vertices), size=args.size)
        view_s = time.perf_counter() - start
        if result.ok:
            save_views(views, args.out, name)
            rows.append(views.images)
            labels.append(name)
        print(f"{name:<16}{result.status:<15}{len(result.faces):>8}{result.seconds:>12.3f}{view_s:>10.3f}")
    sheet = save_contact_sheet(rows, os.path.join(args.out, "contact_sheet.png"), labels)
    print(f"views in {args.out}/, contact sheet {sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
