"""The CAD-Recode / cadrille evaluation protocol, so our numbers compare with published ones.

What cadrille's ``evaluate.py`` does, and what we do:

- **Normalisation.** cadrille moves the predicted mesh's bounding-box centre
  to the origin, divides by its largest extent and translates by +0.5, so the
  mesh sits centred in the unit cube [0, 1]^3 with its longest side exactly
  1; the ground-truth meshes are stored in that normalisation. We apply the
  same map to both meshes (:func:`normalise_unit_cube`). Each mesh is
  normalised on its own, so unlike the reward this protocol forgives errors
  of overall size and position.
- **Chamfer distance.** 8192 points sampled on each surface; CD = mean
  squared nearest-neighbour distance pred -> target **plus** the same
  target -> pred (:func:`reward.geometry.chamfer` with ``squared=True``).
  Reported as the **median** over valid samples, multiplied by 10^3. Each
  mesh is sampled **independently**, as in cadrille: the prediction and the
  target get their own random streams (derived from one seed, so reruns agree
  exactly). Sampling both with the same stream made the figure depend on
  triangle order: an exact copy scored 0 with the target's triangle order and
  about 0.2e-3 with any other. Independent samples of one surface of area
  ``A`` are not 0 apart but about ``2 A / (pi n)`` (each point's nearest
  other sample: an exponential squared distance of mean ``A / (pi n)``), the
  same for every copy: 0.47e-3 for the unit cube, 0.16e-3 for a unit plate.
  Differences below that floor are sampling noise, in cadrille's figures too.
- **IoU.** Mean over valid predictions. cadrille intersects the meshes
  exactly with trimesh booleans (and drops a sample when that fails); we
  estimate the same volumes from inside/outside tests only
  (:func:`volume_iou`: ray-crossing parity, open3d ``compute_occupancy``) at
  one uniform point in each cell of a 64^3 grid over the bounding box of
  both meshes. No point is counted for being near a surface (the reward's
  :func:`reward.geometry.occupancy` marks surface cells, which is right for a
  training signal but turns a thin plate of true IoU 1/3 into 0.5), so the
  estimate is unbiased; its error comes only from the cells a surface
  crosses and stays below 0.02 for the parts and plates we measured
  (``tests/reward/test_metrics.py``). A sample whose meshes enclose no
  volume at all has no IoU (None), as cadrille drops it.
- **Invalid ratio (IR).** Fraction of samples whose program produced no
  usable mesh. cadrille takes the best of several programs per part; with one
  program per part, as here, the two coincide.
"""

from __future__ import annotations

import math

import numpy as np

from renderer.views import make_scene
from reward.geometry import chamfer, clean_mesh, sample_surface

N_POINTS = 8192
"""Surface samples per mesh in the protocol."""
IOU_CELLS = 64
"""Cells per axis of the grid over both meshes' bounding box; one inside/outside test point in each
(64^3 = 262,144 points, about 0.1 s per mesh on one core)."""
PROTOCOL = {
    "normalisation": "unit cube",
    "n_points": N_POINTS,
    "sampling": "independent per mesh",
    "cd": "squared, both ways, median x1e3",
    "iou": f"inside/outside tests, {IOU_CELLS}^3 stratified points",
    "seed": 0,
}
"""The protocol's settings as :func:`protocol_metrics` applies them by default (recorded by rl.eval,
so evaluations made with different protocols are never paired)."""


def normalise_unit_cube(vertices: np.ndarray) -> np.ndarray:
    """Centre the bounding box at (0.5, 0.5, 0.5) and scale its largest extent to 1.

    Parameters
    ----------
    vertices : (N, 3) float

    Returns
    -------
    (N, 3) float64
        Inside [0, 1]^3, touching two opposite faces along the longest axis.
        A mesh with no extent (below 1e-7, as in cadrille) is only moved.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    extent = float((hi - lo).max())
    scale = 1.0 / extent if extent > 1e-7 else 1.0
    return (vertices - (lo + hi) / 2) * scale + 0.5


def inside(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, threads: int = 0) -> np.ndarray:
    """Whether each of ``points (P, 3)`` is inside the mesh: ``(P,) bool``, by ray-crossing parity.

    open3d ``RaycastingScene.compute_occupancy`` (Embree); no point counts as inside for being
    near the surface.
    """
    import open3d as o3d

    scene = make_scene(vertices, faces)
    query = o3d.core.Tensor(np.asarray(points, dtype=np.float32))
    return scene.compute_occupancy(query, nthreads=threads).numpy() > 0.5


def volume_iou(
    mesh_a: tuple[np.ndarray, np.ndarray],
    mesh_b: tuple[np.ndarray, np.ndarray],
    cells: int = IOU_CELLS,
    seed: int = 0,
    threads: int = 0,
) -> float | None:
    """Volumetric IoU of two meshes from inside/outside tests at stratified uniform points.

    The bounding box of both meshes is cut into ``cells^3`` equal cells and one point is drawn
    uniformly in each (jittered sampling: every point is uniform in the box, and only cells that a
    surface crosses add variance). IoU = points inside both / points inside either.

    Parameters
    ----------
    mesh_a, mesh_b : ((N, 3) float, (M, 3) int)
        Vertices and faces, in one frame; closed meshes (an open one is read by ray parity).
    cells : int
        Grid cells per axis (``cells^3`` test points).
    seed : int
        Seed of the points' positions in their cells.
    threads : int
        Embree threads (0: all cores).

    Returns
    -------
    float or None
        In [0, 1]; None when neither mesh encloses any test point (no volume to compare).
    """
    corners = np.concatenate([np.asarray(mesh_a[0], np.float64), np.asarray(mesh_b[0], np.float64)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    if not np.all(hi > lo):
        return None
    rng = np.random.default_rng(seed)
    index = np.stack(np.meshgrid(*(np.arange(cells),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    points = lo + (index + rng.random(index.shape)) * (hi - lo) / cells
    in_a = inside(*mesh_a, points, threads)
    in_b = inside(*mesh_b, points, threads)
    union = np.count_nonzero(in_a | in_b)
    return float(np.count_nonzero(in_a & in_b) / union) if union else None


def protocol_seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds of the prediction's samples, the target's samples and the IoU points."""
    pred, target, points = (int(s) for s in np.random.SeedSequence(seed).generate_state(3))
    return pred, target, points


def protocol_metrics(
    pred,
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    n_points: int = N_POINTS,
    iou_cells: int = IOU_CELLS,
    seed: int = 0,
    threads: int = 0,
) -> dict:
    """One sample's protocol record; never raises on a bad prediction.

    Parameters
    ----------
    pred : MeshResult-like
        Has ``status``, ``vertices (N, 3)`` and ``faces (M, 3)``.
    target_vertices : (K, 3) float
    target_faces : (L, 3) int
    n_points, iou_cells, seed, threads :
        Samples per mesh, IoU grid cells per axis (:func:`volume_iou`), the seed that
        :func:`protocol_seeds` splits into independent streams, Embree threads.

    Returns
    -------
    dict
        ``valid`` (bool), ``status`` (str), ``cd`` (squared chamfer, not yet
        ×10³) and ``iou``; ``cd`` and ``iou`` are None when invalid (``iou`` also
        when neither mesh encloses volume).
    """
    status = str(getattr(pred, "status", "crashed"))
    record = {"valid": False, "status": status, "cd": None, "iou": None}
    if status != "ok":
        return record
    pred_mesh = clean_mesh(getattr(pred, "vertices", None), getattr(pred, "faces", None))
    if len(pred_mesh[1]) == 0:
        return {**record, "status": "degenerate"}
    target_mesh = clean_mesh(target_vertices, target_faces)
    if len(target_mesh[1]) == 0:
        raise ValueError("target mesh has no usable face (empty, NaN or zero-area)")
    pred_mesh, target_mesh = ((normalise_unit_cube(v), f) for v, f in (pred_mesh, target_mesh))
    pred_seed, target_seed, iou_seed = protocol_seeds(seed)
    pred_points = sample_surface(*pred_mesh, n_points, pred_seed)
    target_points = sample_surface(*target_mesh, n_points, target_seed)
    return {
        **record,
        "valid": True,
        "cd": chamfer(pred_points, target_points, squared=True),
        "iou": volume_iou(pred_mesh, target_mesh, iou_cells, iou_seed, threads),
    }


def _as_dict(record) -> dict:
    return record if isinstance(record, dict) else record.to_dict()


def _finite_values(records: list[dict], key: str) -> list[float]:
    values = (r.get(key) for r in records if r.get("valid"))
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarise(records) -> dict:
    """Protocol figures over many samples.

    Parameters
    ----------
    records : iterable of dict or RewardBreakdown
        One per sample, each with a truthy/falsy ``valid`` and, when valid,
        ``cd`` and/or ``iou`` (records from :func:`protocol_metrics`; a
        ``RewardBreakdown`` has no ``cd`` and its ``iou`` is in the target frame).

    Returns
    -------
    dict
        ``n``, ``n_valid``, ``ir`` (invalid ratio in [0, 1]),
        ``cd_median_x1e3`` and ``cd_mean_x1e3`` (over valid samples with a CD),
        ``iou_mean`` (over valid samples with an IoU). A figure with no sample
        to average is None, never NaN.
    """
    records = [_as_dict(r) for r in records]
    n_valid = sum(1 for r in records if r.get("valid"))
    cds, ious = _finite_values(records, "cd"), _finite_values(records, "iou")
    return {
        "n": len(records),
        "n_valid": n_valid,
        "ir": (len(records) - n_valid) / len(records) if records else None,
        "cd_median_x1e3": float(np.median(cds)) * 1e3 if cds else None,
        "cd_mean_x1e3": float(np.mean(cds)) * 1e3 if cds else None,
        "iou_mean": float(np.mean(ious)) if ious else None,
    }
