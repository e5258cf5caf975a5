"""How much a policy reads its input image: code loss with the true, a shuffled and a blank image.

A policy that ignores the image writes the same program for every picture; its code loss is
the same whichever image it is shown. For ``--n`` rows of a corpus split this measures, with
the same weights:

- ``loss_true``, ``loss_shuffled`` (each row shown another row's image), ``loss_blank`` (a
  white image): mean per-token code loss (a policy that reads sizes keeps each row's own size,
  so this measures the pictures alone), and ``reliance`` = shuffled - true (nats/token; 0
  means the image is ignored); ``reliance_numbers`` / ``reliance_other``: the same over the
  tokens that hold a digit (the dimensions) and over the rest (keywords, names, structure);
- ``first_line_acc``: greedy programs whose first line (the family's comment, e.g.
  ``// Flat washer``) equals the target program's, against ``first_line_majority``, the
  accuracy of always writing the split's most common first line;
- ``distinct_greedy``: distinct greedy programs / rows.

Writes ``bench/results/image_reliance.json`` (one entry per checkpoint, keyed by its path)::

    .venv/bin/python bench/image_reliance.py --checkpoint runs/demo/sft/final --corpus runs/demo/corpus
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import write_json  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "image_reliance.json")


def code_losses(policy, images, codes, batch: int = 8) -> dict[str, float]:
    """Mean per-token code loss of ``codes`` given ``images``: over all tokens (``all``), over the
    tokens whose text holds a digit (``numbers``: the dimensions) and over the rest (``other``)."""
    sums, counts = collections.Counter(), collections.Counter()
    with torch.no_grad():
        for start in range(0, len(codes), batch):
            inputs = policy.collate(images[start : start + batch], codes[start : start + batch])
            logits = policy.model(**inputs).logits[:, :-1].float()
            labels = inputs["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none")
            for label, loss in zip(labels.reshape(-1).tolist(), losses.tolist(), strict=True):
                if label != -100:
                    digits = any(c.isdigit() for c in policy.tokenizer.decode([label]))
                    kind = "numbers" if digits else "other"
                    for name in ("all", kind):
                        sums[name] += loss
                        counts[name] += 1
    return {name: sums[name] / counts[name] for name in ("all", "numbers", "other") if counts[name]}


def first_line(code: str) -> str:
    return code.strip().splitlines()[0].strip() if code.strip() else ""


def measure(checkpoint: str, corpus: str, split: str, n: int, max_new_tokens: int) -> dict:
    from corpus.dataset import load
    from policies.inputs import PartInput, input_columns
    from rl.checkpoint import load_checkpoint

    policy = load_checkpoint(checkpoint)
    policy.model.eval()
    rows = load(corpus, split).select_columns([*input_columns(policy.config), "code"])
    rows = rows.select(range(min(n, len(rows))))
    images, codes = [PartInput.of(row) for row in rows], list(rows["code"])
    shuffled = [PartInput(images[(i + 1 + len(images) // 2) % len(images)].views, part.size)
                for i, part in enumerate(images)]
    blank = [PartInput(tuple(np.full((v.height, v.width), 255, np.uint8) for v in part.views), part.size)
             for part in images]
    started = time.perf_counter()
    losses = {name: code_losses(policy, imgs, codes) for name, imgs in
              (("true", images), ("shuffled", shuffled), ("blank", blank))}
    greedy = []
    for start in range(0, len(images), 8):
        rollout = policy.sample(images[start : start + 8], greedy=True, max_new_tokens=max_new_tokens)
        greedy.extend(rollout.texts)
    targets = [first_line(code) for code in codes]
    majority = collections.Counter(targets).most_common(1)[0][1] / len(targets)
    first_lines_right = sum(first_line(g) == t for g, t in zip(greedy, targets, strict=True))
    return {
        "corpus": corpus,
        "split": split,
        "rows": len(codes),
        "loss_true": losses["true"]["all"],
        "loss_shuffled": losses["shuffled"]["all"],
        "loss_blank": losses["blank"]["all"],
        "reliance": losses["shuffled"]["all"] - losses["true"]["all"],
        "number_tokens_loss_true": losses["true"].get("numbers"),
        "reliance_numbers": losses["shuffled"].get("numbers", 0.0) - losses["true"].get("numbers", 0.0),
        "reliance_other": losses["shuffled"].get("other", 0.0) - losses["true"].get("other", 0.0),
        "first_line_acc": first_lines_right / len(targets),
        "first_line_majority": majority,
        "distinct_greedy": len(set(greedy)) / len(greedy),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a saved policy folder (e.g. runs/sft/final)")
    parser.add_argument("--corpus", required=True, help="corpus folder the policy is measured on")
    parser.add_argument("--split", default="val", help="corpus split (default val)")
    parser.add_argument("--n", type=int, default=48, help="rows of the split (default 48)")
    parser.add_argument("--max_new_tokens", type=int, default=512, help="greedy program budget (default 512)")
    parser.add_argument("--out", default=OUT, help="result JSON (entries of other checkpoints are kept)")
    parser.add_argument("--note", default="", help="what the checkpoint is (kept in its entry)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = measure(args.checkpoint, args.corpus, args.split, args.n, args.max_new_tokens)
    print(json.dumps(result, indent=2))
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    results[f"{args.checkpoint}:{args.split}"] = {"note": args.note, **result} if args.note else result
    write_json(args.out, results)


if __name__ == "__main__":
    main()
