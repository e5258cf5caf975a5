"""Self-distillation: does training on its own programs, their numbers solved to the size, teach the
policy to write sizes?

The main job's policy reads the size in its prompt but writes its numbers mostly from the prior
(README, "What limits the policy"); :mod:`renderer.dimensions` solves a greedy program's own
numbers to the size afterwards. This bench asks whether the policy can learn that step:

1. ``rl.eval --split train --k 0 --dimension true`` writes the checkpoint's greedy program for
   ``--n_train`` train images and the same program dimensioned to the part's size. A dimensioned
   program is kept when it reached the size in its own numbers (no ``scale``), renders, and its
   protocol IoU against the train target is at least ``--min_iou`` and at least the greedy one's
   (training may use the train split's targets).
2. Two fine-tunes of the checkpoint, identical but for their rows: ``control`` (the train
   split's own programs) and ``distill`` (those plus each kept program ``--repeat`` times, with
   its part's views and size), ``--steps`` steps of ``--batch`` rows each, AdamW at a constant
   ``--lr``, the policy's own loss through :class:`policies.SFTCollator` with the main job's
   size dropout and picture rows; same seed, bf16 autocast where the CPU has it.
3. Both evaluated greedily (``--k 0``) on ``test`` and ``test_ood`` and paired with
   :func:`rl.compare.compare`: the greedy programs (what the policy itself writes; ``size
   written`` in their ``metrics.json``) and the dimensioned ones.

    .venv/bin/python bench/self_distill.py --run /tmp/fresh6/runs/demo --policy sft --label f6_sft

Writes under ``--label`` in ``bench/results/self_distill.json``; work folders go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import add_entry, records_by_mode  # noqa: E402
from bench.expert_iteration import run  # noqa: E402
from bench.fit_size import paired_figures  # noqa: E402

RESULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "self_distill.json")


def kept_programs(records_path: str, min_iou: float) -> tuple[dict[str, str], dict]:
    """``{train id: dimensioned program}`` worth training on, and counts."""
    found = records_by_mode(records_path, ("greedy", "dimensioned"))
    greedy, solved = found["greedy"], found["dimensioned"]
    kept = {}
    for target, record in solved.items():
        extra = record["extra"]
        before = greedy[target]["extra"].get("protocol_iou") or 0.0
        iou = extra.get("protocol_iou")
        if extra.get("dimension_clean") and extra.get("protocol_valid") and iou is not None \
                and iou >= min_iou and iou >= before:
            kept[target] = record["code"]
    counts = {"greedy": len(greedy), "dimensioned": len(solved), "kept": len(kept),
              "clean": sum(bool(r["extra"].get("dimension_clean")) for r in solved.values())}
    return kept, counts


def _metrics(folder: str) -> dict:
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as fh:
        return json.load(fh)


def fine_tune(checkpoint: str, rows: list[dict], out: str, args) -> dict:
    """``args.steps`` steps of the policy's own SFT loss on ``rows`` from ``checkpoint``; saved to ``out``."""
    import torch

    from policies import SFTCollator, load_policy
    from rl.runtime import bf16_native

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    policy = load_policy(checkpoint)
    policy.train()
    collator = SFTCollator(policy, size_dropout=0.2, seed=args.seed, picture_fraction=0.2)
    optimiser = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=args.lr,
                                  weight_decay=0.01)
    bf16 = bool(args.bf16) and bf16_native()
    order = random.Random(args.seed)
    losses, started = [], time.perf_counter()
    for step in range(args.steps):
        batch = collator([rows[order.randrange(len(rows))] for _ in range(args.batch)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = policy.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0:
            print(f"self_distill: {os.path.basename(out)} step {step + 1}/{args.steps} "
                  f"loss {sum(losses[-50:]) / 50:.4f}", flush=True)
    policy.eval()
    policy.save(out)
    for name in ("sft_config.json", "ppo_config.json", "exemplars.npz"):  # what rl.eval reads back
        source = os.path.join(checkpoint, name)
        if os.path.exists(source):
            shutil.copyfile(source, os.path.join(out, name))
    return {"seconds": time.perf_counter() - started, "loss_first_50": sum(losses[:50]) / 50,
            "loss_last_50": sum(losses[-50:]) / 50}


def main(argv: list[str] | None = None) -> int:
    from corpus.dataset import load
    from rl.compare import compare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished rl.demo folder (corpus, sft, ppo)")
    parser.add_argument("--policy", default="sft", choices=("sft", "ppo"))
    parser.add_argument("--n_train", type=int, default=400)
    parser.add_argument("--min_iou", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--bf16", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=150, help="images per evaluated split")
    parser.add_argument("--work", default="runs/self_distill")
    parser.add_argument("--label", required=True)
    args = parser.parse_args(argv)
    run_dir, work = os.path.abspath(args.run), os.path.abspath(args.work)
    corpus, reward_from = os.path.join(run_dir, "corpus"), os.path.join(run_dir, "ppo")
    checkpoint = os.path.join(run_dir, args.policy, "final")
    seconds, train_eval = {}, os.path.join(work, "train_eval")
    if not os.path.exists(os.path.join(train_eval, "records.jsonl")):
        seconds["train_eval"] = run("rl.eval", "--checkpoint", checkpoint, "--corpus_dir", corpus, "--split",
                                    "train", "--limit", str(args.n_train), "--k", "0", "--fit", "false",
                                    "--views", "false", "--reward_from", reward_from, "--out", train_eval)
    kept, counts = kept_programs(os.path.join(train_eval, "records.jsonl"), args.min_iou)
    print(f"self_distill: {counts}", flush=True)
    train = [dict(row) for row in load(corpus, "train")]
    distilled = [{**row, "code": kept[row["id"]]} for row in train if row["id"] in kept] * args.repeat
    arms, tuned = {"control": train, "distill": train + distilled}, {}
    for arm, rows in arms.items():
        tuned[arm] = fine_tune(checkpoint, rows, os.path.join(work, arm), args)
    comparisons = {}
    for split in ("test", "test_ood"):
        for arm in arms:
            seconds[f"eval_{arm}_{split}"] = run(
                "rl.eval", "--checkpoint", os.path.join(work, arm), "--corpus_dir", corpus, "--split", split,
                "--k", "0", "--limit", str(args.limit), "--views", "false", "--reward_from", reward_from,
                "--out", os.path.join(work, f"eval_{arm}_{split}"))
        for pick in ("greedy", "dimensioned"):
            folders = [os.path.join(work, f"eval_{arm}_{split}") for arm in arms]
            comparisons[f"{split}_{pick}"] = paired_figures(compare(*folders, tuple(arms), (pick, pick)))
            comparisons[f"{split}_{pick}"]["size_written"] = [
                _metrics(f)["size_written"] for f in folders]
    add_entry(RESULT, args.label, {"settings": vars(args), "train": counts, "rows": {a: len(r) for a, r in
              arms.items()}, "fine_tune": tuned, "seconds": seconds, "comparisons": comparisons})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
