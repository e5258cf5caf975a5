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
  Reported as the **median** over valid samples, multiplied by 10^3.
  Our sampling is seeded (cadrille's is not), so reruns agree exactly.
- **IoU.** Mean over valid predictions. cadrille intersects the meshes
  exactly with trimesh booleans (and drops a sample when that fails); we
  compare occupancy on a 64^3 grid over the padded unit cube (see
  :mod:`reward.geometry` for why), which agrees to about one cell per surface.
- **Invalid ratio (IR).** Fraction of samples whose program produced no
  usable mesh. cadrille takes the best of several programs per part; with one
  program per part, as here, the two coincide.
"""

from __future__ import annotations

import math

import numpy as np

from reward.geometry import chamfer, clean_mesh, iou, occupancy, sample_surface

N_POINTS = 8192
"""Surface samples per mesh in the protocol."""
GRID_BOUNDS = (-0.025, 1.025)
"""Occupancy grid over the unit cube, padded by 2.5% of its side on each face."""


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


def protocol_metrics(
    pred,
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    n_points: int = N_POINTS,
    resolution: int = 64,
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
    n_points, resolution, seed, threads :
        Samples per mesh, occupancy cells per axis, sampling seed, Embree threads.

    Returns
    -------
    dict
        ``valid`` (bool), ``status`` (str), ``cd`` (squared chamfer, not yet
        ×10³) and ``iou``; ``cd`` and ``iou`` are None when invalid.
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
    meshes = [(normalise_unit_cube(v), f) for v, f in (pred_mesh, target_mesh)]
    points = [sample_surface(v, f, n_points, seed) for v, f in meshes]
    grids = [occupancy(v, f, resolution, GRID_BOUNDS, threads) for v, f in meshes]
    return {
        **record,
        "valid": True,
        "cd": chamfer(points[0], points[1], squared=True),
        "iou": iou(grids[0], grids[1]),
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
