"""Run untrusted OpenSCAD code with the real OpenSCAD CLI and return a typed mesh.

``run(code, limits) -> MeshResult`` never raises on a bad program: every
outcome is one of the :class:`Status` values, with the mesh (``vertices``
``(N, 3) float64``, ``faces`` ``(M, 3) int64``), the tail of OpenSCAD's stderr
and the wall time.

What the sandbox covers
-----------------------
- File reads from the program: ``include``/``use``/``import()``/``surface()`` and
  the deprecated ``file=`` readers are refused (status ``forbidden``, OpenSCAD is
  never started) unless the path is a literal inside an allow-listed library
  folder (default: OpenSCAD's own ``libraries`` folder, which holds MCAD). See
  :mod:`renderer.sandbox`.
- Each run gets a fresh temporary directory as working directory and ``HOME``,
  a minimal environment (no inherited variables), a wall-clock timeout after
  which the whole process group is killed, an address-space cap
  (``RLIMIT_AS``), a cap on the size of every file it writes (``RLIMIT_FSIZE``,
  which bounds the mesh and the captured stderr) and no core dumps. The rlimits
  are set before OpenSCAD starts, by util-linux ``prlimit`` where present, else
  by ``resource.setrlimit`` in a ``preexec_fn``. The
  directory is removed afterwards, whatever happened.

What it does not cover
----------------------
- It is not an OS-level jail: OpenSCAD runs as the calling user, with that
  user's file permissions and network access. OpenSCAD 2021.01 has no
  language feature that writes files or opens sockets, and reads are screened
  statically, so this is enough for generated CAD code; it is not a defence
  against a malicious OpenSCAD binary or a bug in OpenSCAD's parser.
- CPU use inside the timeout is not limited (one OpenSCAD process is
  single-threaded).
- Fonts used by ``text()`` are read through fontconfig, as usual.
"""

from __future__ import annotations

import enum
import functools
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

from renderer.sandbox import find_forbidden

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


class OpenSCADNotFound(RuntimeError):
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
    """Find the OpenSCAD binary (``$SCADLOOP_OPENSCAD`` or ``PATH``) once."""
    path = os.environ.get("SCADLOOP_OPENSCAD") or shutil.which("openscad")
    if not path or not os.access(path, os.X_OK):
        raise OpenSCADNotFound(
            "OpenSCAD not found: install it with `apt-get install -y openscad` "
            "(Debian/Ubuntu) or point SCADLOOP_OPENSCAD at the binary"
        )
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


def openscad_command(scad_path: str, out_path: str) -> list[str]:
    """The CLI invocation used for every run (also used by bench/render.py)."""
    info = openscad_info()
    cmd = [info.path, "-o", out_path, "--export-format", "binstl"]
    if info.supports_manifold:
        cmd.append("--backend=manifold")
    return cmd + [scad_path]


def run(code: str, limits: RenderLimits | None = None) -> MeshResult:
    """Execute ``code`` with OpenSCAD under ``limits``; never raises on a bad program."""
    limits = limits or RenderLimits()
    start = time.perf_counter()
    result = _run_checked(code, limits)
    result.seconds = time.perf_counter() - start
    return result


def _run_checked(code: str, limits: RenderLimits) -> MeshResult:
    if len(code.encode("utf-8", "replace")) > limits.max_code_bytes:
        return MeshResult(Status.TOO_LARGE, stderr="program longer than max_code_bytes")
    reason = find_forbidden(code, limits.library_dirs)
    if reason is not None:
        return MeshResult(Status.FORBIDDEN, stderr=reason)
    with tempfile.TemporaryDirectory(prefix="scadloop-") as workdir:
        return _run_in(workdir, code, limits)


def _run_in(workdir: str, code: str, limits: RenderLimits) -> MeshResult:
    scad_path = os.path.join(workdir, "part.scad")
    out_path = os.path.join(workdir, "part.stl")
    err_path = os.path.join(workdir, "stderr.txt")
    with open(scad_path, "w", encoding="utf-8", errors="replace") as fh:
        fh.write(code)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "OPENSCADPATH": os.pathsep.join(limits.library_dirs),
    }
    prlimit = openscad_info().prlimit
    prefix, preexec = (_prlimit_prefix(prlimit, limits), None) if prlimit else ([], limits)
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            prefix + openscad_command(scad_path, out_path),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
            preexec_fn=functools.partial(_apply_limits, preexec) if preexec else None,
        )
        timed_out = _wait_or_kill(proc, limits.timeout_s)
    stderr = _read_text(err_path)
    status = classify(proc.returncode, stderr, timed_out)
    if status is not None:
        return MeshResult(status, stderr=stderr[-STDERR_TAIL_CHARS:])
    return _load_mesh(out_path, stderr[-STDERR_TAIL_CHARS:], limits)


def _prlimit_prefix(prlimit: str, limits: RenderLimits) -> list[str]:
    """``prlimit`` sets the same rlimits as :func:`_apply_limits`, then execs OpenSCAD.

    Preferred because a ``preexec_fn`` forces a full ``fork()`` of this (large)
    Python process, which costs ~15 ms a run once torch and open3d are loaded.
    """
    mem, out = limits.memory_bytes, limits.max_output_bytes
    return [prlimit, f"--as={mem}:{mem}", f"--fsize={out}:{out}", "--core=0:0", "--"]


def _apply_limits(limits: RenderLimits) -> None:
    """Fallback where ``prlimit`` is missing: ``resource.setrlimit`` in the child."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    size = limits.max_output_bytes
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
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


def classify(returncode: int | None, stderr: str, timed_out: bool) -> Status | None:
    """Map a finished OpenSCAD run to a failure status, or ``None`` if it may be ok."""
    if timed_out:
        return Status.TIMEOUT
    if returncode == -signal.SIGXFSZ or any(m in stderr for m in _MEMORY_MARKERS):
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


_STL_RECORD = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def _load_mesh(out_path: str, stderr: str, limits: RenderLimits) -> MeshResult:
    try:
        size = os.path.getsize(out_path)
    except OSError:
        return MeshResult(Status.EMPTY, stderr=stderr)  # exit 0 but nothing written
    if size >= limits.max_output_bytes:
        return MeshResult(Status.TOO_LARGE, stderr=stderr)
    try:
        vertices, faces = read_binary_stl(out_path)
    except ValueError as exc:
        return MeshResult(Status.CRASHED, stderr=f"{stderr}\nunreadable STL: {exc}")
    if len(faces) == 0:
        return MeshResult(Status.EMPTY, stderr=stderr)
    return MeshResult(Status.OK, vertices, faces, stderr=stderr)


def read_binary_stl(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a binary STL into shared ``vertices (N, 3) float64`` and ``faces (M, 3) int64``."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 84:
        raise ValueError(f"{len(data)} bytes is shorter than an STL header")
    count = int(np.frombuffer(data, "<u4", count=1, offset=80)[0])
    if len(data) != 84 + count * _STL_RECORD.itemsize:
        raise ValueError(f"header says {count} triangles but the file has {len(data)} bytes")
    corners = np.frombuffer(data, _STL_RECORD, count=count, offset=84)["v"].reshape(-1, 3)
    if not np.isfinite(corners).all():
        raise ValueError("non-finite vertex coordinates")
    return weld_vertices(corners)


def weld_vertices(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge bit-identical corners of a triangle soup ``(3M, 3)`` into an indexed mesh."""
    corners = np.ascontiguousarray(corners)
    keys = corners.view(np.dtype((np.void, corners.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    vertices = corners[first].astype(np.float64)
    return vertices, inverse.reshape(-1, 3).astype(np.int64)
