"""Binary STL: parse OpenSCAD's output (bytes) into an indexed mesh, and write one back.

``vertices (N, 3) float64`` and ``faces (M, 3) int64``, with bit-identical
corners welded into one vertex.
"""

from __future__ import annotations

import numpy as np

_STL_RECORD = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def parse_binary_stl(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse a whole binary STL; ``ValueError`` names what is wrong with a bad one."""
    if len(data) < 84:
        raise ValueError(f"{len(data)} bytes is shorter than an STL header")
    count = int(np.frombuffer(data, "<u4", count=1, offset=80)[0])
    if len(data) != 84 + count * _STL_RECORD.itemsize:
        raise ValueError(f"header says {count} triangles but the file has {len(data)} bytes")
    corners = np.frombuffer(data, _STL_RECORD, count=count, offset=84)["v"].reshape(-1, 3)
    if not np.isfinite(corners).all():
        raise ValueError("non-finite vertex coordinates")
    return weld_vertices(corners)


def read_binary_stl(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a binary STL file into ``vertices (N, 3) float64`` and ``faces (M, 3) int64``."""
    with open(path, "rb") as fh:
        return parse_binary_stl(fh.read())


def weld_vertices(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge bit-identical corners of a triangle soup ``(3M, 3)`` into an indexed mesh."""
    corners = np.ascontiguousarray(corners)
    keys = corners.view(np.dtype((np.void, corners.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    vertices = corners[first].astype(np.float64)
    return vertices, inverse.reshape(-1, 3).astype(np.int64)


def write_binary_stl(path: str, vertices: np.ndarray, faces: np.ndarray) -> str:
    """Write ``vertices (N, 3)`` / ``faces (M, 3)`` as a binary STL (unit normals, little endian)."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    records = np.zeros(len(corners), dtype=_STL_RECORD)
    records["normal"] = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    records["v"] = corners
    header = b"scadloop binary STL".ljust(80, b" ")
    with open(path, "wb") as fh:
        fh.write(header + np.uint32(len(records)).tobytes() + records.tobytes())
    return path
