"""The composite reward: one predicted mesh against one prepared target -> a typed breakdown.

Everything is measured in the **target's** frame (:class:`renderer.views.Frame`:
bounding-box centre, half-diagonal = 1), so a prediction of the wrong size or
in the wrong place loses reward; with ``RewardWeights.scale_free`` the prediction is put in
its own frame instead, so only its shape and proportions count. Per target, :func:`prepare_target` computes
once what every prediction is compared with (views, surface samples,
occupancy grid); :func:`score` then costs one render, one sampling, two
nearest-neighbour passes and one occupancy query per prediction.

Terms, each in [0, 1], higher is better:

- ``ssim``: SSIM of the four views (:func:`reward.ssim.masked_ssim`) on inverted
  images (background 0), averaged over the union of both silhouettes, clipped
  at 0. Inverted, because SSIM's luminance term hardly separates the white
  background from a bright face (0.98) but does separate black from it
  (0.004); masked, because a blank view otherwise shares most of its pixels
  with the target's. Together they give a blank or sliver render about 0.
- ``chamfer``: ``exp(-d / chamfer_scale)`` with ``d`` the symmetric
  point-to-surface chamfer distance (:func:`reward.distance.surface_chamfer`):
  samples of each surface measured against the other mesh's triangles. It is
  0 for the same surface however OpenSCAD triangulated it (sample-to-sample
  chamfer is not: two runs of one flange program came out 0.01 apart, a term
  of 0.90), which is why 384 samples per mesh, spread evenly over the surface
  (:func:`reward.distance.stratified_samples`), suffice here; the sample-to-sample
  protocol with 8192 points is kept for evaluation (:mod:`reward.metrics`).
- ``iou``: volumetric IoU on the occupancy grid over the frame's
  [-1.05, 1.05]^3; predicted volume outside the grid counts in the union
  (:func:`reward.geometry.iou` with the prediction's
  :func:`reward.crossings.enclosed_volume`), so a program far too large, which
  passes through the target wherever it is (a 1180 mm channel for a 57 mm pipe
  fitting: PPO found it in a main job), gets about none. Dropped from the
  mean when the target is too thin to occupy any cell.
- ``valid``: 1 for a program that produced usable geometry.
- ``size``: how near the program's own bounding box is to the target's
  (:func:`renderer.fit.size_agreement`), before any ``fit_size``; weight 0 unless set.

``total`` is their weighted mean, in [0, 1], for a usable mesh; a failed
program (status other than ok) or a mesh with no usable face gets
``invalid_penalty`` and zero terms. A degenerate but non-empty mesh (a single
sliver triangle) is scored normally and gets almost nothing: it covers no
pixels of the target, is far from most target samples and has no volume.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from renderer.fit import extents_of, fit_factors, fit_vertices, size_agreement
from renderer.views import CANONICAL_CAMERAS, Camera, Frame, make_scene, render, render_scene
from reward.crossings import enclosed_volume, is_closed
from reward.distance import stratified_samples, surface_chamfer
from reward.geometry import (
    GRID_EXTENT,
    chamfer_reward,
    clean_mesh,
    clean_mesh_with_areas,
    iou,
    occupancy,
)
from reward.ssim import masked_ssim
from reward.target import PreparedTarget


@dataclass(frozen=True)
class RewardWeights:
    """How the terms are weighed and measured; ``total`` is the weighted mean of the terms."""

    ssim: float = 1.0
    """Weight of the view-SSIM term."""
    chamfer: float = 1.0
    """Weight of the chamfer term ``exp(-d / chamfer_scale)``."""
    iou: float = 1.0
    """Weight of the volumetric IoU term."""
    valid: float = 0.1
    """Weight of the validity term (1 for any usable mesh): a small bonus for compiling to a solid."""
    invalid_penalty: float = -1.0
    """``total`` of a failed program or an empty mesh (cadrille's RL uses -10 against 10 * IoU)."""
    chamfer_scale: float = 0.1
    """Chamfer distance, in target half-diagonals, at which the chamfer term falls to 1/e."""
    n_points: int = 384
    """Surface samples per mesh for the point-to-surface chamfer term, spread evenly by
    :func:`reward.distance.stratified_samples` (384 of them come closer to the exact term than
    2048 independent ones did: bench/results/chamfer_samples_384.json)."""
    resolution: int = 48
    """Occupancy cells per axis over the target frame's [-1.05, 1.05]^3 (cell 0.044)."""
    view_size: int = 96
    """Pixels per side of each view the SSIM term compares: at 96 the total ranks each target's
    predictions as at 128 (Spearman 0.997) with 0.56 of the pixels (bench/reward_view_size.py)."""
    seed: int = 0
    """Seed of the samples' offset along the surface (point-to-surface distances make identical
    meshes 0 whatever the samples)."""
    scale_free: bool = False
    """Grade the prediction in its own frame (its bounding box centred, half-diagonal 1), as the
    target is: shape and proportions count, size and position do not. For a policy that is not
    shown the part's size (``policy.size_in_prompt`` off), whose input does not reveal them."""
    fit_size: bool = False
    """Grade the program fitted to the part's size (each axis scaled about the origin so its
    bounding box is the target's: renderer.fit, rl.eval's fitted program). For a policy shown the
    size (``policy.size_in_prompt``): the fit supplies the size, the reward grades the rest."""

    size: float = 0.0
    """Weight of the ``size`` term, the program's own bounding box against the target's (before
    ``fit_size``), meant to keep a ``fit_size`` PPO's numbers true to the size shown (at weight 1
    they drifted all the same: README "Fitting to a known size")."""

    def __post_init__(self):
        weights = (self.ssim, self.chamfer, self.iou, self.valid, self.size)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"term weights must be >= 0 with a positive sum, got {weights}")
        if not -1e6 < self.invalid_penalty <= 0:
            raise ValueError(
                f"invalid_penalty must be <= 0 so a failed program never beats a valid one, "
                f"got {self.invalid_penalty}"
            )
        if not self.chamfer_scale > 0:
            raise ValueError(f"chamfer_scale must be > 0, got {self.chamfer_scale}")
        if self.n_points < 1 or self.resolution < 2 or self.view_size < 16:  # SSIM's window: 11 px
            raise ValueError(f"n_points must be >= 1, resolution >= 2 and view_size >= 16, got "
                             f"{self.n_points}, {self.resolution}, {self.view_size}")


@dataclass(frozen=True)
class RewardBreakdown:
    """One prediction's reward and its parts; never NaN."""

    total: float
    """Weighted mean of the terms in [0, 1], or ``invalid_penalty``."""
    ssim: float
    """View-SSIM term in [0, 1]."""
    chamfer: float
    """Chamfer term ``exp(-d / chamfer_scale)`` in [0, 1] (0 is worst)."""
    iou: float
    """Volumetric IoU in [0, 1]."""
    valid: float
    """1.0 for a usable mesh, else 0.0."""
    status: str
    """The renderer's status; ``empty`` / ``degenerate`` when an ok run left no usable face."""
    seconds: float
    """OpenSCAD wall time of the prediction, copied from it."""
    chamfer_distance: float | None = None
    """The raw chamfer distance ``d`` in target half-diagonals; None when invalid."""
    score_seconds: float = 0.0
    """Time spent in :func:`score`."""
    detail: str = ""
    """Why a program failed: the last lines of OpenSCAD's messages (empty when valid)."""
    infrastructure: bool = False
    """The render pool failed, not the program (a worker died or hung, or scoring raised): the
    penalty is no verdict on the program, and PPO leaves it out of the update."""
    size: float = 0.0
    """Size term in [0, 1]: the program's own bounding box against the target's."""

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass
class _Mesh:
    vertices: np.ndarray
    faces: np.ndarray
    areas: np.ndarray | None = None
    """``(M,)`` face areas, when :func:`reward.geometry.clean_mesh_with_areas` measured them."""


def prepare_target(
    vertices: np.ndarray,
    faces: np.ndarray,
    weights: RewardWeights | None = None,
    cameras: tuple[Camera, ...] = CANONICAL_CAMERAS,
    size: int | None = None,
    threads: int = 0,
) -> PreparedTarget:
    """Views, surface samples and occupancy of a target mesh, in its own frame.

    Parameters
    ----------
    vertices : (N, 3) float
    faces : (M, 3) int
    weights : RewardWeights
        Supplies ``n_points``, ``resolution``, ``seed`` and ``view_size``.
    cameras, size :
        Views to render (see :func:`renderer.views.render`); ``size`` None: ``weights.view_size``.
    threads : int
        Embree threads (0: all cores).

    Raises
    ------
    ValueError
        If the target has no usable face: a broken dataset entry, not a policy error.
    """
    weights = weights or RewardWeights()
    frame = Frame.of(np.asarray(vertices, dtype=np.float64))
    mesh = _Mesh(*clean_mesh(frame.apply(vertices), faces))
    if len(mesh.faces) == 0:
        raise ValueError("target mesh has no usable face (empty, NaN or zero-area)")
    identity = Frame((0.0, 0.0, 0.0), 1.0)  # the mesh is already in the frame
    views = render(mesh, identity, tuple(cameras), weights.view_size if size is None else size, threads)
    return PreparedTarget(
        frame=frame,
        cameras=tuple(cameras),
        size=views.images.shape[1],
        images=views.images,
        masks=views.masks,
        points=stratified_samples(mesh.vertices, mesh.faces, weights.n_points, weights.seed),
        occupancy=occupancy(mesh.vertices, mesh.faces, weights.resolution, threads=threads),
        seed=weights.seed,
        vertices=mesh.vertices,
        faces=mesh.faces,
    )


def score(
    pred, target: PreparedTarget, weights: RewardWeights | None = None, threads: int = 0
) -> RewardBreakdown:
    """Score one prediction against a prepared target; never raises on a bad prediction.

    Parameters
    ----------
    pred : MeshResult-like
        Has ``status`` (``"ok"`` or a failure), ``vertices (N, 3)``, ``faces (M, 3)``, ``seconds``.
    target : PreparedTarget
    weights : RewardWeights
        Term weights, penalty and chamfer scale (sampling settings come from ``target``).
    threads : int
        Embree threads (0: all cores; Ray workers pass 1).

    Returns
    -------
    RewardBreakdown
    """
    return score_with_views(pred, target, weights, threads)[0]


def score_with_views(
    pred, target: PreparedTarget, weights: RewardWeights | None = None, threads: int = 0
) -> tuple[RewardBreakdown, np.ndarray | None]:
    """:func:`score`, and the prediction's ``(V, H, W) float32`` views in the target's frame
    (those SSIM compared, so a caller that also saves them does not render twice); the views
    are None when the prediction is not a usable mesh."""
    start = time.perf_counter()
    weights = weights or RewardWeights()
    status = str(getattr(pred, "status", "crashed"))
    seconds = _finite(getattr(pred, "seconds", 0.0))
    if status != "ok":
        infrastructure = bool(getattr(pred, "infrastructure", False))  # renderer.pool.InfrastructureFault
        detail = _tail(getattr(pred, "stderr", ""))
        return _invalid(weights, status, seconds, start, detail, infrastructure), None
    raw_faces, vertices = getattr(pred, "faces", None), getattr(pred, "vertices", None)
    extents, target_size = extents_of(vertices), target.extents()
    own_size = size_agreement(extents, target_size)
    vertices = _in_frame(_fitted(vertices, extents, target_size, weights), target.frame)
    mesh = _Mesh(*clean_mesh_with_areas(vertices, raw_faces))
    if len(mesh.faces) == 0:
        status = "empty" if raw_faces is None or np.size(raw_faces) == 0 else "degenerate"
        return _invalid(weights, status, seconds, start), None
    if weights.scale_free:
        mesh = _in_own_frame(mesh)
    return _score_mesh(mesh, target, weights, status, seconds, start, threads, own_size)


def _fitted(vertices, extents, target_size, weights: RewardWeights):
    """The prediction's ``vertices`` (bounding box ``extents``), fitted to the target's bounding box
    ``target_size`` when ``weights.fit_size`` (unchanged when no fit is possible)."""
    factors = fit_factors(extents, target_size) if weights.fit_size else None
    return vertices if factors is None else fit_vertices(vertices, factors)


def _in_own_frame(mesh: _Mesh) -> _Mesh:
    """``mesh`` moved and scaled into its own :class:`renderer.views.Frame` (``scale_free``)."""
    frame = Frame.of(mesh.vertices)
    areas = None if mesh.areas is None else mesh.areas / frame.scale**2
    return _Mesh(frame.apply(mesh.vertices), mesh.faces, areas)


def _score_mesh(
    mesh, target, weights, status, seconds, start, threads, own_size
) -> tuple[RewardBreakdown, np.ndarray]:
    """Score a usable mesh (already in the target frame); the breakdown and the rendered views."""
    scene = make_scene(mesh.vertices, mesh.faces)  # one scene: views, distances, occupancy
    views = render_scene(scene, target.cameras, target.size, threads, mesh.vertices)
    ssim_term = masked_ssim(
        1.0 - views.images, 1.0 - target.images, views.masks | target.masks, target.ssim_moments()
    )
    points = stratified_samples(mesh.vertices, mesh.faces, len(target.points), target.seed, mesh.areas)
    distance = surface_chamfer(points, scene, target.points, target.scene(), threads)
    resolution = target.occupancy.shape[0]
    closed = is_closed(mesh.faces)
    grid = occupancy(mesh.vertices, mesh.faces, resolution, threads=threads, scene=scene, closed=closed)
    volume = enclosed_volume(mesh.vertices, mesh.faces, closed)  # the part outside the grid counts too
    cell = 2 * GRID_EXTENT / resolution
    iou_term = iou(grid, target.occupancy, None if volume is None else volume / cell**3)
    terms = {
        "ssim": float(np.clip(_finite(ssim_term), 0.0, 1.0)),
        "chamfer": chamfer_reward(distance, weights.chamfer_scale),
        "iou": float(iou_term),
        "valid": 1.0,
        "size": own_size,
    }
    mix = {name: getattr(weights, name) for name in terms}
    if not target.occupancy.any():  # target thinner than a cell: IoU says nothing
        mix["iou"] = 0.0
    total = sum(mix[k] * terms[k] for k in terms) / sum(mix.values())
    breakdown = RewardBreakdown(total=float(np.clip(total, 0.0, 1.0)), **terms, status=status,
                                seconds=seconds, chamfer_distance=_finite(distance, default=None),
                                score_seconds=time.perf_counter() - start)
    return breakdown, views.images


def _tail(text, lines: int = 6) -> str:
    """The last ``lines`` non-empty lines of ``text`` (OpenSCAD's statistics dropped)."""
    if not isinstance(text, str):
        return ""
    keep = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("Geometr", "CGAL", "Total"))]
    return "\n".join(keep[-lines:])


def _invalid(weights: RewardWeights, status: str, seconds: float, start: float, detail: str = "",
             infrastructure: bool = False) -> RewardBreakdown:
    return RewardBreakdown(float(weights.invalid_penalty), 0.0, 0.0, 0.0, 0.0, status, seconds,
                           score_seconds=time.perf_counter() - start, detail=detail,
                           infrastructure=infrastructure)


def _in_frame(vertices, frame: Frame) -> np.ndarray:
    """``vertices`` mapped into ``frame``; malformed input gives no vertices (never raises)."""
    try:
        vertices = np.asarray(vertices, dtype=np.float64)
    except (TypeError, ValueError):  # ragged or non-numeric: treated as no geometry
        return np.zeros((0, 3))
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        return np.zeros((0, 3))
    with np.errstate(over="ignore", invalid="ignore"):  # huge values become inf, then dropped
        return frame.apply(vertices)


def _finite(value, default=0.0):
    """``float(value)`` when it is a finite number, else ``default``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if np.isfinite(value) else default


class Scorer:
    """Picklable reward callable: ``prepare`` each target once, then ``scorer(pred, prepared)``.

    A small class rather than a closure so Ray actors can carry it; it keeps no state between
    calls. :meth:`score_with_views` also hands back the views it rendered (the render pool saves
    them), and :meth:`target_views` the target's.

    Parameters
    ----------
    weights : RewardWeights
    size : int, optional
        View size in pixels (None: ``weights.view_size``).
    cameras : tuple of Camera
    threads : int
        Embree threads per call (0: all cores; a worker that owns one CPU passes 1).
    """

    def __init__(
        self,
        weights: RewardWeights | None = None,
        size: int | None = None,
        cameras: tuple[Camera, ...] = CANONICAL_CAMERAS,
        threads: int = 0,
    ):
        self.weights = weights or RewardWeights()
        self.size = self.weights.view_size if size is None else size
        self.cameras = tuple(cameras)
        self.threads = threads

    def prepare(self, vertices: np.ndarray, faces: np.ndarray) -> PreparedTarget:
        """:func:`prepare_target` with this scorer's settings."""
        return prepare_target(vertices, faces, self.weights, self.cameras, self.size, self.threads)

    def __call__(self, pred, prepared: PreparedTarget) -> RewardBreakdown:
        """:func:`score` of ``pred`` against ``prepared`` with this scorer's weights."""
        return score(pred, prepared, self.weights, self.threads)

    def score_with_views(self, pred, prepared: PreparedTarget) -> tuple[RewardBreakdown, np.ndarray]:
        """``(breakdown, views)``: :meth:`__call__`'s breakdown and the prediction's ``(V, H, W)``
        views in the target's frame, from the render SSIM used (blank when invalid): what
        :meth:`pred_views` would render, without rendering twice."""
        breakdown, views = score_with_views(pred, prepared, self.weights, self.threads)
        return breakdown, _blank(prepared) if views is None else views

    def target_views(self, prepared: PreparedTarget) -> np.ndarray:
        """The target's ``(V, H, W)`` views, as the reward sees them."""
        return prepared.images

    def pred_views(self, pred, prepared: PreparedTarget) -> np.ndarray:
        """The prediction's ``(V, H, W)`` views in the target's frame (blank when invalid),
        rendered afresh; :meth:`score_with_views` returns the same with the breakdown."""
        ok = str(getattr(pred, "status", "")) == "ok"
        vertices = _in_frame(_fitted(pred.vertices, extents_of(pred.vertices), prepared.extents(),
                                     self.weights), prepared.frame) if ok else None
        mesh = _Mesh(*clean_mesh(vertices, pred.faces)) if ok else None
        if mesh is None or len(mesh.faces) == 0:
            return _blank(prepared)
        mesh = _in_own_frame(mesh) if self.weights.scale_free else mesh
        identity = Frame((0.0, 0.0, 0.0), 1.0)
        return render(mesh, identity, prepared.cameras, prepared.size, self.threads).images


def _blank(prepared: PreparedTarget) -> np.ndarray:
    """``(V, H, W) float32`` white views: what an invalid prediction shows."""
    return np.ones((len(prepared.cameras), prepared.size, prepared.size), np.float32)
