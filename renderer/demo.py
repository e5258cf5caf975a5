"""Render the built-in example parts to PNG views and print a status/timing table.

    python -m renderer.demo                      # writes runs/examples/renders/
    python -m renderer.demo --out DIR --size 256 --timeout 60
"""

from __future__ import annotations

import os
import time

from configs.cli import parse
from configs.tools import RendererDemoConfig
from renderer.examples import EXAMPLES
from renderer.openscad import RenderLimits, run
from renderer.views import Frame, render, save_contact_sheet, save_views


def main(argv: list[str] | None = None) -> int:
    config = parse("renderer.demo", __doc__.splitlines()[0], RendererDemoConfig, argv)
    limits = RenderLimits(timeout_s=config.timeout)
    rows, labels = [], []
    print(f"{'part':<16}{'status':<15}{'faces':>8}{'openscad_s':>12}{'views_s':>10}")
    for name, code in EXAMPLES.items():
        result = run(code, limits)
        start = time.perf_counter()
        views = render(result, Frame.of(result.vertices), size=config.size)
        view_s = time.perf_counter() - start
        if result.ok:
            save_views(views, config.out, name)
            rows.append(views.images)
            labels.append(name)
        print(f"{name:<16}{result.status:<15}{len(result.faces):>8}{result.seconds:>12.3f}{view_s:>10.3f}")
    sheet = save_contact_sheet(rows, os.path.join(config.out, "contact_sheet.png"), labels)
    print(f"views in {config.out}/, contact sheet {sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
