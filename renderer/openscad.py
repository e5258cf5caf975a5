"""Run untrusted OpenSCAD code with the real OpenSCAD CLI and return a typed mesh.

``run(code, limits) -> MeshResult`` never raises on a bad program: every
outcome is one of the :class:`Status` values, with the mesh (``vertices``
``(N, 3) float64``, ``faces`` ``(M, 3) int64``), the tail of OpenSCAD's stderr
and the wall time. It raises only for set-up problems: :class:`OpenSCADNotFound`,
and :class:`renderer.sandbox.SandboxUnavailable` where the sandbox cannot start.

What the sandbox covers
-----------------------
- **The boundary is the operating system** (:mod:`renderer.sandbox`): OpenSCAD
  runs under bubblewrap where only ``/usr`` (read-only), fonts and a private
  empty ``/tmp`` exist, with no network, its own PID namespace, no
  capabilities, killed with its parent. The program goes in through stdin and
  the mesh comes out through stdout, both anonymous memory files: nothing is
  written to the host's disk, so nothing is left behind however a run ends.
- **Resource limits**, set before OpenSCAD starts (util-linux ``prlimit``
  where present, else ``resource.setrlimit`` in a ``preexec_fn``): an
  address-space cap (``RLIMIT_AS``), a cap on every file written, the mesh and
  stderr included (``RLIMIT_FSIZE``), a CPU-time backstop a little past the
  wall timeout (``RLIMIT_CPU``, in case the parent cannot kill it) and no core
  dumps; a wall-clock timeout after which the whole process group is killed;
  a minimal environment (no inherited variables).
- **The text screen** (:mod:`renderer.screen`) refuses obvious file reads
  early, as ``forbidden`` with a reason, without starting OpenSCAD. It explains;
  it is not the boundary (``RenderLimits.screen=False`` switches it off, which
  is how the tests check that the sandbox alone holds).

What it does not cover
----------------------
- A kernel or bubblewrap vulnerability, or a malicious OpenSCAD binary.
- With the explicit opt-out ``SCADLOOP_UNSANDBOXED=1`` (for machines where
  bubblewrap cannot start), OpenSCAD runs as the calling user with that user's
  file permissions and network: only the text screen stands between a hostile
  program and the user's files, and it is known to have holes.
- Fonts used by ``text()`` are read through fontconfig, as usual.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from renderer import sandbox
from renderer.errors import RendererUnavailable
from renderer.screen import find_forbidden
from renderer.stl import parse_binary_stl

STDERR_TAIL_CHARS = 2000


class Status(enum.StrEnum):
    """Outcome of one OpenSCAD run."""

    OK = "ok"
    SYNTAX_ERROR = "syntax_error"
    RUNTIME_ERROR = "runtime_error"
    EMPTY = "empty"
    NOT_3D = "not_3d"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    FORBIDDEN = "forbidden"
    CRASHED = "crashed"


class OpenSCADNotFound(RendererUnavailable):
    """The OpenSCAD binary is missing: a set-up problem, not a bad program."""


@dataclass(frozen=True)
class OpenSCADInfo:
    """The binary in use, found once per process."""

    path: str
    version: str
    supports_manifold: bool
    library_dir: str | None
    prlimit: str | None
    """util-linux ``prlimit``: sets the limits before exec, without forking Python."""


def _default_library_dirs() -> tuple[str, ...]:
    try:
        lib = openscad_info().library_dir
    except OpenSCADNotFound:
        return ()
    return (lib,) if lib else ()


@dataclass(frozen=True)
class RenderLimits:
    """Resource limits for one OpenSCAD run."""

    timeout_s: float = 30.0
    """Wall-clock limit; the process group is killed when it passes."""
    memory_bytes: int = 2 * 1024**3
    """Address-space cap of the OpenSCAD process (RLIMIT_AS)."""
    max_output_bytes: int = 64 * 1024**2
    """Largest file OpenSCAD may write: the mesh and its stderr (RLIMIT_FSIZE)."""
    max_code_bytes: int = 256 * 1024
    """Programs longer than this are refused as too_large without running."""
    library_dirs: tuple[str, ...] = field(default_factory=_default_library_dirs)
    """Folders whose files include/use/import/surface may read."""
    screen: bool = True
    """Refuse obvious file reads before starting OpenSCAD (``forbidden`` with a reason). An
    early explanation only: the sandbox is the boundary."""
    unsandboxed: bool = field(default_factory=sandbox.unsandboxed_from_env)
    """Run OpenSCAD WITHOUT the OS sandbox: a hostile program can then read any file the
    user can. Only for machines where bubblewrap cannot start; default from
    ``SCADLOOP_UNSANDBOXED=1``."""

    @property
    def cpu_seconds(self) -> int:
        """RLIMIT_CPU backstop: the kernel stops OpenSCAD a little after the wall timeout."""
        return math.ceil(self.timeout_s) + 5

    def cache_key(self) -> str:
        """The settings that can change a run's deterministic outcome."""
        return (
            f"mem={self.memory_bytes};out={self.max_output_bytes};code={self.max_code_bytes};"
            f"libs={':'.join(self.library_dirs)}"
        )


@dataclass
class MeshResult:
    """A program's outcome: a status, and the triangle mesh when status is ok."""

    status: Status
    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float64))
    faces: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    stderr: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


@functools.cache
def openscad_info() -> OpenSCADInfo:
    """Find the OpenSCAD binary (``$SCADLOOP_OPENSCAD`` or ``PATH``) once.

    The library folder is ``<prefix>/share/openscad/libraries`` beside the binary's real
    ``<prefix>/bin``: ``/usr/share/...`` for Debian's package, the bundle's own for the
    relocatable bundle of ``scripts/bundle_openscad.py``
    (``SCADLOOP_OPENSCAD=<bundle>/bin/openscad``, whose sandbox :mod:`renderer.sandbox` sets up).
    """
    path = os.environ.get("SCADLOOP_OPENSCAD") or shutil.which("openscad")
    if not path or not os.access(path, os.X_OK):
        raise OpenSCADNotFound(
            "OpenSCAD not found: install it with `apt-get install -y openscad` "
            "(Debian/Ubuntu) or point SCADLOOP_OPENSCAD at the binary"
        )
    if sandbox.bundle_root(path):
        path = os.path.realpath(path)  # a symlink to a bundle may lie outside what the sandbox shows
    version = _capture([path, "--version"]).strip().splitlines()
    help_text = _capture([path, "--help"])
    share = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(path))), "share")
    library_dir = os.path.join(share, "openscad", "libraries")
    return OpenSCADInfo(
        path=path,
        version=version[-1] if version else "unknown",
        supports_manifold="--backend" in help_text and "manifold" in help_text,
        library_dir=library_dir if os.path.isdir(library_dir) else None,
        prlimit=shutil.which("prlimit"),
    )


def _capture(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr


def openscad_command(source: str = "-", out: str = "-") -> list[str]:
    """The CLI invocation used for every run: ``source`` to binary STL ``out`` (``-``:
    stdin / stdout; ``run`` reads the program from stdin and writes the mesh to an
    inherited memory file). Also used by the benches for bare runs."""
    info = openscad_info()
    cmd = [info.path, "-o", out, "--export-format", "binstl"]
    if info.supports_manifold:
        cmd.append("--backend=manifold")
    return cmd + [source]


def run(code: str, limits: RenderLimits | None = None) -> MeshResult:
    """Execute ``code`` with OpenSCAD under ``limits``; never raises on a bad program."""
    limits = limits or RenderLimits()
    start = time.perf_counter()
    result = _run_checked(code, limits)
    result.seconds = time.perf_counter() - start
    return result


def sandbox_prefix(limits: RenderLimits) -> list[str]:
    """The command prefix that puts OpenSCAD in the OS sandbox (``[]`` when the user opted
    out). Raises :class:`renderer.sandbox.SandboxUnavailable` where it cannot start."""
    if limits.unsandboxed:
        sandbox.warn_unsandboxed()
        return []
    return sandbox.require(openscad_info().path, limits.library_dirs)


def _run_checked(code: str, limits: RenderLimits) -> MeshResult:
    if len(code.encode("utf-8", "replace")) > limits.max_code_bytes:
        return MeshResult(Status.TOO_LARGE, stderr="program longer than max_code_bytes")
    reason = find_forbidden(code, limits.library_dirs) if limits.screen else None
    if reason is not None:
        return MeshResult(Status.FORBIDDEN, stderr=reason)
    prefix = sandbox_prefix(limits)
    if prefix:
        return _run_in(sandbox.WORKDIR, prefix, code, limits)
    with tempfile.TemporaryDirectory(prefix="scadloop-") as workdir:  # unsandboxed opt-out only
        return _run_in(workdir, prefix, code, limits)


def _run_in(workdir: str, prefix: list[str], code: str, limits: RenderLimits) -> MeshResult:
    """Run OpenSCAD with ``workdir`` as working folder and ``HOME`` (inside the sandbox when
    ``prefix`` is set); program, mesh and messages pass through memory files (the mesh as
    ``/dev/fd/N``, so that stray output on stdout cannot corrupt it)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "OPENSCADPATH": os.pathsep.join(limits.library_dirs),
    }
    prlimit = openscad_info().prlimit
    rlimits, preexec = (_prlimit_prefix(prlimit, limits), None) if prlimit else ([], limits)
    with _MemoryFile("program", code.encode("utf-8", "replace")) as program, \
            _MemoryFile("mesh") as mesh, _MemoryFile("stderr") as err:
        proc = subprocess.Popen(
            rlimits + prefix + openscad_command(out=f"/dev/fd/{mesh.fd}"),
            cwd=None if prefix else workdir,
            env=env,
            stdin=program.fd,
            stdout=err.fd,  # OpenSCAD's lexer echoes stray characters to stdout
            stderr=err.fd,
            pass_fds=(mesh.fd,),
            start_new_session=True,
            preexec_fn=functools.partial(_apply_limits, preexec) if preexec else None,
        )
        timed_out = _wait_or_kill(proc, limits.timeout_s)
        stderr = err.read(limits.max_output_bytes).decode("utf-8", "replace")
        status = classify(proc.returncode, stderr, timed_out)
        if status is not None:
            return MeshResult(status, stderr=stderr[-STDERR_TAIL_CHARS:])
        return _load_mesh(mesh, stderr[-STDERR_TAIL_CHARS:], limits)


class _MemoryFile:
    """An anonymous in-memory file (``memfd``): a child's stdin, stdout or stderr that never
    touches the disk and is gone when closed."""

    def __init__(self, name: str, data: bytes = b""):
        self.fd = os.memfd_create(f"scadloop-{name}", os.MFD_CLOEXEC)
        if data:
            os.write(self.fd, data)
            os.lseek(self.fd, 0, os.SEEK_SET)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes from the start."""
        return os.pread(self.fd, min(self.size(), limit), 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _prlimit_prefix(prlimit: str, limits: RenderLimits) -> list[str]:
    """``prlimit`` sets the same rlimits as :func:`_apply_limits`, then execs the sandbox.

    Preferred because a ``preexec_fn`` forces a full ``fork()`` of this (large)
    Python process, which costs ~15 ms a run once torch and open3d are loaded.
    """
    mem, out, cpu = limits.memory_bytes, limits.max_output_bytes, limits.cpu_seconds
    return [prlimit, f"--as={mem}:{mem}", f"--fsize={out}:{out}", f"--cpu={cpu}:{cpu + 1}",
            "--core=0:0", "--"]


def _apply_limits(limits: RenderLimits) -> None:
    """Fallback where ``prlimit`` is missing: ``resource.setrlimit`` in the child."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    size = limits.max_output_bytes
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _wait_or_kill(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for ``proc``; on timeout kill its whole process group. True if it timed out."""
    try:
        _wait_for_exit(proc, timeout_s)
        return False
    except subprocess.TimeoutExpired:
        return True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # also reaps helpers it may have spawned
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def _wait_for_exit(proc: subprocess.Popen, timeout_s: float) -> None:
    """Block until ``proc`` exits or raise ``TimeoutExpired``.

    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which would dominate a
    40 ms OpenSCAD run; a Linux pidfd wakes us the moment the process exits.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        proc.wait(timeout=timeout_s)
        return
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    if not ready:
        raise subprocess.TimeoutExpired(proc.args, timeout_s)
    proc.wait()


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


_MEMORY_MARKERS = ("std::bad_alloc", "out of memory", "Cannot allocate memory")


def _signal_of(returncode: int | None) -> int | None:
    """The signal that ended the process: ``-N`` from Popen, or ``128 + N`` as bubblewrap
    reports a child it lost to a signal."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    return returncode - 128 if 128 < returncode < 128 + 65 else None


def classify(returncode: int | None, stderr: str, timed_out: bool) -> Status | None:
    """Map a finished OpenSCAD run to a failure status, or ``None`` if it may be ok."""
    signum = _signal_of(returncode)
    if timed_out or signum == signal.SIGXCPU:
        return Status.TIMEOUT
    if signum == signal.SIGXFSZ or any(m in stderr for m in _MEMORY_MARKERS):
        return Status.TOO_LARGE
    if "Parser error" in stderr:
        return Status.SYNTAX_ERROR
    if "ERROR:" in stderr:
        return Status.RUNTIME_ERROR
    if "top level object is not a 3D object" in stderr:
        return Status.NOT_3D
    if "top level object is empty" in stderr:
        return Status.EMPTY
    if returncode != 0:
        return Status.CRASHED
    return None


def _load_mesh(mesh: _MemoryFile, stderr: str, limits: RenderLimits) -> MeshResult:
    size = mesh.size()
    if size == 0:
        return MeshResult(Status.EMPTY, stderr=stderr)  # exit 0 but nothing written
    if size >= limits.max_output_bytes:
        return MeshResult(Status.TOO_LARGE, stderr=stderr)
    try:
        vertices, faces = parse_binary_stl(mesh.read(size))
    except ValueError as exc:
        return MeshResult(Status.CRASHED, stderr=f"{stderr}\nunreadable STL: {exc}")
    if len(faces) == 0:
        return MeshResult(Status.EMPTY, stderr=stderr)
    return MeshResult(Status.OK, vertices, faces, stderr=stderr)
