#!/usr/bin/env bash
# Idempotent set-up on a Debian/Ubuntu machine (run as root, or with sudo available):
# Debian packages, a virtual environment in .venv, torch (CPU) first, then the project with its
# dev (tests) and app (gradio) extras.
# Re-running it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
APT_PACKAGES="openscad bubblewrap libusb-1.0-0 chromium xvfb"   # xvfb: bench/openscad_pictures.py
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for pkg in $APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if ! "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
    echo "[setup] apt-get install$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.scadloop-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing torch (CPU) and the project into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # torch first, pinned: anything that depends on it could otherwise pull a multi-GB CUDA build
    "$VENV/bin/python" -c "import torch" >/dev/null 2>&1 || "$VENV/bin/pip" install -q "torch==2.13.0"
    "$VENV/bin/pip" install -q -e ".[dev,app]"   # app: gradio, for python -m rl.app
    touch "$stamp"
fi
echo "[setup] ready: $("$VENV/bin/python" --version), $(openscad --version 2>&1 | tail -n1)"
