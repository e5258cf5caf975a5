"""How well a program's render agrees with what inference holds: the input picture, or a mesh.

This is the objective of inference-time choices (``rl.predict`` and ``rl.eval`` picking among
k programs, and :mod:`rl.refine` tuning a program's numbers); it never sees a hidden target.
:class:`AgreementScorer` is a picklable :class:`renderer.pool.RenderPool` scorer. Its target is
made with ``pool.add_target(id, pictures, mesh)``: the pool hands those two objects to
:meth:`AgreementScorer.prepare` (where a reward scorer takes vertices and faces).

- **Pictures** (``mesh=None``): each picture ``(H, W)`` is a view of the part in the part's own
  frame, as corpus images are (:func:`corpus.dataset.target_views`). The program's mesh is
  rendered the same way, in its own frame, with the pictures' cameras: shape and proportions
  are compared; size and position cannot be seen in a picture.
- **A mesh** ``(vertices, faces)``: its four canonical views in its own frame take the pictures'
  place (shape), and the program is also measured in the mesh's frame (size and position): the
  four views there, and the reward's chamfer and IoU terms (:func:`reward.score.score_with_views`).

Terms, each in [0, 1]: ``ssim`` (masked SSIM on inverted views, as the reward's) and
``silhouette`` (IoU of the silhouettes: SSIM alone can prefer a wrong outline with similar
shading), means over the own-frame views; with a mesh also ``frame_ssim``, ``frame_silhouette``
(the same in the mesh's frame), ``chamfer`` and ``iou``. ``total`` is their mean; a program that
fails or leaves no usable face gets :data:`INVALID` (below any valid program). On 6 test targets
(PPO greedy programs, Powell, 150 renders) adding the own-frame views to the mesh's frame terms
raised the refined programs' protocol IoU from 0.375 to 0.450 (start 0.341) and kept most of the
target-frame IoU gain (0.446 vs 0.432, start 0.248).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from renderer.views import BACKGROUND, CANONICAL_CAMERAS, Camera, Frame, render
from reward.geometry import clean_mesh
from reward.score import PreparedTarget, RewardWeights, prepare_target, score_with_views
from reward.ssim import masked_ssim

INVALID = -1.0
"""``total`` of a program that does not give a usable mesh."""
PICTURE_BACKGROUND = 0.98
"""A picture's pixel darker than this is part of the silhouette (renders shade at most 0.9; the
margin absorbs JPEG noise and resampling)."""


@dataclass(frozen=True)
class Agreement:
    """One program's agreement with the inputs; never NaN."""

    total: float
    """Mean of the terms in [0, 1], or :data:`INVALID`."""
    ssim: float
    """Masked SSIM of the own-frame views, mean over views."""
    silhouette: float
    """IoU of the own-frame silhouettes, mean over views."""
    valid: bool
    """The program gave a usable mesh."""
    status: str
    """The renderer's status (``empty`` / ``degenerate`` when an ok run left no usable face)."""
    seconds: float
    """OpenSCAD wall time."""
    detail: str = ""
    """Why a program failed: the last line of OpenSCAD's messages."""
    infrastructure: bool = False
    """The render pool failed, not the program (a worker died or scoring raised)."""
    frame_ssim: float | None = None
    """With a mesh: masked SSIM of the four views in the mesh's frame; else None."""
    frame_silhouette: float | None = None
    """With a mesh: silhouette IoU of the four views in the mesh's frame; else None."""
    chamfer: float | None = None
    """With a mesh: the reward's chamfer term ``exp(-d / 0.1)`` in the mesh's frame; else None."""
    iou: float | None = None
    """With a mesh: volumetric IoU on the reward's 48^3 grid in the mesh's frame; else None."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AgreementTarget:
    """What a program is compared with (plain arrays: it pickles to Ray workers)."""

    pictures: np.ndarray
    """``(P, H, W) float32`` pictures in [0, 1] in the part's own frame (a mesh's own views)."""
    cameras: tuple[Camera, ...]
    """The camera of each picture."""
    mesh: PreparedTarget | None
    """The prepared mesh (views, samples, occupancy in its frame), or None."""


def silhouette_iou(masks_a: np.ndarray, masks_b: np.ndarray) -> float:
    """Mean over views of the IoU of two ``(V, H, W) bool`` silhouettes (an empty union counts 0)."""
    inter = np.logical_and(masks_a, masks_b).sum(axis=(1, 2))
    union = np.logical_or(masks_a, masks_b).sum(axis=(1, 2))
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 0.0)))


def own_frame_views(vertices, faces, cameras: tuple[Camera, ...], size: int, threads: int = 1):
    """``(V, H, W)`` views of a mesh in its own frame, rendered as corpus images are; None when
    no face is usable."""
    try:
        vertices = np.asarray(vertices, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0 or not np.isfinite(vertices).all():
        return None
    clean_vertices, clean_faces = clean_mesh(Frame.of(vertices).apply(vertices), faces)
    if len(clean_faces) == 0:
        return None
    identity = Frame((0.0, 0.0, 0.0), 1.0)  # the mesh is already in its frame
    return render(_Mesh(clean_vertices, clean_faces), identity, cameras, size, threads).images


@dataclass
class _Mesh:
    vertices: np.ndarray
    faces: np.ndarray


class AgreementScorer:
    """RenderPool scorer: an OpenSCAD result -> :class:`Agreement` with the prepared inputs.

    Parameters
    ----------
    size : int
        View size in pixels (pictures are given at this size).
    threads : int
        Embree threads per call (a pool worker owns one CPU: 1).
    """

    def __init__(self, size: int = 128, threads: int = 1):
        self.size = size
        self.threads = threads

    def prepare(self, pictures, mesh=None) -> AgreementTarget:
        """The target of ``pictures`` (``(P, H, W)`` or ``(H, W)``, iso first: see
        :func:`picture_cameras`) when ``mesh`` is None, else of ``mesh = (vertices, faces)``."""
        if mesh is not None:  # the mesh's frame is its own: its views there are its pictures
            prepared = prepare_target(*mesh, RewardWeights(), CANONICAL_CAMERAS, self.size, self.threads)
            return AgreementTarget(prepared.images, CANONICAL_CAMERAS, prepared)
        pictures = np.asarray(pictures, dtype=np.float32)
        pictures = pictures[None] if pictures.ndim == 2 else pictures
        if pictures.shape[1:] != (self.size, self.size):
            raise ValueError(f"pictures must be {self.size}x{self.size}, got {pictures.shape[1:]}")
        return AgreementTarget(pictures, picture_cameras(len(pictures)), None)

    def __call__(self, result, prepared: AgreementTarget) -> Agreement:
        """The agreement of one OpenSCAD ``result`` with ``prepared``; never raises on a bad program."""
        status, seconds = str(getattr(result, "status", "crashed")), float(getattr(result, "seconds", 0.0))
        if status != "ok":
            stderr = getattr(result, "stderr", "") or ""
            lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
            return _invalid(status, seconds, lines[-1] if lines else "",
                            bool(getattr(result, "infrastructure", False)))
        views = own_frame_views(result.vertices, result.faces, prepared.cameras, self.size, self.threads)
        if views is None:
            return _invalid("degenerate", seconds, "no usable face")
        masks = views < BACKGROUND
        target_masks = prepared.pictures < PICTURE_BACKGROUND
        ssim = _clip(masked_ssim(1.0 - views, 1.0 - prepared.pictures, masks | target_masks))
        silhouette = silhouette_iou(masks, target_masks)
        if prepared.mesh is None:
            return Agreement((ssim + silhouette) / 2, ssim, silhouette, True, status, seconds)
        return self._with_mesh(result, prepared.mesh, ssim, silhouette, seconds)

    def _with_mesh(self, result, mesh: PreparedTarget, ssim: float, silhouette: float,
                   seconds: float) -> Agreement:
        breakdown, views = score_with_views(result, mesh, RewardWeights(), self.threads)
        if views is None:
            return _invalid(breakdown.status, seconds, breakdown.detail)
        frame_silhouette = silhouette_iou(views < BACKGROUND, mesh.masks)
        terms = [ssim, silhouette, breakdown.ssim, frame_silhouette, breakdown.chamfer]
        if mesh.occupancy.any():  # a mesh thinner than a cell: IoU says nothing (as in the reward)
            terms.append(breakdown.iou)
        return Agreement(float(np.mean(terms)), ssim, silhouette, True, "ok", seconds,
                         frame_ssim=breakdown.ssim, frame_silhouette=frame_silhouette,
                         chamfer=breakdown.chamfer, iou=breakdown.iou)


def picture_of(image, size: int = 128) -> np.ndarray:
    """A PIL picture as the ``(size, size) float32`` grayscale array in [0, 1] that
    :meth:`AgreementScorer.prepare` takes (bilinear resize; give it square, padded with white)."""
    from PIL import Image

    resized = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def picture_cameras(count: int) -> tuple[Camera, ...]:
    """The cameras of ``count`` pictures: the canonical ones in order (iso, front, right, top),
    so one picture is the iso view, as a corpus image is."""
    if not 1 <= count <= len(CANONICAL_CAMERAS):
        raise ValueError(f"between 1 and {len(CANONICAL_CAMERAS)} pictures, got {count}")
    return CANONICAL_CAMERAS[:count]


def _clip(value) -> float:
    value = float(value)
    return float(np.clip(value, 0.0, 1.0)) if np.isfinite(value) else 0.0


def _invalid(status: str, seconds: float, detail: str = "", infrastructure: bool = False) -> Agreement:
    return Agreement(INVALID, 0.0, 0.0, False, status, seconds, detail, infrastructure)

