"""Properties of renderer.views: determinism, orientation, framing, sizes."""

import numpy as np
import pytest

from renderer.openscad import run
from renderer.views import (
    BACKGROUND,
    CANONICAL_CAMERAS,
    Frame,
    contact_sheet,
    make_scene,
    render,
    render_scene,
    save_views,
    view_windows,
)
from tests.conftest import needs_openscad


class _Mesh:
    def __init__(self, vertices, faces):
        self.vertices, self.faces = np.asarray(vertices, float), np.asarray(faces, int)


def box(lo, hi) -> _Mesh:
    """An axis-aligned box as 8 vertices and 12 outward triangles."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    v = [[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    return _Mesh(v, f)


def union(*meshes: _Mesh) -> _Mesh:
    vertices, faces, offset = [], [], 0
    for m in meshes:
        vertices.append(m.vertices)
        faces.append(m.faces + offset)
        offset += len(m.vertices)
    return _Mesh(np.concatenate(vertices), np.concatenate(faces))


# A flat slab along +X with a tall post at its -X end (left in the front view), a fin
# at its +Y edge (right of the right view) and a tab sticking out towards +Y at its +X
# end (top right of the top view).
ASYMMETRIC = union(
    box((0, 0, 0), (10, 4, 1)),
    box((0, 0, 1), (1, 1, 8)),
    box((4, 3, 1), (6, 4, 3)),
    box((8, 4, 0), (10, 6, 1)),
)


def _view(name: str, size: int = 64) -> np.ndarray:
    views = render(ASYMMETRIC, Frame.of(ASYMMETRIC.vertices), size=size)
    return views.masks[views.names.index(name)]


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return rows.mean() / mask.shape[0], cols.mean() / mask.shape[1]


def test_front_view_has_up_as_up_and_minus_x_on_the_left():
    mask = _view("front")
    rows, cols = np.nonzero(mask)
    top_rows = rows < rows.min() + 5  # only the post reaches this high
    assert cols[top_rows].max() < mask.shape[1] * 0.4  # and it stands on the left
    bottom_rows = rows > rows.max() - 2  # the slab spans the whole width
    assert cols[bottom_rows].max() > mask.shape[1] * 0.8


def test_top_view_has_plus_y_up():
    mask = _view("top")
    rows, cols = np.nonzero(mask)
    assert cols.max() - cols.min() > 1.5 * (rows.max() - rows.min())  # X is horizontal
    tab = rows < rows.min() + 3  # only the +Y tab reaches the top rows
    assert cols[tab].min() > mask.shape[1] * 0.6  # and it sits at +X, on the right


def test_right_view_puts_plus_y_on_the_right():
    mask = _view("right")
    rows, cols = np.nonzero(mask)
    tall = rows < rows.min() + 5  # the post (y in [0, 1]) is the only tall thing
    assert cols[tall].mean() < mask.shape[1] / 2
    bottom = rows > rows.max() - 2  # the slab and the +Y tab
    assert cols[bottom].max() > mask.shape[1] * 0.65  # the tab reaches far right


def test_same_input_gives_identical_bytes():
    frame = Frame.of(ASYMMETRIC.vertices)
    a = render(ASYMMETRIC, frame, size=96)
    b = render(ASYMMETRIC, frame, size=96)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.masks.tobytes() == b.masks.tobytes()


def test_images_are_float32_in_unit_range_with_masks_matching_background():
    views = render(ASYMMETRIC, Frame.of(ASYMMETRIC.vertices))
    assert views.images.dtype == np.float32 and views.images.shape == (len(CANONICAL_CAMERAS), 128, 128)
    assert views.images.min() >= 0 and views.images.max() <= 1
    assert np.all(views.images[~views.masks] == BACKGROUND)
    assert np.all(views.images[views.masks] < BACKGROUND)


def test_target_fills_the_view_and_frame_exposes_scale_errors():
    target = box((0, 0, 0), (2, 2, 2))
    frame = Frame.of(target.vertices)
    small = box((0.5, 0.5, 0.5), (1.5, 1.5, 1.5))
    full = render(target, frame).masks.sum()
    assert render(small, frame).masks.sum() < 0.4 * full
    assert render(small, Frame.of(small.vertices)).masks.sum() == pytest.approx(full, rel=0.05)


def test_empty_mesh_renders_blank():
    views = render(_Mesh(np.zeros((0, 3)), np.zeros((0, 3))), Frame.of(np.zeros((0, 3))))
    assert not views.masks.any() and np.all(views.images == BACKGROUND)


@needs_openscad
def test_openscad_part_renders_at_480(tmp_path):
    result = run("difference() { cube(10, center = true); cylinder(r = 3, h = 20, center = true); }")
    views = render(result, Frame.of(result.vertices), size=480)
    assert views.images.shape == (4, 480, 480)
    top = views.masks[views.names.index("top")]
    assert not top[240, 240] and top[240, 150]  # the hole goes through, seen from above
    paths = save_views(views, str(tmp_path), "part")
    assert len(paths) == 4 and all((tmp_path / p.split("/")[-1]).stat().st_size > 0 for p in paths)


def test_contact_sheet_tiles_rows():
    views = render(ASYMMETRIC, Frame.of(ASYMMETRIC.vertices), size=32)
    sheet = contact_sheet([views.images, views.images], labels=["a", "b"])
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 4 + 4 * (32 + 4)


@pytest.mark.parametrize(
    "frame",
    [
        Frame.of(ASYMMETRIC.vertices),
        Frame((2.0, 1.0, 3.0), 3.0),  # the part crosses the edge of every view
        Frame((40.0, 40.0, 40.0), 1.0),  # the part lies outside every view
    ],
)
def test_casting_only_the_rays_near_the_part_gives_the_same_views(frame):
    vertices = frame.apply(ASYMMETRIC.vertices)
    scene = make_scene(vertices, ASYMMETRIC.faces)
    windowed = render_scene(scene, CANONICAL_CAMERAS, 64, vertices=vertices)
    every_ray = render_scene(scene, CANONICAL_CAMERAS, 64)
    assert windowed.images.tobytes() == every_ray.images.tobytes()
    assert windowed.masks.tobytes() == every_ray.masks.tobytes()


def test_view_windows_hold_every_pixel_the_part_covers():
    vertices = Frame.of(ASYMMETRIC.vertices).apply(ASYMMETRIC.vertices)
    masks = render_scene(make_scene(vertices, ASYMMETRIC.faces), CANONICAL_CAMERAS, 64).masks
    for mask, (rows, columns) in zip(masks, view_windows(vertices, CANONICAL_CAMERAS, 64), strict=True):
        outside = mask.copy()
        outside[rows, columns] = False
        assert mask[rows, columns].any() and not outside.any()
        assert mask[rows, columns].size < mask.size  # the window leaves some rays out
