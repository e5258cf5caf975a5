"""Pack this machine's OpenSCAD into one relocatable archive for a machine that has none.

The archive holds the Debian OpenSCAD binary (2021.01), every shared library it loads
(glibc and its dynamic loader included), OpenSCAD's ``libraries`` folder (MCAD), the
Liberation fonts that ``text()`` uses by default, glibc's C.UTF-8 locale and the
sandbox tool bubblewrap (``bwrap``). The two programs start through small ``/bin/sh``
wrappers that run them with the bundled loader and libraries, so the target machine
lends only the kernel and ``/bin/sh``: no OpenSCAD, Qt, network or particular glibc
version is needed there (Debian 12's libraries ask for glibc 2.36, newer than Ubuntu
22.04's, which is why glibc travels too).

Build, on a Debian/Ubuntu machine with ``openscad`` and ``bubblewrap`` installed
(standard library only; 2-4 minutes at the default compression, xz -9e)::

    python3 scripts/bundle_openscad.py               # dist/openscad-bundle-x86_64.tar.xz
    python3 scripts/bundle_openscad.py --fast        # ~20 s, 35 MiB instead of 30 (tests)
    python3 scripts/bundle_openscad.py --out /tmp/b.tar.xz

Use, on the target (x86_64 Linux, as any user who can start bubblewrap, e.g. root)::

    tar xf openscad-bundle-x86_64.tar.xz -C /opt
    export SCADLOOP_OPENSCAD=/opt/openscad-bundle/bin/openscad
    "$SCADLOOP_OPENSCAD" --version                   # OpenSCAD version 2021.01

The renderer (:func:`renderer.openscad.openscad_info`) then finds MCAD at
``/opt/openscad-bundle/share/openscad/libraries`` and the sandbox
(:mod:`renderer.sandbox`) uses the bundle's ``bin/bwrap`` and binds the bundle's
folder read-only; ``SCADLOOP_BWRAP`` names another ``bwrap`` if wanted. The folder
may live anywhere (unpack with ``-C`` elsewhere, or move it); ``bin/openscad`` may
be symlinked from ``PATH``.

Layout of ``openscad-bundle/``::

    bin/openscad, bin/bwrap     /bin/sh wrappers (the paths to use)
    libexec/openscad, bwrap     glibc's dynamic loader (one file, hard-linked) under each
                                program's name, so that ps, top and pgrep show "openscad"
    libexec/real/openscad, bwrap    the Debian binaries, which that loader runs
    lib/                        shared libraries, glibc included; locale/C.utf8; gconv/ (empty)
    share/openscad/libraries    MCAD;  share/openscad/color-schemes; locale/ (empty: English only)
    share/fonts/                Liberation fonts;  etc/fonts/fonts.conf (only those fonts)
    share/doc/<package>/copyright   the licences of every Debian package taken
    scadloop-bundle.txt         what is inside, and from which packages (also the marker
                                by which the sandbox recognises a bundle)
"""

from __future__ import annotations

import argparse
import functools
import lzma
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

BUNDLE_DIR = "openscad-bundle"
MARKER = "scadloop-bundle.txt"
"""Its presence at ``<root>/`` tells :mod:`renderer.sandbox` that ``<root>/bin/openscad`` is a bundle."""
LIBRARIES = "/usr/share/openscad/libraries"
COLOR_SCHEMES = "/usr/share/openscad/color-schemes"
LOCALE = "/usr/lib/locale/C.utf8"
FONT_NAME = "Liberation Sans"  # OpenSCAD's default font; its whole folder (Sans, Serif, Mono) is taken
FONT_FALLBACK_DIR = "/usr/share/fonts/truetype/liberation"

WRAPPER = """#!/bin/sh
# {name} from a scadloop OpenSCAD bundle (scripts/bundle_openscad.py). The binary runs
# with the bundle's own dynamic loader, glibc and libraries (host ld.so.cache ignored),
# so only this shell and the kernel come from the host. Symlinking this file works.
self=$0
case $self in */*) ;; *) self=$(command -v -- "$self") ;; esac
[ -L "$self" ] && self=$(readlink -f -- "$self")
root=${{self%/*}}/..
{exports}# libexec/{name} is the bundle's dynamic loader under the program's name (for ps and pgrep).
exec "$root/libexec/{name}" --inhibit-cache --library-path "$root/lib" --argv0 "$self" \\
    "$root/libexec/real/{name}" "$@"
"""
OPENSCAD_EXPORTS = (
    'export FONTCONFIG_FILE="$root/etc/fonts/fonts.conf" LOCPATH="$root/lib/locale" '
    'GCONV_PATH="$root/lib/gconv"\n'
)

FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<!-- Only the bundle's fonts, found relative to this file; the cache goes to
     $XDG_CACHE_HOME or $HOME/.cache (the sandbox's private /tmp). -->
<fontconfig>
  <dir prefix="relative">../../share/fonts</dir>
  <cachedir prefix="xdg">fontconfig</cachedir>
  <alias><family>sans-serif</family><prefer><family>Liberation Sans</family></prefer></alias>
  <alias><family>serif</family><prefer><family>Liberation Serif</family></prefer></alias>
  <alias><family>monospace</family><prefer><family>Liberation Mono</family></prefer></alias>
</fontconfig>
"""
LOCALE_NOTE = ("OpenSCAD's translations are left out on purpose: its messages stay in English, which\n"
               "is what renderer.openscad.classify reads. This folder only has to exist (without it\n"
               "OpenSCAD prints 'Could not initialize localization.' on every run).\n")
GCONV_NOTE = ("# Empty on purpose: glibc's built-in conversions (UTF-8, ASCII, UCS) only, never\n"
              "# the host's gconv modules, which may belong to another glibc version.\n")


class BundleError(RuntimeError):
    """Something the bundle needs is missing on this machine."""


def shared_libraries(binaries: list[str]) -> tuple[dict[str, str], str]:
    """Every library ``binaries`` load, as ``{soname: path}``, and the dynamic loader's path."""
    libs: dict[str, str] = {}
    loader = ""
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            line = line.strip()
            if "not found" in line:
                raise BundleError(f"{binary}: {line}")
            if match := re.match(r"(\S+) => (/\S+) \(", line):
                libs[match[1]] = match[2]
            elif match := re.match(r"(/\S*ld-linux\S*) \(", line):
                loader = match[1]
    if not loader:
        raise BundleError(f"no dynamic loader in ldd's answer for {binaries}")
    return libs, loader


def owning_packages(paths: list[str]) -> dict[str, str]:
    """``{path: Debian package}`` for the paths ``dpkg`` knows, asked in one call (a file
    is looked up under its own path, its real path and its merged-/usr twin)."""
    if shutil.which("dpkg-query") is None:
        return {}
    asked: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        for candidate in (path, real, real.removeprefix("/usr"), "/usr" + real):
            asked.setdefault(candidate, path)
    done = subprocess.run(["dpkg-query", "-S", *asked], capture_output=True, text=True, check=False)
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        package, _, candidate = line.partition(": ")
        if candidate in asked and "diversion" not in package:
            found.setdefault(asked[candidate], package.split(",")[0].split(":")[0].strip())
    return found


def version_of(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else "unknown"


def _copy(src: str, dst: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)  # follows symlinks: the soname gets the real file
    os.chmod(dst, mode)


def _strip(paths: list[str]) -> None:
    """Drop symbols the loader does not need (Debian's files are mostly stripped already)."""
    strip = shutil.which("strip")
    if strip is None:
        print("[bundle] strip not found: files kept as they are", file=sys.stderr)
        return
    subprocess.run([strip, "--strip-unneeded", *paths], check=True)


def _font_folder() -> str | None:
    if shutil.which("fc-match"):
        done = subprocess.run(["fc-match", "--format=%{file}", FONT_NAME], capture_output=True, text=True)
        if done.returncode == 0 and "Liberation" in done.stdout:
            return os.path.dirname(done.stdout.strip())
    return FONT_FALLBACK_DIR if os.path.isdir(FONT_FALLBACK_DIR) else None


def stage(root: str, openscad: str, bwrap: str) -> dict[str, str]:
    """Lay the bundle out under ``root``; returns ``{bundle path: source path}`` of what was copied."""
    libs, loader = shared_libraries([openscad, bwrap])
    taken: dict[str, str] = {}

    def take(src: str, rel: str, mode: int = 0o644) -> None:
        _copy(src, os.path.join(root, rel), mode)
        taken[rel] = src

    take(openscad, "libexec/real/openscad", 0o755)
    take(bwrap, "libexec/real/bwrap", 0o755)
    take(loader, "libexec/openscad", 0o755)
    for soname, path in sorted(libs.items()):
        take(path, f"lib/{soname}")
    _strip([os.path.join(root, rel) for rel in taken])
    os.link(os.path.join(root, "libexec/openscad"), os.path.join(root, "libexec/bwrap"))  # after strip
    taken["libexec/bwrap"] = loader

    for name, exports in (("openscad", OPENSCAD_EXPORTS), ("bwrap", "")):
        path = os.path.join(root, "bin", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(WRAPPER.format(name=name, exports=exports))
        os.chmod(path, 0o755)

    for src, rel in ((LIBRARIES, "share/openscad/libraries"), (COLOR_SCHEMES, "share/openscad/color-schemes"),
                     (LOCALE, "lib/locale/C.utf8")):
        if not os.path.isdir(src):
            raise BundleError(f"{src} is missing")
        for folder, _, files in os.walk(src):
            for name in files:
                full = os.path.join(folder, name)
                take(full, os.path.join(rel, os.path.relpath(full, src)))
    fonts = _font_folder()
    if fonts is None:
        print(f"[bundle] no {FONT_NAME} fonts here: text() will find no font", file=sys.stderr)
    else:
        for name in sorted(os.listdir(fonts)):
            if name.lower().endswith((".ttf", ".otf")):
                take(os.path.join(fonts, name), f"share/fonts/{name}")
    os.makedirs(os.path.join(root, "etc/fonts"), exist_ok=True)
    with open(os.path.join(root, "etc/fonts/fonts.conf"), "w") as fh:
        fh.write(FONTS_CONF)
    for rel, text in (("lib/gconv/gconv-modules", GCONV_NOTE), ("share/openscad/locale/README", LOCALE_NOTE)):
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "w") as fh:
            fh.write(text)
    return taken


def write_manifest(root: str, taken: dict[str, str], openscad: str, bwrap: str) -> None:
    """Copy each package's licence and write the marker file that lists the contents."""
    packages = owning_packages(sorted(set(taken.values())))
    for pkg in sorted(set(packages.values())):
        src = f"/usr/share/doc/{pkg}/copyright"
        if os.path.isfile(src):
            _copy(src, os.path.join(root, "share/doc", pkg, "copyright"))
    lines = [
        "scadloop OpenSCAD bundle (scripts/bundle_openscad.py)",
        f"openscad: {version_of([openscad, '--version'])} ({openscad})",
        f"bwrap: {version_of([bwrap, '--version'])} ({bwrap})",
        f"built on: {platform.platform()} {platform.machine()}",
        "",
        "bundle path\tsource\tDebian package",
    ]
    lines += [f"{rel}\t{src}\t{packages.get(src, '-')}" for rel, src in sorted(taken.items())]
    with open(os.path.join(root, MARKER), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def _normalised(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    """Same bytes for the same inputs: no owner, no build time."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = mtime
    return info


def write_archive(parent: str, out: str, fast: bool, mtime: int) -> None:
    """``parent/openscad-bundle`` as a .tar.xz (x86 BCJ filter on x86_64, then LZMA2), every
    entry dated ``mtime``."""
    normalised = functools.partial(_normalised, mtime=mtime)
    preset = 1 if fast else 9 | lzma.PRESET_EXTREME
    filters = [{"id": lzma.FILTER_LZMA2, "preset": preset}]
    if platform.machine() in ("x86_64", "AMD64", "i686"):
        filters.insert(0, {"id": lzma.FILTER_X86})
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    with lzma.open(tmp, "wb", format=lzma.FORMAT_XZ, filters=filters) as xz, \
            tarfile.open(fileobj=xz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for folder, dirs, files in os.walk(os.path.join(parent, BUNDLE_DIR)):
            dirs.sort()
            rel_folder = os.path.relpath(folder, parent)
            tar.add(folder, rel_folder, recursive=False, filter=normalised)
            for name in sorted(files):
                tar.add(os.path.join(folder, name), os.path.join(rel_folder, name), filter=normalised)
    os.replace(tmp, out)


def build(out: str, fast: bool = False, openscad: str | None = None, bwrap: str | None = None) -> int:
    """Build the archive at ``out``; returns its size in bytes."""
    openscad = os.path.realpath(openscad or shutil.which("openscad") or "")
    bwrap = os.path.realpath(bwrap or shutil.which("bwrap") or "")
    for name, path in (("openscad", openscad), ("bwrap", bwrap)):
        if not os.path.isfile(path):
            raise BundleError(f"{name} not found: apt-get install -y openscad bubblewrap")
    with tempfile.TemporaryDirectory(prefix="openscad-bundle-") as parent:
        root = os.path.join(parent, BUNDLE_DIR)
        taken = stage(root, openscad, bwrap)
        write_manifest(root, taken, openscad, bwrap)
        mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or os.stat(openscad).st_mtime)
        write_archive(parent, out, fast, mtime)
    return os.path.getsize(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("dist", f"openscad-bundle-{platform.machine()}.tar.xz"),
                        help="archive to write (default: dist/openscad-bundle-<arch>.tar.xz)")
    parser.add_argument("--fast", action="store_true",
                        help="xz preset 1 instead of 9e: seconds instead of minutes, larger archive")
    parser.add_argument("--openscad", help="OpenSCAD binary to pack (default: openscad on PATH)")
    parser.add_argument("--bwrap", help="bubblewrap binary to pack (default: bwrap on PATH)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        size = build(args.out, args.fast, args.openscad, args.bwrap)
    except (BundleError, subprocess.CalledProcessError) as error:
        print(f"[bundle] {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    print(f"[bundle] {args.out}: {size / 2**20:.1f} MiB ({size} bytes) in {seconds:.0f} s")
    print(f"[bundle] use: tar xf {os.path.basename(args.out)} -C /opt && "
          f"export SCADLOOP_OPENSCAD=/opt/{BUNDLE_DIR}/bin/openscad")
    return 0


if __name__ == "__main__":
    sys.exit(main())
