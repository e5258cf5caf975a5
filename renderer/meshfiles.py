"""Mesh files a user gives, ``.obj``, ``.off`` and ``.ply``, as ``vertices (N, 3)`` and ``faces (M, 3)``.

Binary STL is :mod:`renderer.stl`. OBJ and OFF are read here as text, geometry only: ``v`` and
``f`` lines of an OBJ (``f 1/2/3 ...`` and negative indices understood; polygons cut into a fan
of triangles); the vertex and face lists of an OFF. A reference to another file (an OBJ's
``mtllib``, ``usemtl``) is ignored, never opened: a mesh file a user uploads reads nothing else.
PLY (ASCII or binary, which holds no such reference) is read with open3d.

Every problem is a ``ValueError`` that says what is wrong (the caller adds the file's name).
Whether a face is usable (not degenerate) is checked later, where the mesh is prepared.
"""

from __future__ import annotations

import os

import numpy as np

FORMATS = (".obj", ".off", ".ply")
"""Extensions this module reads."""


def read_mesh_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (N, 3) float64, faces (M, 3) int64)`` of the ``.obj``, ``.off`` or ``.ply`` at
    ``path`` (by its extension); ``ValueError`` for any other file or a bad one."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".obj":
        with open(path, encoding="utf-8", errors="replace") as fh:
            vertices, faces = _obj(fh)
    elif extension == ".off":
        with open(path, encoding="utf-8", errors="replace") as fh:
            vertices, faces = _off(fh)
    elif extension == ".ply":
        vertices, faces = _ply(path)
    else:
        raise ValueError(f"not one of {', '.join(FORMATS)}")
    return _checked(vertices, faces)


def _obj(lines) -> tuple[list, list]:
    vertices: list = []
    faces: list = []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append(_floats(parts[1:4], number))
        elif parts[0] == "f":
            corners = [_obj_index(token, len(vertices), number) for token in parts[1:]]
            faces.extend(_fan(corners, number))
    return vertices, faces


def _obj_index(token: str, count: int, number: int) -> int:
    try:
        index = int(token.split("/")[0])
    except ValueError:
        raise ValueError(f"line {number}: face corner {token[:20]!r} is not a vertex number") from None
    if index == 0 or abs(index) > count:
        raise ValueError(f"line {number}: face names vertex {index}, there are {count}")
    return index - 1 if index > 0 else count + index


def _off(lines) -> tuple[list, list]:
    rows = ((number, line.split("#")[0].split()) for number, line in enumerate(lines, 1))
    rows = ((number, parts) for number, parts in rows if parts)
    number, header = next(rows, (1, []))
    if not header or header[0] != "OFF":
        raise ValueError("the first line is not OFF")
    counts = header[1:] or next(rows, (2, []))[1]
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        raise ValueError("no vertex and face counts after OFF") from None
    vertices = [_floats(parts[:3], number) for number, parts in _take(rows, n_vertices, "vertices")]
    faces: list = []
    for number, parts in _take(rows, n_faces, "faces"):
        size = int(parts[0]) if parts[0].isdigit() else -1
        if size < 3 or len(parts) < size + 1:
            raise ValueError(f"line {number}: not a face (a count of 3 or more, then as many vertices)")
        faces.extend(_fan([_int(token, number) for token in parts[1 : size + 1]], number))
    return vertices, faces


def _take(rows, count: int, what: str):
    for i in range(count):
        row = next(rows, None)
        if row is None:
            raise ValueError(f"the header says {count} {what}, the file ends after {i}")
        yield row


def _ply(path: str) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    with open(path, "rb") as fh:
        if fh.readline(16).strip() != b"ply":
            raise ValueError("the first line is not ply")
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(path, enable_post_processing=False, print_progress=False)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)


def _fan(corners: list[int], number: int) -> list[tuple[int, int, int]]:
    if len(corners) < 3:
        raise ValueError(f"line {number}: a face needs 3 corners, it has {len(corners)}")
    return [(corners[0], corners[i], corners[i + 1]) for i in range(1, len(corners) - 1)]


def _floats(tokens: list[str], number: int) -> tuple[float, float, float]:
    try:
        if len(tokens) == 3:
            x, y, z = (float(token) for token in tokens)
            return x, y, z
    except ValueError:
        pass
    raise ValueError(f"line {number}: a vertex needs 3 numbers, got {' '.join(tokens)[:40]!r}")


def _int(token: str, number: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"line {number}: {token[:20]!r} is not a vertex number") from None


def _checked(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if len(faces) == 0:
        raise ValueError("no triangle in the file")
    if not np.isfinite(vertices).all():
        raise ValueError("non-finite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError("a face names a vertex that does not exist")
    return vertices, faces
