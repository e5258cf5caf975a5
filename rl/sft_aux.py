"""The auxiliary image objective of SFT: the image tokens must tell which family a part is.

A from-scratch policy trained on the code loss alone learns to write plausible programs
while hardly reading the image: the part's family is decided by a handful of its ~250 code
tokens, so the gradient reaching the vision tower is tiny, and validation loss with the
true image equals the loss with a shuffled one (``bench/image_reliance.py``).
:class:`ImageAuxModel` adds a second loss beside the code loss: a linear head on the mean of
the image tokens the text model sees (the connector's output) predicts the family from the
image (cross-entropy), weighted by ``SFTConfig.image_aux_weight``.

Length-grouped batches hold programs of similar length, which mostly means one family per
batch; a head trained on such a stream chases each batch's family. So :class:`FamilyCollator`
also draws ``extra`` random train images per batch, seen by this objective only (their
vision features cost far less than a program's tokens). The head only shapes training; the
saved policy is ``policy.model`` without it::

    families = corpus_families(train)              # sorted family names of the train split
    model = ImageAuxModel(policy.model, families, weight=0.5)
    collator = FamilyCollator(SFTCollator(policy), families, train, extra=8, seed=0)
    Trainer(model=model, data_collator=collator, ...)

``model.pop_stats()`` gives the mean family loss and accuracy since the last call (the
trainer's metrics line shows them as ``image/family_loss`` and ``image/family_acc``).

The family says which program to write, not its numbers. With ``param_weight > 0`` a second
linear head regresses what the corpus stores of each part (:class:`ParamTable`): its family's
numeric parameters (``params``: lengths, diameters, counts, ...) and the log of its bounding
box, each z-scored over the train split, the loss a mean squared error over the ones the
part has (``image/param_loss``), so that the image tokens carry sizes, counts and positions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

EXTENTS = ("extent/x", "extent/y", "extent/z")
"""The targets every part has: the log of its bounding-box size (mm), z-scored."""


class ParamTable:
    """The regression targets of the parameter objective, from a train split's ``family``,
    ``params`` (JSON) and ``extents``: one column per family parameter with a number and per
    bounding-box axis (:data:`EXTENTS`), z-scored over the rows that have it (a column whose
    values never vary is left out)."""

    def __init__(self, dataset):
        if hasattr(dataset, "select_columns"):  # a datasets.Dataset: never decode its pictures here
            dataset = dataset.select_columns(["family", "params", "extents"])
        values: dict[str, list[float]] = {}
        for row in _param_rows(dataset):
            for key, value in row.items():
                values.setdefault(key, []).append(value)
        stats = {k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}
        self.keys = tuple(sorted(k for k, (_, std) in stats.items() if std > 1e-9))
        self._stats = {k: stats[k] for k in self.keys}
        self._index = {k: i for i, k in enumerate(self.keys)}

    def targets(self, rows: Sequence[Mapping]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values (B, K), mask (B, K))`` of ``rows`` (each with family, params, extents)."""
        values, mask = torch.zeros(len(rows), len(self.keys)), torch.zeros(len(rows), len(self.keys))
        for i, row in enumerate(_param_rows(rows)):
            for key, value in row.items():
                if key in self._index:
                    mean, std = self._stats[key]
                    values[i, self._index[key]], mask[i, self._index[key]] = (value - mean) / std, 1.0
        return values, mask


def _param_rows(rows):
    """Per row, ``{key: number}``: its family's numeric params and the log of its extents."""
    for row in rows:
        params = json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]
        numbers = {f"{row['family']}/{k}": float(v) for k, v in params.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        sizes = zip(EXTENTS, row["extents"], strict=True)
        numbers.update({key: math.log(max(float(extent), 1e-3)) for key, extent in sizes})
        yield numbers


def corpus_families(dataset) -> tuple[str, ...]:
    """Sorted distinct families of a dataset with a ``family`` column (() without one)."""
    if "family" not in dataset.column_names:
        return ()
    return tuple(sorted(set(dataset["family"])))


def image_tokens(features, batch: int) -> torch.Tensor:
    """``(B, tokens, D)``: image features as Idefics3 gives them, flattened ``(B * tokens, D)``
    (``image_hidden_states``) or one ``(tokens, D)`` per image."""
    if isinstance(features, (list, tuple)):
        features = torch.cat([f.reshape(-1, f.shape[-1]) for f in features])
    return features.reshape(batch, -1, features.shape[-1])


def image_features(features, batch: int) -> torch.Tensor:
    """``(B, D)``: the mean over each image's tokens (:func:`image_tokens`)."""
    return image_tokens(features, batch).mean(dim=1)


class ImageAuxModel(nn.Module):
    """``model`` (an Idefics3-shaped model: ``model.model.get_image_features``) plus the family head.

    ``forward(**batch, family=None, extra_pixel_values=None, extra_family=None)``: the model's
    outputs; with ``family`` (B,), ``loss`` = code loss + ``weight`` x the family cross-entropy
    over the batch's images and the extra ones. The Trainer scales the loss for gradient
    accumulation itself (``accepts_loss_kwargs = False``)."""

    accepts_loss_kwargs = False

    def __init__(self, model: nn.Module, families: Sequence[str], weight: float, params: int = 0,
                 param_weight: float = 0.0):
        super().__init__()
        if len(families) < 2:
            raise ValueError(f"the family objective needs at least 2 families, got {list(families)}")
        self.model = model
        self.families = tuple(families)
        self.weight = float(weight)
        hidden = model.config.text_config.hidden_size
        self.family_head = nn.Linear(hidden, len(families))
        self.param_weight = float(param_weight)
        self.param_head = nn.Linear(hidden, params) if params and param_weight > 0 else None
        self._stats = torch.zeros(5, dtype=torch.float64)  # loss sum, correct, count, param loss, batches

    @property
    def config(self):
        return self.model.config

    def extra_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(E, D)`` mean image-token features of ``pixel_values (E, 1, 3, S, S)``."""
        features = self.model.model.get_image_features(pixel_values=pixel_values).pooler_output
        return image_features(features, len(pixel_values))

    def forward(self, family=None, extra_pixel_values=None, extra_family=None, param_values=None,
                param_mask=None, **batch):
        outputs = self.model(**batch)
        if family is None:
            return outputs
        features = image_features(outputs.image_hidden_states, len(family))
        if extra_pixel_values is not None and len(extra_pixel_values):
            features = torch.cat([features, self.extra_features(extra_pixel_values)])
            family = torch.cat([family, extra_family])
        features = features.to(self.family_head.weight.dtype)
        logits = self.family_head(features)
        family_loss = nn.functional.cross_entropy(logits, family)
        outputs.loss = outputs.loss + self.weight * family_loss
        param_loss = torch.zeros((), device=family_loss.device)
        if self.param_head is not None and param_values is not None:
            param_loss = param_error(self.param_head(features), param_values, param_mask)
            outputs.loss = outputs.loss + self.param_weight * param_loss
        with torch.no_grad():  # kept on the device: no host sync per step, read once per log line
            correct = (logits.argmax(dim=-1) == family).sum()
            step = torch.stack([family_loss * len(family), correct.to(family_loss.dtype),
                                torch.tensor(float(len(family)), device=family_loss.device),
                                param_loss.detach().to(family_loss.dtype), torch.ones_like(family_loss)])
            self._stats = self._stats.to(step.device) + step.double()
        return outputs

    def pop_stats(self) -> dict[str, float]:
        """Mean family loss and accuracy over the images seen since the last call ({} if none)."""
        loss, correct, count, param_loss, batches = self._stats.tolist()
        self._stats.zero_()
        if count == 0:
            return {}
        stats = {"image/family_loss": loss / count, "image/family_acc": correct / count}
        if self.param_head is not None:
            stats["image/param_loss"] = param_loss / batches
        return stats


def param_error(predicted: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``predicted (N, K)`` against ``values (M, K)`` over ``mask``'s ones
    (the first ``M <= N`` rows: the extra rows of the family objective carry no targets)."""
    predicted = predicted[: len(values)]
    mask = mask.to(predicted.dtype)
    return ((predicted - values.to(predicted.dtype)) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


@dataclass
class FamilyCollator:
    """An SFT collator (:class:`policies.SFTCollator`) whose batches also carry ``family`` (B,),
    each row's index in ``families``, and ``extra`` random rows of ``dataset`` (image and
    family only) as ``extra_pixel_values`` / ``extra_family``. The draws are seeded by ``seed``
    (a resumed run draws afresh from that seed), and by the worker's id in a DataLoader worker,
    so that forked workers do not all draw the same images. With a :class:`ParamTable`
    (``params``), every row, extra ones too, also carries ``param_values`` / ``param_mask``."""

    collate: object
    families: tuple[str, ...]
    dataset: object = None
    extra: int = 0
    seed: int = 0
    params: ParamTable | None = None
    _rng: np.random.Generator = field(init=False, repr=False)
    _index: dict = field(init=False, repr=False)
    _worker: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed)
        self._index = {name: i for i, name in enumerate(self.families)}
        if self.extra and self.dataset is not None:
            wanted = ("image", "views", "family") + (("params", "extents") if self.params else ())
            keep = [name for name in wanted if name in self.dataset.column_names]
            self.dataset = self.dataset.select_columns(keep)

    def _draws(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.id != self._worker:
            self._rng, self._worker = np.random.default_rng([self.seed, worker.id]), worker.id
        return self._rng

    def __call__(self, rows: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        batch = self.collate(rows)
        batch["family"] = torch.tensor([self._index[row["family"]] for row in rows], dtype=torch.long)
        shown = list(rows)
        if self.extra and self.dataset is not None:
            drawn = self.dataset.select(self._draws().integers(len(self.dataset), size=self.extra).tolist())
            pixels = self.collate.policy.prompt_inputs(list(drawn), device="cpu")["pixel_values"]
            batch["extra_pixel_values"] = pixels.to(batch["pixel_values"].dtype)
            families = [self._index[name] for name in drawn["family"]]
            batch["extra_family"] = torch.tensor(families, dtype=torch.long)
            shown += list(drawn)
        if self.params is not None:
            batch["param_values"], batch["param_mask"] = self.params.targets(shown)
        return batch
