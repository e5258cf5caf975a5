"""Headless-Chromium screenshot of a local HTML page (Debian's ``chromium`` package).

    .venv/bin/python bench/screenshot.py PAGE.html OUT.png [--width 1280] [--height 2400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def screenshot(page: str, out_png: str, width: int = 1280, height: int = 2400, timeout_s: float = 90) -> str:
    """Render ``page`` in headless Chromium and save a ``width`` x ``height`` PNG at ``out_png``."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise RuntimeError("chromium not found: apt-get install -y chromium")
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={os.path.abspath(out_png)}",
             f"--window-size={width},{height}", f"file://{os.path.abspath(page)}"],
            capture_output=True, timeout=timeout_s, check=False,
        )
    if not os.path.exists(out_png):
        raise RuntimeError(f"chromium wrote no screenshot of {page}")
    return out_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page")
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    print(screenshot(args.page, args.out, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
