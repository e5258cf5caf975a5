"""Tiny numpy test meshes for the reward tests (no OpenSCAD needed)."""

import itertools

import numpy as np

from renderer.openscad import MeshResult, Status

# Two outward-facing triangles per side of a box whose corner (i, j, k) is vertex 4i + 2j + k.
BOX_FACES = np.array(
    [
        [0, 1, 3], [0, 3, 2],  # x = lo
        [4, 6, 7], [4, 7, 5],  # x = hi
        [0, 4, 5], [0, 5, 1],  # y = lo
        [2, 3, 7], [2, 7, 6],  # y = hi
        [0, 2, 6], [0, 6, 4],  # z = lo
        [1, 5, 7], [1, 7, 3],  # z = hi
    ],
    dtype=np.int64,
)  # fmt: skip


def box(lo=(0.0, 0.0, 0.0), hi=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box from corner ``lo`` to ``hi``: ``vertices (8, 3)``, ``faces (12, 3)``."""
    bits = np.array(list(itertools.product((0, 1), repeat=3)))
    corners = np.where(bits == 1, np.asarray(hi, np.float64), np.asarray(lo, np.float64))
    return corners, BOX_FACES.copy()


def cube(side: float = 1.0, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A cube of edge ``side`` centred at ``centre``."""
    centre = np.asarray(centre, dtype=np.float64)
    return box(centre - side / 2, centre + side / 2)


def ok(vertices, faces) -> MeshResult:
    """A successful render of the given mesh."""
    return MeshResult(Status.OK, np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
