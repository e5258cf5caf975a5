"""Exemplars: the program of the most alike training part, shown to the policy with the picture.

A plain lookup, the training part whose four views are nearest in pixels, grades 0.54-0.60 in
protocol IoU on the main job's ``test`` split, twice what the policy writes from the picture alone
(``bench/retrieval_baseline.py``). With ``policy.exemplars`` on, the prompt also holds that part's
program, and the policy learns to edit it (its structure is often right; its numbers are the
other part's) into the program of the part it is shown.

Owns :class:`ExemplarIndex`: the training parts' views (grey, ``pixels`` a side, flattened),
their ids and programs; :meth:`~ExemplarIndex.nearest` for a :class:`~policies.inputs.PartInput`
(all four views, or the iso view alone for a single picture), never the part itself (same id: an
SFT or PPO row gets its nearest *other* part, as a test part does); saved beside the weights as
``exemplars.npz`` (plain arrays, loaded without pickle)::

    index = ExemplarIndex.build(load(corpus, "train"))
    code = index.nearest(PartInput.of(row))      # a training program, never row's own
    index.save("runs/sft/final"); index = ExemplarIndex.load("runs/sft/final")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from renderer.fit import scaled_program

FILE = "exemplars.npz"
DEFAULT_PIXELS = 32
SCALED = "retrieved_part"
"""The module a retrieved program is wrapped in to scale it (:meth:`ExemplarIndex.program`)."""


def view_vector(view, pixels: int) -> np.ndarray:
    """One picture, grey, ``pixels`` a side, in [0, 1], flattened (float32)."""
    from policies.pictures import as_rgb

    grey = as_rgb(view).convert("L").resize((pixels, pixels))
    return np.asarray(grey, dtype=np.float32).ravel() / 255.0


class ExemplarIndex:
    """Training parts to look up by their views: ``features (N, 4 * pixels**2)`` (iso, front, right,
    top), ``ids``, ``codes`` and, when known, ``sizes (N, 3)`` (bounding boxes in mm)."""

    def __init__(self, features: np.ndarray, ids: Sequence[str], codes: Sequence[str], pixels: int,
                 sizes=None):
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != 4 * pixels * pixels:
            raise ValueError(f"exemplar features must be (N, {4 * pixels * pixels}), got {features.shape}")
        if not len(features) == len(ids) == len(codes) or len(features) == 0:
            raise ValueError("an exemplar index needs as many ids and codes as feature rows, at least one")
        self.features, self.pixels = features, pixels
        self.ids, self.codes = list(ids), list(codes)
        self.sizes = None if sizes is None else np.asarray(sizes, dtype=np.float64).reshape(len(ids), 3)
        self._row_of = {part_id: i for i, part_id in enumerate(self.ids)}

    @classmethod
    def build(cls, rows: Iterable[Mapping], pixels: int = DEFAULT_PIXELS) -> ExemplarIndex:
        """An index of corpus rows (``views``, ``id``, ``code``, and ``extents`` when every row
        has them), e.g. the train split."""
        features, ids, codes, sizes = [], [], [], []
        for row in rows:
            if len(row["views"]) != 4:
                raise ValueError(f"exemplar row {row['id']!r} has {len(row['views'])} views, not 4")
            features.append(np.concatenate([view_vector(v, pixels) for v in row["views"]]))
            ids.append(row["id"])
            codes.append(row["code"])
            sizes.append(row.get("extents"))
        known = bool(sizes) and all(size is not None for size in sizes)
        return cls(np.stack(features) if features else np.zeros((0, 4 * pixels * pixels)), ids, codes, pixels,
                   sizes if known else None)

    def distances(self, part) -> np.ndarray:
        """Squared pixel distance of every indexed part to ``part`` (its 4 views, or 1 as the iso view)."""
        block = self.pixels * self.pixels
        asked = np.concatenate([view_vector(v, self.pixels) for v in part.views])
        known = self.features[:, : len(asked)] if len(part.views) == 1 else self.features
        if len(asked) != known.shape[1] or len(asked) % block:
            raise ValueError(f"a part is looked up by 1 or 4 views, got {len(part.views)}")
        return ((known - asked) ** 2).sum(axis=1)

    def nearest_row(self, part) -> int:
        """Row of the nearest indexed part other than ``part`` itself (same ``id``)."""
        return self.nearest_rows(part, 1)[0]

    def nearest_rows(self, part, n: int) -> list[int]:
        """Rows of the ``n`` nearest indexed parts other than ``part`` itself, nearest first (fewer
        when the index holds fewer other parts)."""
        distance = self.distances(part)
        own = self._row_of.get(getattr(part, "id", None))
        if own is not None:
            if len(self.ids) == 1:
                raise ValueError("an exemplar index of one part has no other part to show")
            distance[own] = np.inf
        n = min(n, len(distance) - (own is not None))
        nearest = np.argpartition(distance, n - 1)[:n] if n < len(distance) else np.arange(len(distance))
        return [int(i) for i in sorted(nearest, key=lambda i: (distance[i], i))][:n]

    def nearest(self, part) -> str:
        """Program of the nearest indexed part other than ``part`` itself."""
        return self.codes[self.nearest_row(part)]

    def program(self, row: int, size=None) -> str:
        """The program of ``row``, scaled per axis to ``size`` (mm) when both sizes are known (the
        lookup compares views in each part's own frame, so a look-alike part may be any size).

        The program becomes the body of a module that is called scaled: OpenSCAD allows module,
        function and variable definitions in a module's body, not in a transform's block."""
        code = self.codes[row]
        if size is None or self.sizes is None or not np.all(self.sizes[row] > 0):
            return code
        return scaled_program(code, np.asarray(size, dtype=np.float64) / self.sizes[row], SCALED)

    def save(self, directory: str) -> str:
        path = os.path.join(directory, FILE)
        sizes = {} if self.sizes is None else {"sizes": self.sizes}
        np.savez_compressed(
            path, features=self.features.astype(np.float16), ids=np.array(self.ids, dtype=str),
            codes=np.array(self.codes, dtype=str), pixels=np.array(self.pixels), **sizes)
        return path

    @classmethod
    def load(cls, directory: str) -> ExemplarIndex:
        """The index :meth:`save` wrote (FileNotFoundError when there is none); no pickle is read."""
        with np.load(os.path.join(directory, FILE), allow_pickle=False) as saved:
            ids, codes = saved["ids"].tolist(), saved["codes"].tolist()
            sizes = saved["sizes"] if "sizes" in saved.files else None
            return cls(saved["features"], ids, codes, int(saved["pixels"]), sizes)


def shown(policy, images) -> list:
    """``images`` (pictures, corpus rows or :class:`~policies.inputs.PartInput`) as the policy is
    shown them: with the exemplar program filled in when ``policy.config.exemplars`` is on."""
    from dataclasses import replace

    from policies.inputs import PartInput

    parts = [PartInput.of(item) for item in images]
    if not policy.config.exemplars:
        return parts
    index = policy.exemplars
    if index is None:
        raise RuntimeError("policy.exemplars is on but the policy holds no exemplar index (policy.exemplars)")
    return [p if p.exemplar is not None else replace(p, exemplar=index.nearest(p)) for p in parts]


def load_index(directory: str, config) -> ExemplarIndex | None:
    """A saved policy's index: None when ``config.exemplars`` is off; CheckpointError when it is on
    and ``directory`` holds no readable ``exemplars.npz``."""
    from policies.base import CheckpointError, first_line

    if not config.exemplars:
        return None
    try:
        return ExemplarIndex.load(directory)
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint {directory!r}: policy.exemplars is on but {FILE} is unusable ({first_line(error)})"
        ) from None
