"""Geometric comparison of two triangle meshes: surface samples, chamfer distance, IoU.

Every function takes plain arrays (``vertices (N, 3)``, ``faces (M, 3)``)
already placed in a common frame (the reward uses the target's
:class:`renderer.views.Frame`; the eval protocol uses the unit cube).

Volume is compared on a fixed voxel grid: :func:`occupancy` asks open3d's
``RaycastingScene.compute_occupancy`` whether each cell centre is inside the
mesh (it counts ray crossings, in C++ with Embree; on a closed mesh one ray per grid column
gives the same parity, :mod:`reward.crossings`). We use that rather than
exact mesh booleans (the CAD-Recode/cadrille ``trimesh`` intersection)
because predicted meshes can be open or self-intersecting, where booleans
fail outright (cadrille then has no IoU for the sample) while crossing
counts only go wrong for cells whose ray passes through the defect (a cube
with one side missing still gets IoU 0.65 against the closed cube); because
it needs no mesh repair and takes a few milliseconds (only cells inside the
mesh's bounding box are queried); and because the target's grid is computed
once and reused for every prediction. The price is a resolution error of about
one cell at each surface, large for small parts (13 cells can come out as 14).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.spatial import cKDTree

from renderer.views import make_scene
from reward.crossings import column_parity, is_closed

GRID_EXTENT = 1.05
"""Half-width of the reward's occupancy grid in target-frame units (the target fits in [-1, 1]^3)."""
MAX_COORDINATE = 1e6
"""Vertices farther than this from the frame's origin (in frame units) are treated as broken."""
MIN_FACE_AREA = 1e-12
"""Faces with a smaller area (in frame units squared) are dropped as degenerate."""


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of each face.

    Parameters
    ----------
    vertices : (N, 3) float
    faces : (M, 3) int

    Returns
    -------
    (M,) float64
    """
    return corner_areas(np.asarray(vertices, dtype=np.float64)[np.asarray(faces)])


def corner_areas(corners: np.ndarray) -> np.ndarray:
    """Area ``(M,) float64`` of each triangle of ``corners (M, 3, 3)`` (corner, xyz)."""
    edges = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return 0.5 * np.linalg.norm(edges, axis=1)


def clean_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the usable part of a mesh; never raises.

    Drops faces that index outside ``vertices``, touch a non-finite vertex or
    one beyond :data:`MAX_COORDINATE`, or have (near) zero area; then drops
    unreferenced vertices. Input that is not an ``(N, 3)`` / ``(M, 3)`` array
    gives an empty mesh.

    Parameters
    ----------
    vertices : (N, 3) array-like of float
    faces : (M, 3) array-like of int

    Returns
    -------
    vertices : (K, 3) float64
    faces : (L, 3) int64
        Indices into the returned vertices; ``L == 0`` when nothing usable is left.
    """
    return clean_mesh_with_areas(vertices, faces)[:2]


def clean_mesh_with_areas(vertices, faces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`clean_mesh`, and the ``(L,) float64`` :func:`triangle_areas` of the faces it kept
    (it measures them anyway; :func:`sample_surface` can take them)."""
    empty = np.zeros((0, 3), np.float64), np.zeros((0, 3), np.int64), np.zeros(0)
    try:
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
    except (TypeError, ValueError):  # ragged or non-numeric input: nothing usable
        return empty
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        return empty
    good_vertex = np.all(np.abs(vertices) <= MAX_COORDINATE, axis=1)  # also False for NaN
    in_range = np.all((faces >= 0) & (faces < len(vertices)), axis=1)
    faces = faces[in_range]
    faces = faces[np.all(good_vertex[faces], axis=1)]
    areas = triangle_areas(vertices, faces)
    faces, areas = faces[areas > MIN_FACE_AREA], areas[areas > MIN_FACE_AREA]
    if len(faces) == 0:
        return empty
    used = np.zeros(len(vertices), dtype=bool)
    used[faces] = True
    renumber = np.cumsum(used, dtype=np.int64) - 1  # what np.unique's inverse gives, without a sort
    return vertices[used], renumber[faces], areas


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int = 8192, seed: int = 0, areas: np.ndarray | None = None
) -> np.ndarray:
    """Points drawn uniformly by area from a mesh's surface; the same seed gives the same points.

    A face is picked with probability proportional to its area, then a point
    uniformly inside it (``sqrt`` trick for barycentric coordinates).

    Parameters
    ----------
    vertices : (N, 3) float
    faces : (M, 3) int
        Must have positive total area (see :func:`clean_mesh`).
    n : int
        Number of points.
    seed : int
        Seed of the ``numpy.random.Generator``.
    areas : (M,) float, optional
        :func:`triangle_areas` of the mesh, if already measured (the same points).

    Returns
    -------
    (n, 3) float64
    """
    areas = triangle_areas(vertices, faces) if areas is None else areas
    total = areas.sum()
    if not total > 0:
        raise ValueError("cannot sample the surface of a mesh with no area")
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(areas)
    picks = np.searchsorted(cumulative, rng.random(n) * total, side="right")
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)[np.minimum(picks, len(areas) - 1)]]
    r1 = np.sqrt(rng.random(n))[:, None]
    r2 = rng.random(n)[:, None]
    return (1 - r1) * corners[:, 0] + r1 * (1 - r2) * corners[:, 1] + r1 * r2 * corners[:, 2]


def chamfer(p: np.ndarray, q: np.ndarray, squared: bool = False) -> float:
    """Symmetric chamfer distance between two point sets.

    ``chamfer(p, q) = mean_i min_j |p_i - q_j| + mean_j min_i |q_j - p_i|``:
    the **sum** over both directions of the **mean** nearest-neighbour
    distance. With ``squared=True`` each distance is squared before the mean,
    which is the CAD-Recode/cadrille definition. Nearest neighbours come from
    ``scipy.spatial.cKDTree``. Two samplings of the same surface do not give
    0: for 4096 points on a part that fills the unit sphere the unsquared
    value is about 0.03 (about 0.02 at 8192).

    Parameters
    ----------
    p : (n, 3) float
    q : (m, 3) float
        Both non-empty.
    squared : bool
        Average squared distances instead of distances.

    Returns
    -------
    float
        In the units of the points (their square with ``squared=True``); 0 iff
        the two sets are equal as sets.
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if len(p) == 0 or len(q) == 0:
        raise ValueError("chamfer distance needs two non-empty point sets")
    p_to_q, _ = cKDTree(q).query(p, k=1)
    q_to_p, _ = cKDTree(p).query(q, k=1)
    if squared:
        p_to_q, q_to_p = p_to_q**2, q_to_p**2
    return float(p_to_q.mean() + q_to_p.mean())


def chamfer_reward(distance: float, scale: float) -> float:
    """Map a chamfer distance to [0, 1]: ``exp(-distance / scale)``.

    1 at distance 0, ``1/e`` at ``distance == scale``; non-finite distances give 0.
    """
    if not np.isfinite(distance):
        return 0.0
    return float(np.exp(-max(distance, 0.0) / scale))


def grid_axis(resolution: int, lo: float, hi: float) -> np.ndarray:
    """Cell-centre coordinates ``(resolution,) float64`` of a grid cutting [lo, hi] into equal cells."""
    return lo + (np.arange(resolution) + 0.5) * (hi - lo) / resolution


def occupancy(
    vertices: np.ndarray,
    faces: np.ndarray,
    resolution: int = 64,
    bounds: tuple[float, float] = (-GRID_EXTENT, GRID_EXTENT),
    threads: int = 0,
    scene=None,
    closed: bool | None = None,
) -> np.ndarray:
    """Which cells of the cube ``bounds^3`` have their centre inside the mesh or its surface in them.

    Centres: only cells inside the mesh's bounding box and not already marked as surface are
    queried (the rest cannot be inside, or are occupied anyway), via open3d
    ``RaycastingScene.compute_occupancy``; for a closed mesh (:func:`reward.crossings.is_closed`:
    all 85 meshes of ``bench/reward_throughput.py``) the same parity comes from one ray per grid
    column (:func:`reward.crossings.column_parity`), 3 times faster. Surface: the cells that
    :func:`surface_cells` marks (surface points, 4 per cell area, and the vertices), so a part
    thinner than a cell (a 2 mm plate in a 48-cell grid) is not an empty grid (two empty grids
    would score IoU 1 against each other). Parts of the mesh outside the cube are not counted,
    and cost (almost) nothing: both steps are bounded by the grid, not by the mesh's size.

    Parameters
    ----------
    vertices : (N, 3) float
    faces : (M, 3) int
    resolution : int
        Cells per axis.
    bounds : (float, float)
        Low and high coordinate of the grid cube, on every axis.
    threads : int
        Embree threads (0: all cores).
    scene, closed : open3d RaycastingScene, bool, optional
        The mesh's :func:`renderer.views.make_scene` and :func:`reward.crossings.is_closed`, if known.

    Returns
    -------
    (resolution, resolution, resolution) bool
        Indexed ``[x, y, z]``.
    """
    import open3d as o3d

    if len(faces) == 0:
        return np.zeros((resolution,) * 3, dtype=bool)
    vertices = np.asarray(vertices, dtype=np.float64)
    grid = surface_cells(vertices, faces, resolution, bounds)
    axis = grid_axis(resolution, *bounds)
    lo = np.searchsorted(axis, vertices.min(axis=0), side="left")
    hi = np.searchsorted(axis, vertices.max(axis=0), side="right")
    if np.all(hi > lo):  # some cell centres lie in the bounding box
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        unknown = ~grid[box]  # surface cells are occupied whatever their centre: not asked
        if unknown.any():
            scene = scene if scene is not None else make_scene(vertices, faces)
            centres = [axis[s] for s in box]
            if closed if closed is not None else is_closed(faces):  # same parity on any ray: one per column
                grid[box] |= unknown & column_parity(scene, *centres, unknown.any(axis=2), threads)
            else:
                points = np.stack(np.meshgrid(*centres, indexing="ij"), axis=-1)[unknown]
                inside = scene.compute_occupancy(o3d.core.Tensor(points.astype(np.float32)), nthreads=threads)
                grid[box][unknown] = inside.numpy() > 0.5  # grid[box] is a view: this sets the grid
    return grid


SURFACE_POINTS_PER_CELL = 4
"""Surface points per cell face area that :func:`occupancy` places on each triangle."""
CLIP_AREA = 4.0
"""Triangles larger than this many grid faces (``(hi - lo)^2``) are clipped to the grid before
sampling; smaller ones are sampled whole, as they always were."""
MAX_SURFACE_AREA = 256.0
"""Surface area, in grid faces, sampled at full density inside the grid (a part that fills the
unit sphere has about 2); beyond it the density drops so the points stay this many."""
CHUNK_POINTS = 1 << 18
"""Surface points made and marked at a time (bounds the memory of :func:`surface_cells`)."""
CLIP_CHUNK = 1 << 13
"""Triangles clipped at a time (about 1 kB each while clipped)."""


def surface_points(vertices: np.ndarray, faces: np.ndarray, density: float) -> np.ndarray:
    """``(P, 3)`` deterministic points on a mesh's surface, ``ceil(area x density)`` (at least one)
    per triangle, spread by the R2 low-discrepancy sequence (no random draws: a mesh always
    gives the same points). ``P`` grows with the area: :func:`surface_cells` bounds it."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (M, 3, 3)
    counts = point_counts(corner_areas(corners), density)
    return r2_points(corners, counts, 0, int(counts.sum()))


def point_counts(areas: np.ndarray, density: float) -> np.ndarray:
    """``(M,) int64`` points per triangle: ``ceil(area x density)``, at least one."""
    return np.maximum(1, np.ceil(areas * density)).astype(np.int64)


def r2_points(corners: np.ndarray, counts: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Points ``start`` to ``stop`` ``(stop - start, 3)`` of the R2 sequences on triangles ``corners
    (M, 3, 3)``, ``counts[i]`` on triangle ``i``, in triangle order (any split into ranges gives
    the same points as one call)."""
    ends = np.cumsum(counts)
    begins = ends - counts
    first = int(np.searchsorted(ends, start, side="right"))  # the triangles points start..stop lie on
    last = int(np.searchsorted(ends, stop - 1, side="right")) + 1 if stop > start else first
    taken = np.minimum(ends[first:last], stop) - np.maximum(begins[first:last], start)
    j = np.arange(start, stop) - np.repeat(begins[first:last], taken)  # index within its triangle
    table = _r2_table(int(counts[first:last].max()).bit_length() if last > first else 0)
    u, v = table[0][j][:, None], table[1][j][:, None]
    a = corners[first:last, 0]
    points = np.repeat(corners[first:last, 1] - a, taken, axis=0)  # a + u (b - a) + v (c - a), in place
    points *= u
    points += np.repeat(a, taken, axis=0)
    across = np.repeat(corners[first:last, 2] - a, taken, axis=0)
    across *= v
    points += across
    return points


@functools.lru_cache(maxsize=8)
def _r2_table(bits: int) -> np.ndarray:
    """``(2, 2^bits) float64``: the R2 sequence's barycentric ``(u, v)`` of point ``j`` on a triangle
    (folded into it), for every ``j < 2^bits``; looked up, not recomputed for every point."""
    j = np.arange(1 << max(bits, 12))
    plastic = 1.32471795724474602596  # the plastic number: the R2 sequence steps by 1/p and 1/p^2
    u, v = np.modf(0.5 + j / plastic)[0], np.modf(0.5 + j / plastic**2)[0]  # the exact x % 1.0 (x > 0)
    fold = u + v > 1.0
    table = np.stack([np.where(fold, 1.0 - u, u), np.where(fold, 1.0 - v, v)])
    table.flags.writeable = False
    return table


def clip_triangles(corners: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The parts inside the cube ``[lo, hi]^3`` of triangles ``corners (M, 3, 3)``, as triangles.

    Each triangle is clipped against the six faces of the cube (Sutherland-Hodgman; a convex
    polygon of at most 9 corners) and the polygon cut into a fan.

    Returns
    -------
    (L, 3, 3) float64
        Pieces of positive area (none for a triangle that misses the cube).
    """
    polygon = np.zeros((len(corners), 9, 3))
    polygon[:, :3] = corners
    size = np.full(len(corners), 3)
    for axis in range(3):
        for bound, sign in ((lo, 1.0), (hi, -1.0)):
            polygon, size = _clip_by_plane(polygon, size, axis, bound, sign)
    first = polygon[:, 0]
    fans = [np.stack([first, polygon[:, i], polygon[:, i + 1]], axis=1)[size > i + 1] for i in range(1, 8)]
    pieces = np.concatenate(fans)
    return pieces[corner_areas(pieces) > MIN_FACE_AREA]


def _clip_by_plane(polygon: np.ndarray, size: np.ndarray, axis: int, bound: float, sign: float):
    """One Sutherland-Hodgman step: keep the part of each polygon ``(n, K, 3)`` (its first
    ``size (n,)`` corners) where ``sign * (x[axis] - bound) >= 0``; the new polygons and sizes."""
    n, k = polygon.shape[:2]
    index = np.arange(k)[None, :]
    after = np.where(index + 1 < size[:, None], index + 1, 0)
    following = np.take_along_axis(polygon, after[..., None], axis=1)
    here, there = sign * (polygon[..., axis] - bound), sign * (following[..., axis] - bound)
    crosses = (here >= 0) != (there >= 0)  # then here - there != 0
    t = here / np.where(crosses, here - there, 1.0)  # used only where the edge crosses
    crossing = polygon + t[..., None] * (following - polygon)
    crossing[..., axis] = bound
    valid = index < size[:, None]
    keep = np.stack([valid & (here >= 0), valid & crosses], axis=2).reshape(n, 2 * k)
    candidates = np.stack([polygon, crossing], axis=2).reshape(n, 2 * k, 3)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order[..., None], axis=1), keep.sum(axis=1)


def grid_triangles(vertices: np.ndarray, faces: np.ndarray, bounds, margin: float):
    """The triangles ``(L, 3, 3)`` whose samples can fall in the grid cube ``bounds^3``, and their
    areas ``(L,)``.

    Triangles whose bounding box misses the cube widened by ``margin`` are dropped (none of
    their points is in a cell); those larger than :data:`CLIP_AREA` grid faces are replaced by
    their part inside the widened cube (:func:`clip_triangles`); the rest are kept whole.
    """
    lo, hi = bounds[0] - margin, bounds[1] + margin
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    near = np.all((corners.min(axis=1) <= hi) & (corners.max(axis=1) >= lo), axis=1)
    corners = corners if near.all() else corners[near]
    areas = corner_areas(corners)
    large = areas > CLIP_AREA * (bounds[1] - bounds[0]) ** 2
    if not large.any():
        return corners, areas
    big = corners[large]
    clipped = [clip_triangles(big[i : i + CLIP_CHUNK], lo, hi) for i in range(0, len(big), CLIP_CHUNK)]
    areas = np.concatenate([areas[~large], *map(corner_areas, clipped)])
    return np.concatenate([corners[~large], *clipped]), areas


def surface_cells(vertices: np.ndarray, faces: np.ndarray, resolution: int, bounds) -> np.ndarray:
    """The cells of the grid that the mesh's surface points and vertices fall in.

    The points are those of :func:`surface_points` at :data:`SURFACE_POINTS_PER_CELL` per cell
    area, on the triangles of :func:`grid_triangles` (so a mesh far larger than the grid costs
    no more than one that fills it), made :data:`CHUNK_POINTS` at a time; when the surface in the
    grid exceeds :data:`MAX_SURFACE_AREA` grid faces, the density drops to keep that many points.

    Returns
    -------
    (resolution, resolution, resolution) bool
    """
    grid = np.zeros((resolution,) * 3, dtype=bool)
    if len(faces) == 0:
        return grid
    corners, counts = surface_plan(vertices, faces, resolution, bounds)
    total = int(counts.sum())
    for start in range(0, total, CHUNK_POINTS):
        _mark(grid, r2_points(corners, counts, start, min(start + CHUNK_POINTS, total)), bounds)
    _mark(grid, np.asarray(vertices, dtype=np.float64), bounds)
    return grid


def surface_plan(vertices: np.ndarray, faces: np.ndarray, resolution: int, bounds):
    """The triangles ``(L, 3, 3)`` and point counts ``(L,) int64`` that :func:`surface_cells` samples.

    ``counts.sum()`` is at most ``SURFACE_POINTS_PER_CELL x resolution^2 x MAX_SURFACE_AREA``
    plus one per triangle, whatever the size of the mesh.
    """
    cell = (bounds[1] - bounds[0]) / resolution
    corners, areas = grid_triangles(vertices, faces, bounds, margin=cell)
    density = SURFACE_POINTS_PER_CELL / cell**2
    limit = SURFACE_POINTS_PER_CELL * resolution**2 * MAX_SURFACE_AREA
    if areas.sum() * density > limit:
        density = limit / areas.sum()
    return corners, point_counts(areas, density)


def _mark(grid: np.ndarray, points: np.ndarray, bounds) -> None:
    """Set the cells of ``grid`` (over ``bounds^3``) that ``points (P, 3)`` fall in."""
    index = points - bounds[0]  # floor((points - lo) / cell), in place
    np.floor(np.divide(index, (bounds[1] - bounds[0]) / grid.shape[0], out=index), out=index)
    index = index.astype(np.int64)
    inside = index.view(np.uint64) < grid.shape[0]  # a negative index wraps to a huge one
    index = index[inside[:, 0] & inside[:, 1] & inside[:, 2]]
    grid[index[:, 0], index[:, 1], index[:, 2]] = True


def iou(occ_a: np.ndarray, occ_b: np.ndarray, a_volume: float | None = None) -> float:
    """Intersection over union of two occupancy grids of the same shape; two empty grids give 1.

    ``a_volume``: A's whole volume in cells (:func:`reward.crossings.enclosed_volume` / cell
    volume), when A may reach past the grid. A then counts ``max(its cells, a_volume)`` in the
    union: volume outside the grid lowers the IoU; a part inside it (its surface cells counted
    whole) keeps its IoU.
    """
    occ_a, occ_b = np.asarray(occ_a, dtype=bool), np.asarray(occ_b, dtype=bool)
    if occ_a.shape != occ_b.shape:
        raise ValueError(f"occupancy grids differ in shape: {occ_a.shape} and {occ_b.shape}")
    union = np.count_nonzero(occ_a | occ_b)
    if a_volume is not None and np.isfinite(a_volume):
        union += max(0.0, float(a_volume) - np.count_nonzero(occ_a))
    if union == 0:
        return 1.0
    return float(np.count_nonzero(occ_a & occ_b) / union)
