"""What the reward computes once per target: :class:`PreparedTarget`.

:func:`reward.score.prepare_target` fills it (views, surface samples, occupancy grid, all in the
target's frame); :func:`reward.score.score` compares each prediction with it. Plain arrays, so it
pickles to Ray workers; the ray-casting scene and the SSIM moments are rebuilt on first use in
each process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renderer.views import Camera, Frame, make_scene
from reward.ssim import target_moments


@dataclass(frozen=True)
class PreparedTarget:
    """Everything computed once per target; plain arrays, so it pickles to Ray workers."""

    frame: Frame
    """The target's frame, applied to target and predictions alike."""
    cameras: tuple[Camera, ...]
    size: int
    """View size in pixels."""
    images: np.ndarray
    """``(V, H, W) float32`` target views."""
    masks: np.ndarray
    """``(V, H, W) bool`` target silhouettes."""
    points: np.ndarray
    """``(n_points, 3) float64`` surface samples in the frame (:func:`reward.distance.stratified_samples`)."""
    occupancy: np.ndarray
    """``(R, R, R) bool`` occupancy grid in the frame."""
    seed: int = 0
    """Seed the samples were drawn with (reused for predictions)."""
    vertices: np.ndarray | None = None
    """``(N, 3)`` target vertices in the frame (for the point-to-surface distance)."""
    faces: np.ndarray | None = None
    """``(M, 3)`` target faces."""

    def extents(self) -> np.ndarray:
        """The target's bounding-box size in its own units (mm): the frame's scale undone."""
        return np.ptp(self.vertices, axis=0) * self.frame.scale

    def scene(self):
        """The target's ray-casting scene, built on first use in this process (never pickled)."""
        scene = self.__dict__.get("_scene")
        if scene is None:
            scene = make_scene(self.vertices, self.faces)
            object.__setattr__(self, "_scene", scene)
        return scene

    def ssim_moments(self) -> np.ndarray:
        """:func:`reward.ssim.target_moments` of the inverted views, computed on first use in this
        process (never pickled)."""
        moments = self.__dict__.get("_ssim_moments")
        if moments is None:
            moments = target_moments(1.0 - self.images)
            object.__setattr__(self, "_ssim_moments", moments)
        return moments

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_scene", "_ssim_moments")}

    def __setstate__(self, state):
        self.__dict__.update(state)
