"""Pictures as users make them: users' pictures normalised to our renders' look, our renders
restyled for training, and SFT's picture rows."""

import random

import numpy as np
import pytest
from PIL import Image

from corpus.dataset import target_views
from policies import SFTCollator
from policies.pictures import (
    ISO_FILL,
    OPENSCAD_BACKGROUND,
    OPENSCAD_FACE,
    normalise_picture,
    restyle,
    user_views,
)
from policies.tiny import TinyPolicy
from renderer.views import to_uint8
from tests.policies.conftest import tiny_config
from tests.reward.meshes import box


@pytest.fixture(scope="module")
def iso():
    """Our iso render of an L-shaped part (two boxes), 128 px, grey on white."""
    a, b = box((0, 0, 0), (40, 10, 6)), box((0, 0, 0), (8, 10, 30))
    vertices = np.concatenate([a[0], b[0]])
    faces = np.concatenate([a[1], b[1] + len(a[0])])
    images, _ = target_views(vertices, faces, size=128)
    return Image.fromarray(to_uint8(images[0])).convert("RGB")


def grey(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def silhouette(image) -> np.ndarray:
    return grey(image) < 0.98


def in_openscad_colours(view, size=(200, 150)) -> Image.Image:
    """``view`` as OpenSCAD exports it: yellow faces shaded by our shading, on cream, off-centre in a
    wider picture."""
    shade = grey(view)
    rgb = np.where((shade < 0.98)[..., None], shade[..., None] * np.array(OPENSCAD_FACE),
                   np.array(OPENSCAD_BACKGROUND))
    out = Image.new("RGB", size, OPENSCAD_BACKGROUND)
    out.paste(Image.fromarray(rgb.astype(np.uint8)), (50, 10))
    return out


def iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_single_picture_is_grey_on_white_centred_at_the_iso_fill(iso):
    shown = normalise_picture(iso, 128)
    rgb = np.asarray(shown)
    assert shown.size == (128, 128) and (rgb[..., 0] == rgb[..., 2]).all()  # grey
    assert (rgb[0] == 255).all() and (rgb[:, -1] == 255).all()  # white background
    rows, cols = np.flatnonzero(silhouette(shown).any(1)), np.flatnonzero(silhouette(shown).any(0))
    assert abs(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 - ISO_FILL * 128) <= 3
    assert abs((rows[0] + rows[-1]) / 2 - 63.5) <= 2 and abs((cols[0] + cols[-1]) / 2 - 63.5) <= 2


def test_an_openscad_export_normalises_to_the_same_picture_as_our_render(iso):
    ours, theirs = normalise_picture(iso), normalise_picture(in_openscad_colours(iso))
    assert iou(silhouette(ours), silhouette(theirs)) > 0.93
    both = silhouette(ours) & silhouette(theirs)
    assert np.abs(grey(ours)[both] - grey(theirs)[both]).mean() < 0.05
    raw = np.asarray(in_openscad_colours(iso).resize((128, 128)).convert("L"), np.float32) / 255
    assert np.abs(grey(ours) - raw).mean() > 0.1  # it was far from it before


def test_four_views_keep_their_shades_and_framing(iso):
    views = [iso] * 4
    for shown in user_views(views, 128):
        assert np.abs(grey(shown) - grey(iso)).max() <= 1 / 255 + 1e-6
    dark = Image.fromarray((grey(iso)[..., None] * [80, 160, 255] * (grey(iso) < 0.98)[..., None]
                            + (grey(iso) >= 0.98)[..., None] * [20, 20, 30]).astype(np.uint8))
    (alone,) = user_views([dark], 128)
    assert iou(silhouette(alone), silhouette(normalise_picture(iso))) > 0.93  # dark screens too


def test_a_speck_does_not_move_the_frame_and_a_blank_picture_stays_blank(iso):
    specked = np.asarray(iso).copy()
    specked[2, 2] = 0
    assert np.array_equal(silhouette(normalise_picture(Image.fromarray(specked))),
                          silhouette(normalise_picture(iso)))
    assert (grey(normalise_picture(Image.new("RGB", (90, 60), (30, 40, 50)))) == 1.0).all()


def test_restyle_draws_colours_light_and_jitter_from_its_generator(iso):
    first = [np.asarray(restyle(iso, random.Random(7))) for _ in range(2)]
    assert np.array_equal(*first)
    drawn = [restyle(iso, random.Random(seed)) for seed in range(40)]
    corners = {tuple(np.asarray(p)[0, 0]) for p in drawn}
    assert tuple(OPENSCAD_BACKGROUND) in corners and len(corners) > 10
    for picture in drawn:  # the part is still there, where normalisation finds it
        assert iou(silhouette(normalise_picture(picture)), silhouette(normalise_picture(iso))) > 0.6


def test_sft_shows_the_picture_share_of_rows_as_one_normalised_restyled_picture(iso, tokenizer):
    policy = TinyPolicy.build(tiny_config(views="tile"), tokenizer=tokenizer)
    rows = [{"views": [iso] * 4, "image": iso, "code": "cube(1);"} for _ in range(8)]
    collator = SFTCollator(policy, seed=0, picture_fraction=0.3)
    parts = [part for _ in range(50) for part in collator.parts(rows)]
    pictures = [part for part in parts if len(part.views) == 1]
    assert 0.24 < len(pictures) / len(parts) < 0.36
    for part in pictures[:5]:
        rgb = np.asarray(part.views[0])
        assert part.views[0].size == (128, 128) and (rgb[0] == 255).all()
        assert (rgb[..., 0] == rgb[..., 1]).all()
    assert all(len(part.views) == 4 for part in SFTCollator(policy).parts(rows))
    assert collator(rows)["pixel_values"].shape[0] == len(rows)
    with pytest.raises(ValueError, match="picture_fraction"):
        SFTCollator(policy, picture_fraction=-0.1)
