"""Mesh -> shaded grayscale view images and silhouette masks, by CPU ray casting.

Every image is rendered in a :class:`Frame` taken from the **target** mesh
(its bounding-box centre and half-diagonal), so a prediction rendered in the
target's frame shows its size and position errors. Cameras are orthographic
and fixed (:data:`CANONICAL_CAMERAS`); OpenSCAD's +Z is up in every side view.

Rendering uses open3d's ``RaycastingScene`` (Embree) on the CPU: no X server,
no GPU, and the same input gives the same bytes. Shading is Lambertian from
a light at the camera plus a fixed key light, on a white background:
``value = 1`` where the ray misses, else ``0.15 + 0.75 * shade``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

BACKGROUND = 1.0
_VIEW_EXTENT = 1.05  # half-width of the orthographic window, in frame units


@dataclass(frozen=True)
class Frame:
    """Where a mesh sits: ``centre (3,)`` and ``scale`` (half the bounding-box diagonal)."""

    centre: tuple[float, float, float]
    scale: float

    @classmethod
    def of(cls, vertices: np.ndarray) -> Frame:
        """The frame of a target mesh's ``vertices (N, 3)``; a degenerate mesh gets scale 1."""
        vertices = np.asarray(vertices, dtype=np.float64)
        if len(vertices) == 0:
            return cls((0.0, 0.0, 0.0), 1.0)
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        half_diagonal = float(np.linalg.norm(hi - lo) / 2)
        centre = tuple(float(c) for c in (lo + hi) / 2)
        return cls(centre, half_diagonal if half_diagonal > 1e-9 else 1.0)

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        """Map ``vertices (N, 3)`` into this frame (the target then fits the unit sphere)."""
        return (np.asarray(vertices, dtype=np.float64) - np.asarray(self.centre)) / self.scale


@dataclass(frozen=True)
class Camera:
    """An orthographic camera looking at the origin from ``direction``."""

    name: str
    direction: tuple[float, float, float]
    """Unit-free vector from the origin towards the eye."""
    up: tuple[float, float, float]
    """World vector that points up in the image."""

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) unit vectors; forward points from the eye to the origin."""
        return _camera_basis(self.direction, self.up)


@functools.lru_cache(maxsize=64)
def _camera_basis(direction, up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    forward = -np.asarray(direction, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    right /= np.linalg.norm(right)
    return forward, right, np.cross(right, forward)


CANONICAL_CAMERAS: tuple[Camera, ...] = (
    Camera("iso", (1.0, -1.0, 1.0), (0.0, 0.0, 1.0)),  # front-right-top, like OpenSCAD's default
    Camera("front", (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),  # looking along +Y; +X right, +Z up
    Camera("right", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # looking along -X; +Y right, +Z up
    Camera("top", (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),  # looking down -Z; +X right, +Y up
)


@dataclass
class Views:
    """Rendered views: ``images (V, H, W) float32`` in [0, 1] and ``masks (V, H, W) bool``."""

    images: np.ndarray
    masks: np.ndarray
    names: tuple[str, ...]


@functools.lru_cache(maxsize=16)
def _rays_for(cameras: tuple[Camera, ...], size: int) -> np.ndarray:
    """``(V, size, size, 6) float32`` rays of ``cameras`` (read-only: shared by every call)."""
    rays = np.stack([camera_rays(c, size) for c in cameras])
    rays.flags.writeable = False
    return rays


def camera_rays(camera: Camera, size: int) -> np.ndarray:
    """Orthographic rays ``(size, size, 6) float32`` (origin xyz, direction xyz); row 0 is the top."""
    forward, right, up = camera.basis()
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    xs = coords * _VIEW_EXTENT
    ys = -coords * _VIEW_EXTENT  # image rows grow downwards, world up grows upwards
    plane = xs[None, :, None] * right + ys[:, None, None] * up
    origins = plane - 3.0 * forward
    directions = np.broadcast_to(forward, origins.shape)
    return np.concatenate([origins, directions], axis=-1).astype(np.float32)


def render(
    mesh,
    frame: Frame,
    cameras: tuple[Camera, ...] = CANONICAL_CAMERAS,
    size: int = 128,
    threads: int = 0,
) -> Views:
    """Render ``mesh`` (anything with ``vertices (N, 3)`` and ``faces (M, 3)``) in ``frame``.

    An empty mesh gives blank images (all background) and empty masks.
    ``threads`` caps Embree's threads (0: all cores; render workers pass 1).
    """
    if not len(mesh.faces):
        return render_scene(None, cameras, size, threads)
    vertices = frame.apply(mesh.vertices)
    return render_scene(make_scene(vertices, mesh.faces), cameras, size, threads, vertices)


def make_scene(vertices: np.ndarray, faces: np.ndarray):
    """An open3d ``RaycastingScene`` of one mesh (``vertices (N, 3)`` already placed, ``faces (M, 3)``).

    Build it once to render, query occupancy and measure distances on the same mesh.
    """
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(vertices, dtype=np.float32)),
        o3d.core.Tensor(np.asarray(faces, dtype=np.uint32)),
    )
    return scene


def render_scene(
    scene,
    cameras: tuple[Camera, ...] = CANONICAL_CAMERAS,
    size: int = 128,
    threads: int = 0,
    vertices: np.ndarray | None = None,
) -> Views:
    """Render a :func:`make_scene` scene (``None``: an empty mesh, blank views).

    With the scene's ``vertices (N, 3)``, only the rays of :func:`view_windows` are cast (a third
    of them for the corpus parts scored against their family's target, which costs a third less
    time): the others cannot hit the mesh, so the views are the same to the byte.
    """
    if size < 8:
        raise ValueError(f"view size must be at least 8 pixels, got {size}")
    count = len(cameras)
    images = np.full((count, size, size), BACKGROUND, dtype=np.float32)
    masks = np.zeros((count, size, size), dtype=bool)
    names = tuple(c.name for c in cameras)
    if scene is None:
        return Views(images, masks, names)
    rays = _rays_for(tuple(cameras), size)
    full = (slice(0, size), slice(0, size))
    windows = view_windows(vertices, cameras, size) if vertices is not None else [full] * count
    batch = np.concatenate([rays[index][window].reshape(-1, 6) for index, window in enumerate(windows)])
    if len(batch) == 0:  # the mesh lies outside every view
        return Views(images, masks, names)
    import open3d as o3d

    hits = scene.cast_rays(o3d.core.Tensor.from_numpy(batch), nthreads=threads)
    hit = np.isfinite(hits["t_hit"].numpy())
    normals = hits["primitive_normals"].numpy()  # 0 where the ray missed
    start = 0
    for index, (camera, window) in enumerate(zip(cameras, windows, strict=True)):
        shape = masks[index][window].shape
        stop = start + shape[0] * shape[1]
        seen = hit[start:stop].reshape(shape)
        masks[index][window] = seen
        shade = _shade(normals[start:stop], camera).reshape(shape)  # the whole window: no gather
        images[index][window] = np.where(seen, shade, np.float32(BACKGROUND))
        start = stop
    return Views(images, masks, names)


def view_windows(vertices: np.ndarray, cameras: tuple[Camera, ...], size: int) -> list[tuple[slice, slice]]:
    """Per camera, the ``(rows, columns)`` of the pixels whose ray can hit a mesh with ``vertices
    (N, 3)``: those within a pixel of the box of the vertices' projection (a ray of
    :func:`camera_rays` hits a triangle only inside the triangle's projection)."""
    centres = ((np.arange(size) + 0.5) / size * 2.0 - 1.0) * _VIEW_EXTENT  # as in camera_rays
    margin = 2.0 * _VIEW_EXTENT / size
    axes = np.stack([axis for camera in cameras for axis in camera.basis()[1:]], axis=1)  # (3, 2 V)
    projected = np.asarray(vertices, dtype=np.float64) @ axes  # every camera's right and up at once
    lows, highs = projected.min(axis=0) - margin, projected.max(axis=0) + margin
    return [
        (_span(-centres, lows[2 * i + 1], highs[2 * i + 1]), _span(centres, lows[2 * i], highs[2 * i]))
        for i in range(len(cameras))
    ]


def _span(centres: np.ndarray, lo: float, hi: float) -> slice:
    """The slice of the monotonic ``centres`` that lie in ``[lo, hi]`` (empty if none)."""
    inside = np.flatnonzero((centres >= lo) & (centres <= hi))
    return slice(int(inside[0]), int(inside[-1]) + 1) if len(inside) else slice(0, 0)


def _shade(normals: np.ndarray, camera: Camera) -> np.ndarray:
    """Two-light Lambertian shade ``(K,) float32`` of unit ``normals (K, 3)``, two-sided, in
    [0.15, 0.9] (0.15 for a zero normal)."""
    shade = np.abs(normals @ _lights(camera)) @ (0.55, 0.45)  # 0.55 head light + 0.45 key light
    return (0.15 + 0.75 * np.clip(shade, 0.0, 1.0)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _lights(camera: Camera) -> np.ndarray:
    """``(3, 2)``: the directions of the head light (towards the camera) and the key light."""
    forward, right, up = camera.basis()
    key = -forward + 0.6 * up - 0.4 * right
    lights = np.stack([-forward, key / np.linalg.norm(key)], axis=1)
    lights.flags.writeable = False
    return lights


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as ``uint8`` (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def save_views(views: Views, out_dir: str, stem: str) -> list[str]:
    """Write each view as ``{stem}_{name}.png`` in ``out_dir``; return the paths."""
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for image, name in zip(views.images, views.names, strict=True):
        path = os.path.join(out_dir, f"{stem}_{name}.png")
        Image.fromarray(to_uint8(image)).save(path)
        paths.append(path)
    return paths


def contact_sheet(rows: list[np.ndarray], labels: list[str] | None = None, pad: int = 4) -> np.ndarray:
    """Tile rows of views ``[(V, H, W), ...]`` into one ``uint8`` image, a row per entry.

    With ``labels``, each row's label is drawn above it.
    """
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("contact_sheet needs at least one row of views")
    height, width = rows[0].shape[1:]
    label_h = 14 if labels else 0
    columns = max(len(r) for r in rows)
    sheet_w = pad + columns * (width + pad)
    sheet_h = pad + len(rows) * (height + label_h + pad)
    sheet = Image.new("L", (sheet_w, sheet_h), 255)
    draw = ImageDraw.Draw(sheet)
    for r, views in enumerate(rows):
        top = pad + r * (height + label_h + pad)
        if labels:
            draw.text((pad, top), labels[r][:80], fill=0)
        for c, image in enumerate(views):
            sheet.paste(Image.fromarray(to_uint8(image)), (pad + c * (width + pad), top + label_h))
    return np.asarray(sheet)


def save_view_row(images: np.ndarray, path: str) -> str:
    """Write views ``(V, H, W)`` side by side as one PNG at ``path``; return the path."""
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(to_uint8(np.concatenate(list(images), axis=1))).save(path)
    return path


def save_contact_sheet(rows: list[np.ndarray], path: str, labels: list[str] | None = None) -> str:
    """Write :func:`contact_sheet` of ``rows`` to ``path`` (PNG) and return the path."""
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(contact_sheet(rows, labels)).save(path)
    return path
