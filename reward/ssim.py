"""Structural similarity (SSIM) of rendered views, in the Wang et al. (2004) convention.

Wang 2004: an 11-tap Gaussian window with sigma 1.5, population (not sample)
covariance, ``K1 = 0.01``, ``K2 = 0.03``, and images in [0, 1]
(``data_range = 1``). :func:`ssim` is scikit-image's ``structural_similarity``
with exactly those settings, per view, averaged over views: the reference.

:func:`ssim_maps` computes the same per-pixel map for every view at once (one
Gaussian filtering of the stacked local moments, as matrix products), and
:func:`masked_ssim` averages it over a region of interest. The reward uses the
masked form because on our renders most pixels are white background: on the
flange example (a part covering 18% of the pixels) the whole-image mean gives
a blank render 0.83, more than the same part moved by a sixth of its diagonal
gets (0.73). Averaging only where either silhouette lies removes that bonus
for drawing nothing.

The target's two local moments do not depend on the prediction:
:func:`target_moments` filters them once per target, and both functions take
them instead of filtering them again (the same values; 3 filtered images per
view instead of 5).
"""

from __future__ import annotations

import functools

import numpy as np
from skimage.metrics import structural_similarity

SIGMA = 1.5
"""Standard deviation of the Gaussian window, in pixels (Wang 2004)."""
TRUNCATE = 3.5
"""Window half-width in sigmas: ``int(3.5 * 1.5 + 0.5) = 5`` pixels, an 11-tap window."""
RADIUS = int(TRUNCATE * SIGMA + 0.5)
"""Border, in pixels, that scikit-image leaves out of the mean (edge effects)."""
K1, K2 = 0.01, 0.03
DATA_RANGE = 1.0


def _check_views(pred_images: np.ndarray, target_images: np.ndarray) -> None:
    if pred_images.shape != target_images.shape or pred_images.ndim != 3:
        raise ValueError(
            "SSIM needs two stacks of views with the same shape (V, H, W), got "
            f"{pred_images.shape} and {target_images.shape}"
        )
    if min(pred_images.shape[1:]) < 2 * RADIUS + 1:
        raise ValueError(f"views must be at least {2 * RADIUS + 1} pixels on a side for SSIM")


def ssim(pred_images: np.ndarray, target_images: np.ndarray) -> float:
    """Mean SSIM over views, by scikit-image in the Wang 2004 convention.

    Parameters
    ----------
    pred_images, target_images : (V, H, W) float
        Grayscale views in [0, 1], view ``v`` of one compared with view ``v`` of the other.

    Returns
    -------
    float
        The mean over views of each view's mean SSIM (border of :data:`RADIUS`
        pixels excluded, as scikit-image does); 1 for identical stacks, in [-1, 1].
    """
    pred_images, target_images = np.asarray(pred_images), np.asarray(target_images)
    _check_views(pred_images, target_images)
    per_view = [
        structural_similarity(
            p, t, gaussian_weights=True, sigma=SIGMA, use_sample_covariance=False,
            data_range=DATA_RANGE,
        )
        for p, t in zip(pred_images, target_images, strict=True)
    ]
    return float(np.mean(per_view))


def _blur(stack: np.ndarray) -> np.ndarray:
    """The Gaussian window's local mean of each image of ``stack (K, H, W) float32``.

    ``scipy.ndimage.gaussian_filter(stack, (0, SIGMA, SIGMA), mode="reflect", truncate=TRUNCATE)``
    to float32 rounding (1e-7), as two matrix products with :func:`_window_matrix`: twice as fast.
    The product along rows is one ``(K H, W) @ (W, W)`` product for the whole stack.
    """
    count, height, width = stack.shape
    rows = np.ascontiguousarray(stack).reshape(count * height, width) @ _window_matrix(width).T
    return np.matmul(_window_matrix(height), rows.reshape(count, height, width))


@functools.lru_cache(maxsize=128)  # every crop size of a 128-pixel view (4 MB)
def _window_matrix(n: int) -> np.ndarray:
    """``(n, n) float32``: ``matrix @ column`` filters a column of ``n >= RADIUS`` pixels with the
    Gaussian window, reflected at the ends (``d c b a | a b c d | d c b a``, scipy's "reflect")."""
    offsets = np.arange(-RADIUS, RADIUS + 1)
    weights = np.exp(-0.5 * (offsets / SIGMA) ** 2)
    taps = (np.arange(n)[:, None] + offsets).ravel()
    taps = np.where(taps < 0, -taps - 1, np.where(taps >= n, 2 * n - taps - 1, taps))
    matrix = np.zeros((n, n))
    np.add.at(matrix, (np.repeat(np.arange(n), len(offsets)), taps), np.tile(weights / weights.sum(), n))
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def target_moments(target_images: np.ndarray) -> np.ndarray:
    """The local mean and local mean of squares of each target view, whole views.

    Parameters
    ----------
    target_images : (V, H, W) float
        Grayscale views in [0, 1].

    Returns
    -------
    (2, V, H, W) float32
        What :func:`ssim_maps` would filter for the target; cropping it equals filtering the crop
        wherever the window stays inside the crop (all that :func:`masked_ssim` averages).
    """
    y = np.asarray(target_images, dtype=np.float32)
    return np.stack(np.split(_blur(np.concatenate([y, y * y])), 2))


def ssim_maps(
    pred_images: np.ndarray, target_images: np.ndarray, moments: np.ndarray | None = None
) -> np.ndarray:
    """Per-pixel SSIM of each view, vectorised over views.

    Equal (to float32 rounding) to scikit-image's ``structural_similarity(...,
    full=True)`` map with the settings of :func:`ssim`.

    Parameters
    ----------
    pred_images, target_images : (V, H, W) float
        Grayscale views in [0, 1].
    moments : (2, V, H, W) float32, optional
        :func:`target_moments` of ``target_images``, if already computed.

    Returns
    -------
    (V, H, W) float32
        SSIM at each pixel, in [-1, 1].
    """
    x = np.asarray(pred_images, dtype=np.float32)
    y = np.asarray(target_images, dtype=np.float32)
    _check_views(x, y)

    if moments is None:  # one call for all five local moments
        mu_x, mu_y, xx, yy, xy = np.split(_blur(np.concatenate([x, y, x * x, y * y, x * y])), 5)
    else:
        mu_x, xx, xy = np.split(_blur(np.concatenate([x, x * x, x * y])), 3)
        mu_y, yy = moments
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y  # each product once
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    numerator = (2 * mu_xy + c1) * (2 * (xy - mu_xy) + c2)  # 2 (cov_xy) + c2
    denominator = (mu_xx + mu_yy + c1) * ((xx - mu_xx) + (yy - mu_yy) + c2)  # var_x + var_y + c2
    return numerator / denominator


def masked_ssim(
    pred_images: np.ndarray,
    target_images: np.ndarray,
    masks: np.ndarray,
    moments: np.ndarray | None = None,
) -> float:
    """Mean SSIM over a region of interest in each view, averaged over views.

    Only each view's bounding box of its mask (plus the window radius) is filtered,
    which gives exactly the values of the full-image map there.

    Parameters
    ----------
    pred_images, target_images : (V, H, W) float
        Grayscale views in [0, 1].
    masks : (V, H, W) bool
        Pixels to average over (the reward passes the union of both
        silhouettes). The :data:`RADIUS`-pixel border is always left out, as in
        :func:`ssim`.
    moments : (2, V, H, W) float32, optional
        :func:`target_moments` of ``target_images`` (whole views), if already computed.

    Returns
    -------
    float
        Mean over views of the masked mean SSIM; a view whose mask is empty
        inside the border counts 1 (nothing to compare, so no difference).
    """
    pred_images, target_images = np.asarray(pred_images), np.asarray(target_images)
    _check_views(pred_images, target_images)
    roi = np.zeros(pred_images.shape, dtype=bool)
    roi[:, RADIUS:-RADIUS, RADIUS:-RADIUS] = np.asarray(masks, dtype=bool)[
        :, RADIUS:-RADIUS, RADIUS:-RADIUS
    ]
    any_in_row, any_in_column = roi.any(axis=2), roi.any(axis=1)
    per_view = np.ones(len(roi))  # a view with nothing to compare counts 1
    for view in range(len(roi)):  # each view's own box: a third less area than one box for all
        rows, cols = np.flatnonzero(any_in_row[view]), np.flatnonzero(any_in_column[view])
        if len(rows) == 0:
            continue
        box = (  # the ROI is RADIUS inside the border, so the box never needs clipping
            slice(view, view + 1),
            slice(rows[0] - RADIUS, rows[-1] + RADIUS + 1),
            slice(cols[0] - RADIUS, cols[-1] + RADIUS + 1),
        )
        cropped = None if moments is None else moments[(slice(None), *box)]
        weights = roi[box]
        maps = ssim_maps(pred_images[box], target_images[box], cropped)
        per_view[view] = maps[weights].sum(dtype=np.float64) / np.count_nonzero(weights)
    return float(per_view.mean())
