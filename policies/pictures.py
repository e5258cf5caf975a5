"""Pictures as users make them: our renders restyled for training, users' pictures normalised.

A user's picture of a part is an OpenSCAD preview or PNG export (yellow faces on cream, the
"Cornfield" scheme), another CAD viewer's screenshot or a photo-like render, not our grey ray
cast. Two functions bring the two together:

- :func:`normalise_picture` (inference: :func:`user_views`; and training's picture rows): the
  background (the border's colour) becomes white, the part's pixels their luminance; a single
  picture also gets our renders' contrast (:data:`SHADE_RANGE`) and framing (centred, the
  silhouette's larger side :data:`ISO_FILL` of the square, as our iso views' median is).
- :func:`restyle` (training): one of our grey views drawn as another viewer might: a face
  colour (OpenSCAD's own yellow in :data:`OPENSCAD_SHARE` of the draws, else random), other
  lighting (gamma, gain), a background colour (cream, white, grey, or dark), a small camera
  jitter (rotation, scale, shift) and a slight blur. ``normalise_picture(restyle(view))`` is what
  SFT's picture rows show the policy (:class:`policies.inputs.SFTCollator`), the same path a
  user's picture takes.

Both take PIL images or arrays as :func:`as_rgb` reads them, and give PIL images.
"""

from __future__ import annotations

import colorsys
import random

import numpy as np
from PIL import Image, ImageFilter

ISO_FILL = 0.83
"""Larger side of the part's silhouette over the picture's side in our iso views (median over
400 corpus parts: 0.83; 10th and 90th percentiles 0.66 and 0.92)."""
SHADE_RANGE = (0.40, 0.68)
"""Where the 5th percentile and the median of the luminance inside the part (its outline left out)
are put: our iso views' medians of those over 300 corpus parts (0.68 is the top face's shade)."""
MIN_SPREAD = 0.05
"""Below this spread between the 5th percentile and the median, the part is taken as one shade."""
FOREGROUND_STEP = 16 / 255
"""A pixel whose colour differs from the background's by more than this in some channel is part
of the silhouette (our lightest face, 0.9, differs from white by 0.1)."""
OPENSCAD_FACE = (249, 215, 44)
"""OpenSCAD's Cornfield colour scheme: the faces' yellow..."""
OPENSCAD_BACKGROUND = (255, 255, 229)
"""... and its cream background."""
OPENSCAD_SHARE = 0.4
"""Fraction of :func:`restyle`'s draws in OpenSCAD's own colours."""


def normalise_picture(image, size: int = 128, single: bool = True) -> Image.Image:
    """``image`` as our renders look: grey part on white, ``size`` pixels square.

    The background colour is the median of the border pixels; pixels that differ from it by more
    than :data:`FOREGROUND_STEP` are the part, and become their luminance on white (a grey picture
    on white comes back as it was). A ``single`` picture (taken as the iso view) is also made like
    training's picture rows: its luminance stretched (:func:`_stretch`), the part centred with its
    larger side :data:`ISO_FILL` of the square (isolated specks do not count). One of four views
    keeps its shades and framing (the views' relative sizes carry the part's proportions). A
    picture with no part in it comes back blank (white).
    """
    rgb = np.asarray(as_rgb(image), dtype=np.float32) / 255.0
    mask = _foreground(rgb)
    grey = np.ones(mask.shape, dtype=np.float32)
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    grey[mask] = luminance[mask]
    part = _without_specks(mask)
    like_training = single and part.any()
    if like_training:
        grey[mask] = _stretch(luminance[mask], luminance[_inside(part)])
    picture = Image.fromarray((grey * 255.0 + 0.5).astype(np.uint8), mode="L")
    if like_training:
        picture = _reframe(picture, part)
    picture = _square(picture)
    return picture.resize((size, size), Image.Resampling.LANCZOS).convert("RGB")


def user_views(images, size: int = 128) -> list[Image.Image]:
    """A user's pictures of one part, normalised (:func:`normalise_picture`): one picture as a
    ``single`` picture (stretched and reframed), four views (iso, front, right, top) in grey only."""
    images = list(images)
    return [normalise_picture(image, size, single=len(images) == 1) for image in images]


def restyle(view, rng: random.Random) -> Image.Image:
    """One of our grey views (part darker than 0.98 on white) in another viewer's colours and light,
    with a small camera jitter; see the module docstring."""
    grey = np.asarray(as_rgb(view).convert("L"), dtype=np.float32) / 255.0
    mask = grey < 0.98
    face, background = _colours(rng)
    shade = np.clip(rng.uniform(0.8, 1.15) * grey ** rng.uniform(0.6, 1.6) + rng.uniform(-0.1, 0.1), 0, 1)
    rgb = np.where(mask[..., None], shade[..., None] * face, background)
    picture = Image.fromarray((np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8), mode="RGB")
    fill = tuple(int(255 * c + 0.5) for c in background)
    picture = picture.rotate(rng.uniform(-4, 4), Image.Resampling.BILINEAR, fillcolor=fill)
    scale, side = rng.uniform(0.85, 1.15), picture.width
    dx, dy = (side / 2 * (1 - 1 / scale) - rng.uniform(-0.05, 0.05) * side for _ in range(2))
    picture = picture.transform(  # output pixel p reads input pixel (p - centre) / scale + centre - shift
        picture.size, Image.Transform.AFFINE, (1 / scale, 0, dx, 0, 1 / scale, dy),
        Image.Resampling.BILINEAR, fillcolor=fill)
    if rng.random() < 0.5:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return picture


def _colours(rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """A face colour and a background colour, ``(3,)`` floats in [0, 1]."""
    if rng.random() < OPENSCAD_SHARE:
        return np.array(OPENSCAD_FACE) / 255.0, np.array(OPENSCAD_BACKGROUND) / 255.0
    face = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.55, 1.0))
    kind = rng.random()
    if kind < 0.15:  # dark screens (OpenSCAD's Metallic, Sunset, ...)
        background = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.3))
    else:  # white, light grey, or a light tint
        background = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0))
    return np.array(face, dtype=np.float32), np.array(background, dtype=np.float32)


def _foreground(rgb: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: pixels unlike the border's median colour."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return np.abs(rgb - np.median(border, axis=0)).max(axis=-1) > FOREGROUND_STEP


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """``mask`` without pixels that have fewer than two of their eight neighbours in it."""
    from scipy.ndimage import uniform_filter

    neighbours = uniform_filter(mask.astype(np.float32), size=3, mode="constant") * 9.0
    return mask & (neighbours >= 2.5)  # itself and at least two neighbours


def _inside(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its outline (pixels blended with the background), unless too little is left."""
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(mask)
    return inner if np.count_nonzero(inner) >= 20 else mask


def _stretch(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` mapped linearly so the 5th percentile and the median of ``reference`` land on
    :data:`SHADE_RANGE`; when one shade fills most of the part (a plate seen from above, small
    holes in it), that shade goes to the upper end and the contrast stays as it is."""
    low, high = np.percentile(reference, [5, 50])
    gain = (SHADE_RANGE[1] - SHADE_RANGE[0]) / (high - low) if high - low > MIN_SPREAD else 1.0
    out = SHADE_RANGE[1] + (values - high) * gain
    return np.clip(out, 0.05, 0.95).astype(np.float32)


def _reframe(picture: Image.Image, mask: np.ndarray) -> Image.Image:
    """The part cropped to its silhouette, centred on a white square with its larger side
    :data:`ISO_FILL` of the square's."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = picture.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    side = max(1, round(max(crop.size) / ISO_FILL))
    out = Image.new("L", (side, side), 255)
    out.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
    return out


def _square(picture: Image.Image) -> Image.Image:
    """``picture`` centred on a white square as wide as its larger side."""
    side = max(picture.size)
    if picture.size == (side, side):
        return picture
    out = Image.new("L", (side, side), 255)
    out.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    return out


def as_rgb(image) -> Image.Image:
    """PIL RGB from a PIL image or an array (H, W) / (H, W, C), C in 1, 3, 4; uint8 or [0, 1] float."""
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        image = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
    return image.convert("RGB")
