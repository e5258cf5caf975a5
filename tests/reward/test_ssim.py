"""Properties of reward.ssim: Wang-2004 SSIM of view stacks, whole-image and masked."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from renderer.views import Frame, render
from reward.ssim import RADIUS, masked_ssim, ssim, ssim_maps
from tests.reward.meshes import cube, ok


@pytest.fixture(scope="module")
def noisy_pair():
    rng = np.random.default_rng(0)
    a = rng.random((3, 40, 48)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    return a, b


def test_identical_views_give_one(noisy_pair):
    a, _ = noisy_pair
    assert ssim(a, a) == pytest.approx(1.0)
    assert masked_ssim(a, a, np.ones(a.shape, bool)) == pytest.approx(1.0)


def test_ssim_is_scikit_image_in_the_wang_convention_averaged_over_views(noisy_pair):
    a, b = noisy_pair
    expected = np.mean(
        [
            structural_similarity(
                x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_vectorised_map_equals_scikit_image_full_map(noisy_pair):
    a, b = noisy_pair
    maps = ssim_maps(a, b)
    for view in range(len(a)):
        _, full = structural_similarity(
            a[view], b[view], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=1.0, full=True,
        )
        np.testing.assert_allclose(maps[view], full, atol=1e-5)


def test_masked_ssim_with_a_full_mask_equals_ssim(noisy_pair):
    a, b = noisy_pair
    assert masked_ssim(a, b, np.ones(a.shape, bool)) == pytest.approx(ssim(a, b), abs=1e-5)


def test_masked_ssim_on_a_cropped_region_equals_the_full_map_mean(noisy_pair):
    a, b = noisy_pair
    masks = np.zeros(a.shape, bool)
    masks[0, 10:20, 12:30] = True
    masks[1, 25:33, 8:14] = True  # view 2 has an empty mask and counts 1
    full = ssim_maps(a, b)
    expected = (full[0][masks[0]].mean() + full[1][masks[1]].mean() + 1.0) / 3
    assert masked_ssim(a, b, masks) == pytest.approx(expected, abs=1e-5)


def test_masked_ssim_ignores_the_border_like_scikit_image(noisy_pair):
    a, b = noisy_pair
    masks = np.zeros(a.shape, bool)
    masks[:, :RADIUS, :] = True
    assert masked_ssim(a, b, masks) == 1.0


def test_blank_render_scores_low_against_a_part_on_its_silhouette():
    vertices, faces = cube(1.0)
    part = render(ok(vertices, faces), Frame.of(vertices))
    blank = np.ones_like(part.images)
    assert masked_ssim(1 - blank, 1 - part.images, part.masks) < 0.05


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((2, 16, 16)), np.zeros((2, 16, 17)))
