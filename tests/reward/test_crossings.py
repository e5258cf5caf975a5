"""Properties of reward.crossings: closed meshes told from open ones, and one ray per grid column
giving the parity that open3d's per-point ``compute_occupancy`` gives."""

import numpy as np
import open3d as o3d
import pytest

from renderer.views import make_scene
from reward.crossings import column_parity, enclosed_volume, is_closed
from reward.geometry import grid_axis
from tests.reward.meshes import BOX_FACES, box, cube


def _two_boxes_through_each_other():
    a, faces = box((-0.8, -0.3, -0.3), (0.5, 0.3, 0.3))
    b, _ = box((-0.2, -0.7, -0.5), (0.2, 0.7, 0.6))
    return np.vstack([a, b]), np.vstack([faces, faces + 8])


def _tilted_prism():
    """A hexagonal prism turned off every axis: faces at generic angles to the column rays."""
    angles = np.arange(6) * np.pi / 3
    ring = np.stack([0.6 * np.cos(angles), 0.6 * np.sin(angles)], axis=1)
    vertices = np.concatenate([np.c_[ring, np.full(6, -0.5)], np.c_[ring, np.full(6, 0.5)]])
    sides = [[i, (i + 1) % 6, 6 + (i + 1) % 6] for i in range(6)]
    sides += [[i, 6 + (i + 1) % 6, 6 + i] for i in range(6)]
    caps = [[0, i + 1, i] for i in range(1, 5)] + [[6, 6 + i, 6 + i + 1] for i in range(1, 5)]
    turn = o3d.geometry.get_rotation_matrix_from_xyz((0.4, -0.7, 0.2))
    return vertices @ turn.T, np.array(sides + caps)


def test_a_box_two_boxes_through_each_other_and_a_prism_are_closed():
    assert is_closed(cube(1.0)[1])
    assert is_closed(_two_boxes_through_each_other()[1])
    assert is_closed(_tilted_prism()[1])


def test_a_box_with_a_side_missing_is_open():
    assert not is_closed(BOX_FACES[2:])


def test_a_box_whose_sides_do_not_share_vertices_is_open():
    vertices, faces = cube(1.0)
    split = vertices[faces].reshape(-1, 3)  # every face with its own three vertices
    assert not is_closed(np.arange(len(split)).reshape(-1, 3))


@pytest.mark.parametrize(
    "mesh",
    [
        cube(0.9),  # centres on the diagonals of its faces: rays through shared edges
        cube(1.3, (0.1, -0.2, 0.05)),
        _two_boxes_through_each_other(),  # self-intersecting: the parity is the mod-2 winding number
        _tilted_prism(),
        cube(3.0, (1.4, 0.2, -0.5)),  # reaches past the grid
    ],
)
def test_column_parity_equals_asking_every_centre(mesh):
    vertices, faces = np.asarray(mesh[0], float), np.asarray(mesh[1])
    axis = grid_axis(20, -1.05, 1.05)
    centres = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    scene = make_scene(vertices, faces)
    asked = scene.compute_occupancy(o3d.core.Tensor(centres.reshape(-1, 3).astype(np.float32)), nthreads=1)
    expected = asked.numpy().reshape(centres.shape[:3]) > 0.5
    got = column_parity(scene, axis, axis, axis, np.ones((20, 20), bool), threads=1)
    assert np.array_equal(got, expected)


def test_columns_left_out_come_back_empty():
    vertices, faces = cube(1.5)
    axis = grid_axis(8, -1.05, 1.05)
    columns = np.zeros((8, 8), bool)
    columns[3, 4] = True
    parity = column_parity(make_scene(vertices, faces), axis, axis, axis, columns, threads=1)
    assert parity[3, 4].any() and parity.sum() == parity[3, 4].sum()


def test_enclosed_volume_of_a_box_and_a_prism_wherever_they_are_and_none_when_open():
    vertices, faces = box((1.0, 2.0, 3.0), (4.0, 4.0, 3.5))
    assert enclosed_volume(vertices, faces) == pytest.approx(3.0, rel=1e-12)
    assert enclosed_volume(vertices - 50.0, faces) == pytest.approx(3.0, rel=1e-9)
    assert enclosed_volume(vertices, faces[:, ::-1]) == pytest.approx(3.0, rel=1e-12)  # turned inside out
    prism = _tilted_prism()  # hexagon of circumradius 0.6, height 1
    assert enclosed_volume(*prism) == pytest.approx(1.5 * np.sqrt(3) * 0.36, rel=1e-9)
    assert enclosed_volume(vertices, BOX_FACES[2:]) is None
