"""The operating-system boundary around every OpenSCAD run: a bubblewrap sandbox.

Programs the policy writes, and programs a user imports, are untrusted. A text
screen of the OpenSCAD language (:mod:`renderer.screen`) explains the obvious
file reads early, but four ways past it were found, so the boundary is the
kernel: OpenSCAD runs under `bubblewrap <https://github.com/containers/bubblewrap>`_
(Debian package ``bubblewrap``, used by Flatpak) in a mount namespace where only
these exist:

- ``/usr`` read-only (OpenSCAD, its shared libraries and its ``libraries``
  folder with MCAD), with the host's ``/bin``, ``/lib*`` links or folders;
- ``/etc/fonts`` and ``/etc/ld.so.cache`` read-only (fontconfig for ``text()``,
  the loader's cache);
- the OpenSCAD binary's own folder -- for a relocatable bundle built by
  ``scripts/bundle_openscad.py``, the bundle's whole folder (its loader, libraries,
  fonts and MCAD) -- and any allowed library folder that lies outside ``/usr``,
  read-only;
- a private, empty, writable ``/tmp`` (a tmpfs that vanishes with the sandbox;
  the working folder and ``HOME``), and private ``/proc`` and ``/dev`` (the mesh leaves
  through ``/dev/fd/N``, which needs ``/proc``; with its own PID namespace, ``/proc``
  shows only the sandbox's processes).

Everything else -- ``/etc/passwd``, ``/root``, ``/home``, the project, other
runs' files, the host's ``/tmp`` -- does not exist in there. The program and its
output travel through anonymous memory files (stdin and stdout), so nothing is
written to the host's disk and nothing is left behind, however the run ends.
The sandbox also unshares every namespace it can (no network, its own PID,
IPC and UTS namespaces), drops every capability (also when run as root), and is
killed with its parent (``--die-with-parent``): a killed render worker or command
leaves no OpenSCAD. The caller starts it in a new session with no terminal, and
bubblewrap keeps OpenSCAD in that session's process group, so one ``killpg``
stops the whole sandbox at a timeout.

What it does not cover: a kernel or bubblewrap vulnerability; reads of files
under ``/usr`` (system software, world-readable anyway); CPU and memory, which
are bounded by the rlimits :mod:`renderer.openscad` sets, not here.

``bwrap`` is ``$SCADLOOP_BWRAP`` if set, else the bundle's own ``bin/bwrap`` when
OpenSCAD comes from a bundle, else ``bwrap`` on ``PATH``.

Where the sandbox cannot start (no ``bwrap``, or user namespaces disabled for an
unprivileged user), :func:`require` raises :class:`SandboxUnavailable` with a
one-line reason, and untrusted programs are refused, unless the user opts out
with ``SCADLOOP_UNSANDBOXED=1`` (``RenderLimits.unsandboxed``): OpenSCAD then
runs with the user's own file permissions, and a hostile program can read any
file the user can.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence

from renderer.errors import RendererUnavailable

logger = logging.getLogger(__name__)

UNSANDBOXED_ENV = "SCADLOOP_UNSANDBOXED"
"""Set to ``1`` to run OpenSCAD without the sandbox (the explicit, risky opt-out)."""
BWRAP_ENV = "SCADLOOP_BWRAP"
"""Names the ``bwrap`` binary to use, overriding the bundle's and ``PATH``'s."""
BUNDLE_MARKER = "scadloop-bundle.txt"
"""The file at a bundle's root that ``scripts/bundle_openscad.py`` writes (its contents list)."""
WORKDIR = "/tmp"
"""The sandbox's private writable folder: working directory, ``HOME`` and ``TMPDIR``."""
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_READ_ONLY_EXTRAS = ("/etc/fonts", "/etc/ld.so.cache")
_PRIVATE = ("--tmpfs", WORKDIR, "--proc", "/proc", "--dev", "/dev")  # /dev/fd/N needs /proc
_ISOLATION = ("--chdir", WORKDIR, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL")


class SandboxUnavailable(RendererUnavailable):
    """The OS sandbox cannot start here: a set-up problem, reported in one line."""


def unsandboxed_from_env() -> bool:
    """True when the user opted out of the sandbox with ``SCADLOOP_UNSANDBOXED=1``."""
    return os.environ.get(UNSANDBOXED_ENV, "").strip() == "1"


def bundle_root(openscad_path: str) -> str | None:
    """The root of the OpenSCAD bundle whose ``bin/openscad`` ``openscad_path`` is, or ``None``."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(openscad_path)))
    return root if os.path.isfile(os.path.join(root, BUNDLE_MARKER)) else None


def find_bwrap(openscad_path: str) -> str | None:
    """``$SCADLOOP_BWRAP``, else the bundle's ``bin/bwrap``, else ``bwrap`` on ``PATH``."""
    explicit = os.environ.get(BWRAP_ENV)
    if explicit:
        return explicit  # a wrong path fails the probe with its own reason
    root = bundle_root(openscad_path)
    if root is not None and os.access(os.path.join(root, "bin", "bwrap"), os.X_OK):
        return os.path.join(root, "bin", "bwrap")
    return shutil.which("bwrap")


def _program_folder(openscad_path: str) -> str:
    """What OpenSCAD needs visible: the bundle's root, or else the binary's own folder."""
    return bundle_root(openscad_path) or os.path.dirname(os.path.realpath(openscad_path))


def bwrap_arguments(openscad_path: str, library_dirs: Sequence[str]) -> list[str]:
    """The ``bwrap`` options (without the binary) that build the sandbox described above."""
    args = [*_PRIVATE, "--ro-bind", "/usr", "/usr"]
    for path in _ROOT_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _READ_ONLY_EXTRAS:
        args += ["--ro-bind-try", path, path]
    for folder in _outside_usr([_program_folder(openscad_path), *library_dirs]):
        args += ["--ro-bind-try", folder, folder]
    return args + list(_ISOLATION)


def _outside_usr(folders: Sequence[str]) -> list[str]:
    """The real paths of ``folders`` not already visible under ``/usr`` or an earlier one."""
    out: list[str] = []
    for folder in folders:
        real = os.path.realpath(folder)
        if not any(os.path.commonpath([seen, real]) == seen for seen in ["/usr", *out]):
            out.append(real)
    return out


@functools.cache
def _probe(openscad_path: str, library_dirs: tuple[str, ...]) -> list[str]:
    """Start OpenSCAD once inside the sandbox; the ``bwrap`` command prefix, or raise."""
    bwrap = find_bwrap(openscad_path)
    if bwrap is None:
        raise SandboxUnavailable(
            "the OpenSCAD sandbox needs bubblewrap, which is not installed (apt-get install -y "
            f"bubblewrap, or {BWRAP_ENV}=<path to bwrap>); refusing to run untrusted programs "
            f"without it ({UNSANDBOXED_ENV}=1 runs them unsandboxed: a hostile program can then "
            "read any file you can)"
        )
    prefix = [bwrap, *bwrap_arguments(openscad_path, library_dirs), "--"]
    try:
        done = subprocess.run(prefix + [openscad_path, "--version"], capture_output=True, text=True,
                              timeout=60, env={"PATH": "/usr/bin:/bin"}, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxUnavailable(f"the OpenSCAD sandbox did not start: {error}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise SandboxUnavailable(
            f"the OpenSCAD sandbox (bubblewrap) cannot start here: {reason}; refusing to run "
            f"untrusted programs ({UNSANDBOXED_ENV}=1 runs them unsandboxed, at your own risk)"
        )
    logger.info("OpenSCAD runs in a bubblewrap sandbox (%s)", bwrap)
    return prefix


def require(openscad_path: str, library_dirs: Sequence[str]) -> list[str]:
    """The command prefix that runs a program inside the sandbox (probed once per process).

    Raises :class:`SandboxUnavailable` with a one-line reason where it cannot start.
    """
    return _probe(openscad_path, tuple(library_dirs))


@functools.cache
def warn_unsandboxed() -> None:
    """Say once per process that OpenSCAD runs without the sandbox, and what that risks."""
    logger.warning("OpenSCAD runs WITHOUT the sandbox (RenderLimits.unsandboxed, %s=1): a hostile "
                   "program can read any file this user can read", UNSANDBOXED_ENV)
