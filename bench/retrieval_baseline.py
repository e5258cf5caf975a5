"""What the pictures alone say about a part: the nearest training part by pixels, graded by the protocol.

A policy that reads its input as well as a plain lookup would write, for each test part, at
least something like the training part whose four views look most alike. This bench takes,
for the first ``--n`` rows of a split, the training row whose four views (grey, ``--pixels``
px a side each) are nearest in squared pixel distance, and grades that training part's own mesh
against the test part with the evaluation's protocol (:func:`reward.metrics.protocol_metrics`:
unit cube, independent samples, volumetric IoU). No program is run: the training meshes are the
corpus's. Reported per split:

- ``nn1_protocol_iou`` / ``nn1_cd_x1e3``: the nearest part's protocol IoU (mean) and CD x1e3
  (median), the figures ``rl.eval`` reports for a policy's greedy programs;
- ``best_of_5_iou``: the best of the five nearest (an upper bound for choosing among them);
- ``nn_family_acc``: nearest part of the same family;
- ``same_family_other_part_iou``: a training part of the right family drawn at random (seed 0),
  which is what knowing the family alone is worth;
- with ``--checkpoint``, ``policy_features``: the same lookup in the policy's own image features
  (its image tokens after the connector, each feature z-scored over train): whether what the
  vision tower passes to the decoder tells parts apart as well as the pixels do.

Writes ``bench/results/retrieval_baseline.json`` (one entry per corpus and split)::

    .venv/bin/python bench/retrieval_baseline.py --corpus runs/demo/corpus --split test --n 40
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.common import add_entry  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "retrieval_baseline.json")


def view_features(row, pixels: int) -> np.ndarray:
    """A row's four views, grey, ``pixels`` a side, in [0, 1], as one vector (the exemplar index's
    features, :func:`policies.exemplars.view_vector`)."""
    from policies.exemplars import view_vector

    return np.concatenate([view_vector(v, pixels) for v in row["views"]])


def policy_features(checkpoint: str, rows, batch: int = 32) -> np.ndarray:
    """Each row's image tokens as the policy's decoder receives them, flattened to one vector."""
    import torch

    from policies.inputs import PartInput, policy_image
    from policies.tiny import TinyPolicy, pixel_values
    from rl.sft_aux import image_tokens

    policy = TinyPolicy.load(checkpoint)
    out = []
    for start in range(0, len(rows), batch):
        chunk = rows.select(range(start, min(start + batch, len(rows))))
        images = [policy_image(PartInput.of(r), policy.config) for r in chunk]
        with torch.no_grad():
            tokens = policy.model.model.get_image_features(
                pixel_values=pixel_values(images, policy.config.image_size)).pooler_output
        out.append(image_tokens(tokens, len(images)).reshape(len(images), -1).numpy())
    return np.concatenate(out)


def nearest_by_policy(checkpoint: str, train, rows, corpus: str) -> dict:
    """Protocol IoU (mean) and family accuracy of the nearest training part in the policy's features."""
    from corpus.dataset import load_mesh

    known, asked = policy_features(checkpoint, train), policy_features(checkpoint, rows)
    mean, std = known.mean(axis=0), known.std(axis=0) + 1e-6
    known, asked = (known - mean) / std, (asked - mean) / std
    ious, same = [], []
    for row, feature in zip(rows, asked, strict=True):
        nearest = train[int(np.argmin(((known - feature) ** 2).sum(axis=1)))]
        ious.append(grade(corpus, nearest, load_mesh(corpus, row))["iou"] or 0.0)
        same.append(nearest["family"] == row["family"])
    return {"checkpoint": checkpoint, "nn1_protocol_iou": float(np.mean(ious)),
            "nn_family_acc": float(np.mean(same))}


def grade(corpus: str, candidate, target_mesh) -> dict:
    """Protocol record of a training row's mesh as the prediction for ``target_mesh``."""
    from corpus.dataset import load_mesh
    from reward.metrics import protocol_metrics

    vertices, faces = load_mesh(corpus, candidate)
    prediction = types.SimpleNamespace(status="ok", vertices=vertices, faces=faces)
    return protocol_metrics(prediction, *target_mesh, seed=0)


def measure(corpus: str, split: str, n: int, pixels: int, checkpoint: str | None = None) -> dict:
    from corpus.dataset import load, load_mesh

    started = time.perf_counter()
    train, rows = load(corpus, "train"), load(corpus, split)
    features = np.stack([view_features(r, pixels) for r in train])
    by_family: dict[str, list[int]] = {}
    for i, family in enumerate(train["family"]):
        by_family.setdefault(family, []).append(i)
    rng = random.Random(0)
    rows = rows.select(range(min(n, len(rows))))
    per_row = []
    for row in rows:
        distance = ((features - view_features(row, pixels)) ** 2).sum(axis=1)
        nearest = [int(i) for i in np.argsort(distance)[:5]]
        target = load_mesh(corpus, row)
        records = [grade(corpus, train[i], target) for i in nearest]
        same = by_family.get(row["family"])
        drawn = grade(corpus, train[rng.choice(same)], target)["iou"] if same else None
        per_row.append({
            "id": row["id"], "family": row["family"], "nearest": train[nearest[0]]["id"],
            "nn1_iou": records[0]["iou"] or 0.0, "nn1_cd": records[0]["cd"],
            "best_of_5_iou": max(r["iou"] or 0.0 for r in records),
            "same_family_other_part_iou": drawn,
        })
    drawn = [r["same_family_other_part_iou"] for r in per_row if r["same_family_other_part_iou"] is not None]
    return {
        "corpus": corpus, "split": split, "rows": len(per_row), "pixels": pixels, "train_rows": len(train),
        "nn1_protocol_iou": float(np.mean([r["nn1_iou"] for r in per_row])),
        "nn1_cd_x1e3": float(np.median([r["nn1_cd"] * 1e3 for r in per_row])),
        "best_of_5_iou": float(np.mean([r["best_of_5_iou"] for r in per_row])),
        "nn_family_acc": float(np.mean([r["nearest"].rsplit("-", 1)[0] == r["family"] for r in per_row])),
        "same_family_other_part_iou": float(np.mean(drawn)) if drawn else None,
        "policy_features": nearest_by_policy(checkpoint, train, rows, corpus) if checkpoint else None,
        "seconds": time.perf_counter() - started,
        "per_row": per_row,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="a corpus folder (corpus.build's output)")
    parser.add_argument("--split", default="test", help="split graded (default test)")
    parser.add_argument("--n", type=int, default=40, help="first rows of the split (default 40)")
    parser.add_argument("--pixels", type=int, default=48, help="side of each view compared (default 48)")
    parser.add_argument("--checkpoint", default=None, help="tiny policy folder: look up in its features too")
    parser.add_argument("--out", default=OUT, help="result JSON (entries of other corpora are kept)")
    args = parser.parse_args()
    result = measure(args.corpus, args.split, args.n, args.pixels, args.checkpoint)
    add_entry(args.out, f"{args.corpus}:{args.split}:{result['rows']}", result)


if __name__ == "__main__":
    main()
