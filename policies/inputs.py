"""What a policy is shown of a part: its views and, when known, its size.

Owns :class:`PartInput` (one part's pictures and bounding-box size), how a policy turns it
into its one input image (:func:`policy_image`: the iso view, or the four canonical views
tiled 2x2) and its prompt text (:func:`prompt_text`: the instruction, then the size in mm),
the size's text form (:func:`size_text`, :func:`parse_size`), and :class:`SFTCollator`, which
shows SFT a fraction of its rows without their size::

    part = PartInput.of(row)                    # a corpus row: its four views and its extents
    part = PartInput.of(picture)                # one picture: placed as the iso view, no size
    part = PartInput((iso, front, right, top), size=(135, 40, 7.5))
    image = policy_image(part, config)          # what the vision tower sees
    text = prompt_text(part, config)            # "Write the ... part. Size: 135 x 40 x 7.5 mm."
                                                # (+ a similar part's program, policies.exemplars)

The four views are :data:`renderer.views.CANONICAL_CAMERAS`' (iso, front, right, top),
the pictures the reward compares a prediction with. A single picture in ``tile`` mode
fills the iso quarter; the other three are left blank (the background's colour).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from PIL import Image

from policies.pictures import as_rgb, normalise_picture, restyle


@dataclass(frozen=True)
class PartInput:
    """One part as a policy sees it: 1 picture (the iso view) or 4 (iso, front, right, top), its
    bounding-box size in mm (x, y, z) when the input reveals it, its corpus ``id`` (a corpus row's;
    an exemplar is never the part itself) and the ``exemplar`` program shown with it
    (:mod:`policies.exemplars`; the policy fills it in when it reads exemplars)."""

    views: tuple
    size: tuple[float, float, float] | None = None
    id: str | None = None
    exemplar: str | None = None

    def __post_init__(self):
        if len(self.views) not in (1, 4):
            raise ValueError(f"a part is shown by 1 picture or 4 views, got {len(self.views)}")
        if self.size is not None:
            object.__setattr__(self, "size", check_size(self.size))

    @classmethod
    def of(cls, item) -> PartInput:
        """A :class:`PartInput` from itself, a corpus row (``views`` or ``image``, ``extents``,
        ``id``), or one picture (a PIL image or an array)."""
        if isinstance(item, PartInput):
            return item
        if isinstance(item, Mapping):
            views = item.get("views") or [item["image"]]
            return cls(tuple(views), item.get("extents"), item.get("id"))
        return cls((item,))

    def without_size(self) -> PartInput:
        return replace(self, size=None)


def input_columns(config) -> list[str]:
    """The corpus columns a policy with ``config`` reads: ``image``, and ``views`` / ``extents``
    when it is shown the tile / the size; ``views`` and ``id`` when it looks up exemplars."""
    views = config.views == "tile" or config.exemplars
    return ["image"] + (["views"] if views else []) + (["extents"] if config.size_in_prompt else []) + (
        ["id"] if config.exemplars else [])


def check_size(size) -> tuple[float, float, float]:
    """``size`` as three positive finite floats; ValueError naming what is wrong otherwise."""
    try:
        values = tuple(float(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"a size is three positive numbers in mm, got {size!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"a size is three positive numbers in mm, got {size!r}")
    return values


def parse_size(text: str) -> tuple[float, float, float]:
    """``"135x40x7.5"`` (also ``,`` or spaces between) -> (135.0, 40.0, 7.5)."""
    parts = text.lower().replace(",", "x").replace("*", "x").replace(" ", "x").split("x")
    try:
        return check_size([float(p) for p in parts if p])
    except ValueError:
        raise ValueError(f"--size must be three positive numbers in mm like 40x30x12, got {text!r}") from None


def format_mm(value: float) -> str:
    """A length as programs write it: 0.1 mm, no trailing zeros (``40``, ``7.5``, ``0.8``)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def size_text(size: Sequence[float]) -> str:
    """``Size: 135 x 40 x 7.5 mm.``"""
    return "Size: " + " x ".join(format_mm(v) for v in size) + " mm."


EXEMPLAR_HEADING = "The program of a similar part:"


def prompt_text(part: PartInput, config) -> str:
    """The prompt's text after the image: the instruction, the size when the policy reads sizes
    (``config.size_in_prompt``) and the part has one, then the exemplar program when it has one."""
    text = config.instruction
    if config.size_in_prompt and part.size is not None:
        text = f"{text} {size_text(part.size)}"
    if part.exemplar is not None:
        text = f"{text}\n{EXEMPLAR_HEADING}\n{part.exemplar}"
    return text


def policy_image(part: PartInput, config) -> Image.Image:
    """The one image the policy's vision side sees (``config.views``): the iso view, or the 2x2 tile."""
    if config.views == "iso":
        return as_rgb(part.views[0])
    return tile(part.views)


def tile(views: Sequence) -> Image.Image:
    """iso, front / right, top in a 2x2 grid at the first view's size per cell; with one picture,
    it fills the iso cell and the rest is the background (the picture's corner colour)."""
    first = as_rgb(views[0])
    width, height = first.size
    background = first.getpixel((0, 0))
    out = Image.new("RGB", (2 * width, 2 * height), background)
    for i, view in enumerate(views):
        image = as_rgb(view)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        out.paste(image, ((i % 2) * width, (i // 2) * height))
    return out


@dataclass
class SFTCollator:
    """``data_collator`` for ``transformers.Trainer`` / TRL: corpus rows -> ``policy.collate``.

    Each row is shown as :meth:`PartInput.of` makes it (its views and size); a fraction
    ``picture_fraction`` of them as one picture a user might take instead (the iso view through
    :func:`policies.pictures.restyle` and :func:`policies.pictures.normalise_picture`, the path a
    user's picture takes), and a fraction ``size_dropout`` without the size, so that a policy that
    reads sizes also writes programs for a picture alone. When the policy reads exemplars, a
    fraction ``exemplar_self`` of rows is shown its own program as the exemplar (the rest the
    nearest other part's), so that the decoder learns to copy what it is shown as well as to edit
    it. All are drawn afresh per batch (seeded by ``seed`` and a DataLoader worker's id). A class,
    not a closure, so it pickles. Use ``remove_unused_columns=False``.
    """

    policy: object
    size_dropout: float = 0.0
    seed: int = 0
    picture_fraction: float = 0.0
    exemplar_self: float = 0.0
    _rng: random.Random = field(init=False, repr=False)
    _worker: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        for name in ("size_dropout", "picture_fraction", "exemplar_self"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        self._rng = random.Random(self.seed)

    def parts(self, rows: Sequence[Mapping]) -> list[PartInput]:
        """The rows as the policy is shown them, some without their size."""
        from torch.utils.data import get_worker_info

        worker = get_worker_info()
        if worker is not None and worker.id != self._worker:
            self._rng, self._worker = random.Random(f"{self.seed}/{worker.id}"), worker.id
        parts = [PartInput.of(row) for row in rows]
        if self.picture_fraction > 0:
            parts = [self.as_picture(p) if self._rng.random() < self.picture_fraction else p for p in parts]
        if self.size_dropout > 0:
            parts = [p.without_size() if self._rng.random() < self.size_dropout else p for p in parts]
        if self.exemplar_self > 0 and self.policy.config.exemplars:
            parts = [replace(p, exemplar=row["code"]) if self._rng.random() < self.exemplar_self else p
                     for p, row in zip(parts, rows, strict=True)]
        return parts

    def as_picture(self, part: PartInput) -> PartInput:
        """``part`` shown as one picture a user might take of it: its iso view restyled, then
        normalised as a user's picture is."""
        iso = as_rgb(part.views[0])
        return replace(part, views=(normalise_picture(restyle(iso, self._rng), iso.width),))

    def __call__(self, rows: Sequence[Mapping]) -> dict:
        return self.policy.collate(self.parts(rows), [row["code"] for row in rows])
