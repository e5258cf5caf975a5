"""Content-addressed on-disk cache of OpenSCAD results.

The key is a SHA-256 of the code, the OpenSCAD version and backend, and the
limits that can change a deterministic outcome (:meth:`RenderLimits.cache_key`).
Timeouts and crashes depend on machine load, so they are never stored.

Layout: ``root/ab/abcdef....mesh``, one file per entry: a JSON header line
(status, stderr tail, seconds) followed by two ``.npy`` arrays. Writes go to a
temporary file and are renamed into place, so readers in other processes see
a whole entry or none. A hit refreshes the entry's mtime; when the total size
passes ``max_bytes``, the oldest entries are removed until it is under 80 % of
the bound (one process evicts at a time, under an ``flock``).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tempfile

import numpy as np

from renderer.openscad import MeshResult, RenderLimits, Status, openscad_info, run

_UNCACHED = {Status.TIMEOUT, Status.CRASHED}
_SUFFIX = ".mesh"


class RenderCache:
    """A size-bounded cache of :func:`renderer.openscad.run` results under ``root``."""

    def __init__(self, root: str, max_bytes: int = 2 * 1024**3):
        self.root = root
        self.max_bytes = max_bytes
        os.makedirs(root, exist_ok=True)
        self._bytes_since_check = 0

    def key(self, code: str, limits: RenderLimits) -> str:
        info = openscad_info()
        salt = f"{info.version}|manifold={info.supports_manifold}|{limits.cache_key()}"
        return hashlib.sha256(f"{salt}\0{code}".encode("utf-8", "replace")).hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], key + _SUFFIX)

    def get(self, key: str) -> MeshResult | None:
        """The stored result for ``key``, or ``None``."""
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                header = json.loads(fh.readline())
                vertices = np.load(fh, allow_pickle=False)
                faces = np.load(fh, allow_pickle=False)
            os.utime(path)
        except (OSError, ValueError, EOFError):
            return None
        return MeshResult(Status(header["status"]), vertices, faces, header["stderr"], header["seconds"])

    def put(self, key: str, result: MeshResult) -> None:
        """Store ``result`` unless its status depends on machine load."""
        if result.status in _UNCACHED:
            return
        buffer = io.BytesIO()
        header = {"status": str(result.status), "stderr": result.stderr, "seconds": result.seconds}
        buffer.write(json.dumps(header).encode() + b"\n")
        np.save(buffer, np.ascontiguousarray(result.vertices, np.float64))
        np.save(buffer, np.ascontiguousarray(result.faces, np.int64))
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getvalue())
        os.replace(tmp, path)
        self._bytes_since_check += buffer.tell()
        if self._bytes_since_check > self.max_bytes // 20:
            self.evict()

    def run(self, code: str, limits: RenderLimits | None = None) -> MeshResult:
        """:func:`renderer.openscad.run` through the cache."""
        limits = limits or RenderLimits()
        key = self.key(code, limits)
        hit = self.get(key)
        if hit is not None:
            return hit
        result = run(code, limits)
        self.put(key, result)
        return result

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def evict(self) -> int:
        """Remove the least recently used entries while over the bound; return how many."""
        self._bytes_since_check = 0
        with open(os.path.join(self.root, ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is evicting
            entries = sorted(self._entries(), key=lambda e: e[2])
            total = sum(size for _, size, _ in entries)
            removed = 0
            target = self.max_bytes * 0.8 if total > self.max_bytes else total
            for path, size, _ in entries:
                if total <= target:
                    break
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                total -= size
                removed += 1
            return removed

    def _entries(self):
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if name.endswith(_SUFFIX):
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        continue
                    yield path, st.st_size, st.st_mtime_ns
