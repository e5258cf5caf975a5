"""What inference holds for one part, and how it chooses among the programs written for it.

:func:`prepare_inputs` turns what a user gave (pictures, a mesh, a size) into :class:`Inputs`: the
policy's input and the target the programs' renders are compared with
(:class:`reward.agreement.AgreementScorer`). :func:`choose` keeps one of several rendered programs:
a valid one before any invalid one, then by agreement with the input (``input``) or by how much
the other programs agree with it (``consensus``). Used by ``rl.predict`` and the web app.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renderer.views import to_uint8
from reward.agreement import AgreementScorer, AgreementTarget, picture_of
from rl.predict_files import mesh_size

VIEW_SIZE = 128
"""Pixels of the pictures and views programs are compared with."""


def own_views(result):
    """``(V, H, W)`` views of a valid result in its own frame (as corpus images), else None."""
    from corpus.dataset import target_views

    if not result.ok or len(result.faces) == 0:
        return None
    images, _ = target_views(result.vertices, result.faces, VIEW_SIZE)
    return images


def consensus_scores(results: list) -> list[float]:
    """For each result, the mean reward of the others scored with it as the target."""
    from reward.score import Scorer

    scorer = Scorer(threads=1)
    prepared = [scorer.prepare(r.vertices, r.faces) for r in results]
    return [
        float(np.mean([scorer(other, prepared[i]).total for j, other in enumerate(results) if j != i]))
        if len(results) > 1 else 0.0
        for i in range(len(results))
    ]


def choose(results: list, views: list, agreements: list, select: str) -> tuple[int, list]:
    """Index of the kept program and every candidate's score (None for invalid ones): the
    agreement's total (``input``) or the consensus score."""
    valid = [i for i, v in enumerate(views) if v is not None]
    scores: list = [None] * len(results)
    if not valid:
        return 0, scores
    if select == "consensus":
        for i, score in zip(valid, consensus_scores([results[i] for i in valid]), strict=True):
            scores[i] = score
    else:
        for i in valid:
            scores[i] = agreements[i].total
    return max(valid, key=lambda i: (scores[i], -i)), scores


@dataclass(frozen=True)
class Inputs:
    """What inference holds for one part (:func:`prepare_inputs`)."""

    image: object
    """The policy's input: a :class:`policies.inputs.PartInput` (its views and, when known, size)."""
    pictures: np.ndarray
    """``(P, H, W) float32`` pictures in [0, 1] the programs are compared with, iso first."""
    mesh: tuple | None
    """``(vertices, faces)`` of a mesh of the part (then compared with it, not the pictures), or None."""
    target: AgreementTarget
    """``pictures`` and ``mesh`` prepared by :class:`reward.agreement.AgreementScorer`."""


def prepare_inputs(images, pictures: np.ndarray | None = None, mesh=None, size=None) -> Inputs:
    """:class:`Inputs` of the policy's ``images`` (one square RGB picture, taken as the iso view, or
    the four views iso, front, right, top), the ``pictures`` programs are compared with (``(P, H,
    W)`` or ``(H, W)``, iso first, :data:`VIEW_SIZE` pixels; default: ``images`` in grayscale, or
    with no image the mesh's own views), an optional ``mesh`` (then the policy is shown its four
    views and its size) and ``size`` (x, y, z mm; a mesh's own by default). ``ValueError`` when
    the mesh has no usable face."""
    from policies.inputs import PartInput

    images = tuple(images) if isinstance(images, (list, tuple)) else (images,)
    if pictures is None and images:
        pictures = np.stack([picture_of(image, VIEW_SIZE) for image in images])
    target = AgreementScorer(VIEW_SIZE).prepare(pictures, mesh)  # a mesh's target ignores pictures
    if mesh is not None:
        images = tuple(to_uint8(view) for view in target.pictures)
        size = size or mesh_size(mesh)
        pictures = target.pictures if pictures is None else pictures
    pictures = np.asarray(pictures, np.float32)
    pictures = pictures[None] if pictures.ndim == 2 else pictures
    return Inputs(PartInput(images, size), pictures, mesh, target)
