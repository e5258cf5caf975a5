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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


def corpus_families(dataset) -> tuple[str, ...]:
    """Sorted distinct families of a dataset with a ``family`` column (() without one)."""
    if "family" not in dataset.column_names:
        return ()
    return tuple(sorted(set(dataset["family"])))


def image_features(features, batch: int) -> torch.Tensor:
    """``(B, D)``: the mean over each image's tokens of image features as Idefics3 gives them,
    flattened ``(B * tokens, D)`` (``image_hidden_states``) or one ``(tokens, D)`` per image."""
    if isinstance(features, (list, tuple)):
        features = torch.cat([f.reshape(-1, f.shape[-1]) for f in features])
    return features.reshape(batch, -1, features.shape[-1]).mean(dim=1)


class ImageAuxModel(nn.Module):
    """``model`` (an Idefics3-shaped model: ``model.model.get_image_features``) plus the family head.

    ``forward(**batch, family=None, extra_pixel_values=None, extra_family=None)``: the model's
    outputs; with ``family`` (B,), ``loss`` = code loss + ``weight`` x the family cross-entropy
    over the batch's images and the extra ones. The Trainer scales the loss for gradient
    accumulation itself (``accepts_loss_kwargs = False``)."""

    accepts_loss_kwargs = False

    def __init__(self, model: nn.Module, families: Sequence[str], weight: float):
        super().__init__()
        if len(families) < 2:
            raise ValueError(f"the family objective needs at least 2 families, got {list(families)}")
        self.model = model
        self.families = tuple(families)
        self.weight = float(weight)
        self.family_head = nn.Linear(model.config.text_config.hidden_size, len(families))
        self._stats = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count

    @property
    def config(self):
        return self.model.config

    def extra_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(E, D)`` mean image-token features of ``pixel_values (E, 1, 3, S, S)``."""
        features = self.model.model.get_image_features(pixel_values=pixel_values).pooler_output
        return image_features(features, len(pixel_values))

    def forward(self, family=None, extra_pixel_values=None, extra_family=None, **batch):
        outputs = self.model(**batch)
        if family is None:
            return outputs
        features = image_features(outputs.image_hidden_states, len(family))
        if extra_pixel_values is not None and len(extra_pixel_values):
            features = torch.cat([features, self.extra_features(extra_pixel_values)])
            family = torch.cat([family, extra_family])
        logits = self.family_head(features.to(self.family_head.weight.dtype))
        family_loss = nn.functional.cross_entropy(logits, family)
        outputs.loss = outputs.loss + self.weight * family_loss
        with torch.no_grad():  # kept on the device: no host sync per step, read once per log line
            correct = (logits.argmax(dim=-1) == family).sum()
            step = torch.stack([family_loss * len(family), correct.to(family_loss.dtype),
                                torch.tensor(float(len(family)), device=family_loss.device)])
            self._stats = self._stats.to(step.device) + step.double()
        return outputs

    def pop_stats(self) -> dict[str, float]:
        """Mean family loss and accuracy over the images seen since the last call ({} if none)."""
        loss, correct, count = self._stats.tolist()
        self._stats.zero_()
        if count == 0:
            return {}
        return {"image/family_loss": loss / count, "image/family_acc": correct / count}


@dataclass
class FamilyCollator:
    """An SFT collator (:class:`policies.SFTCollator`) whose batches also carry ``family`` (B,),
    each row's index in ``families``, and ``extra`` random rows of ``dataset`` (image and
    family only) as ``extra_pixel_values`` / ``extra_family``. The draws are seeded by ``seed``
    (a resumed run draws afresh from that seed), and by the worker's id in a DataLoader worker,
    so that forked workers do not all draw the same images."""

    collate: object
    families: tuple[str, ...]
    dataset: object = None
    extra: int = 0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    _index: dict = field(init=False, repr=False)
    _worker: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed)
        self._index = {name: i for i, name in enumerate(self.families)}
        if self.extra and self.dataset is not None:
            keep = [name for name in ("image", "views", "family") if name in self.dataset.column_names]
            self.dataset = self.dataset.select_columns(keep)

    def _draws(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.id != self._worker:
            self._rng, self._worker = np.random.default_rng([self.seed, worker.id]), worker.id
        return self._rng

    def __call__(self, rows: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        batch = self.collate(rows)
        batch["family"] = torch.tensor([self._index[row["family"]] for row in rows], dtype=torch.long)
        if self.extra and self.dataset is not None:
            drawn = self.dataset.select(self._draws().integers(len(self.dataset), size=self.extra).tolist())
            pixels = self.collate.policy.prompt_inputs(list(drawn), device="cpu")["pixel_values"]
            batch["extra_pixel_values"] = pixels.to(batch["pixel_values"].dtype)
            families = [self._index[name] for name in drawn["family"]]
            batch["extra_family"] = torch.tensor(families, dtype=torch.long)
        return batch
