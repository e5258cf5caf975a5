"""One round of expert iteration: refined train programs added to SFT data. Does it help?

From a finished main job (``rl.demo``'s folder: corpus, sft, ppo):

1. ``rl.eval --split train --refine R --against mesh`` writes the policy's greedy program for
   ``--n_train`` train images and the refined one (its numbers tuned by :mod:`rl.refine` against
   the train target's mesh, which training may use). A refined program is kept when it renders,
   its protocol IoU against the target is at least ``--min_iou`` and above the greedy one's.
2. An augmented corpus: the main job's corpus (hard links) plus one more train shard holding
   each kept program, ``--repeat`` times, with its target's image (the ground-truth rows stay).
3. Two continuations of the main job's SFT run for ``--steps`` more steps, identical but for the
   data: ``control`` (the corpus) and ``expert`` (the augmented corpus); same seed, same schedule.
4. Both evaluated greedily on ``test`` (and ``test_ood``) and compared with paired bootstrap
   intervals (``rl.compare``): protocol IoU, CD, invalid ratio.

    .venv/bin/python bench/expert_iteration.py --run /tmp/fresh_final3/runs/demo --n_train 120

Writes ``bench/results/expert_iteration.json``; the work folders go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import records_by_mode, write_json  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "expert_iteration.json")


def run(*args: str) -> float:
    """``python -m ARGS`` here, its output shown; seconds taken; raises when it fails."""
    started = time.perf_counter()
    print("+ python -m " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", *args], check=True)
    return time.perf_counter() - started


def kept_programs(records_path: str, min_iou: float) -> tuple[dict[str, str], dict]:
    """``{target id: refined program}`` of the refined programs worth training on, and counts."""
    found = records_by_mode(records_path, ("greedy", "refined"))
    greedy, refined = found["greedy"], found["refined"]
    kept = {}
    for target, record in refined.items():
        iou = record["extra"].get("protocol_iou")
        before = greedy.get(target, {}).get("extra", {}).get("protocol_iou") or 0.0
        if record["extra"].get("protocol_valid") and iou is not None and iou >= min_iou and iou > before:
            kept[target] = record["code"]
    counts = {
        "refined": len(refined),
        "kept": len(kept),
        "greedy_valid": sum(bool(r["extra"].get("protocol_valid")) for r in greedy.values()),
    }
    return kept, counts


def augmented_corpus(corpus: str, out: str, programs: dict[str, str], repeat: int) -> int:
    """``corpus`` (hard links) plus a train shard of ``programs`` with their targets' rows; rows added."""
    from datasets import Dataset

    from corpus.dataset import features, load

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(corpus, out, copy_function=os.link)
    train = load(corpus, "train", decode=False)
    rows = []
    for row in train:
        if row["id"] in programs:
            for copy in range(repeat):
                rows.append({**row, "id": f"{row['id']}_refined{copy}", "code": programs[row["id"]]})
    if rows:
        path = os.path.join(out, "data", "train-refined-00000-of-00001.parquet")
        Dataset.from_list(rows, features=features()).to_parquet(path)
    return len(rows)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="a finished rl.demo folder (corpus, sft, ppo)")
    parser.add_argument("--policy", default="ppo", choices=("sft", "ppo"), help="which writes the programs")
    parser.add_argument("--n_train", type=int, default=120, help="train images refined")
    parser.add_argument("--refine", type=int, default=100, help="refinement renders per image")
    parser.add_argument("--min_iou", type=float, default=0.5, help="protocol IoU a kept program needs")
    parser.add_argument("--repeat", type=int, default=2, help="copies of each kept program in the data")
    parser.add_argument("--steps", type=int, default=200, help="SFT steps added to the main job's")
    parser.add_argument("--splits", nargs="+", default=["test", "test_ood"])
    parser.add_argument("--limit", type=int, default=40, help="images per evaluated split")
    parser.add_argument("--workers", type=int, default=2, help="render actors")
    parser.add_argument("--seed", type=int, default=0, help="seed of both SFT continuations")
    parser.add_argument("--reuse", action="store_true", help="keep --work's refined train programs")
    parser.add_argument("--work", default="runs/expert_iteration")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    from rl import compare

    run_dir, work = os.path.abspath(args.run), os.path.abspath(args.work)
    corpus, ppo = os.path.join(run_dir, "corpus"), os.path.join(run_dir, "ppo")
    os.makedirs(work, exist_ok=True)
    seconds = {}
    refined_dir = os.path.join(work, "train_refined")
    records = os.path.join(refined_dir, "records.jsonl")
    if not (args.reuse and os.path.exists(records)):
        seconds["refine_train"] = run(
            "rl.eval",
            "--checkpoint",
            os.path.join(run_dir, args.policy, "final"),
            "--corpus_dir",
            corpus,
            "--split",
            "train",
            "--limit",
            str(args.n_train),
            "--k",
            "0",
            "--refine",
            str(args.refine),
            "--against",
            "mesh",
            "--render_workers",
            str(args.workers),
            "--reward_from",
            ppo,
            "--out",
            refined_dir,
        )
    programs, counts = kept_programs(records, args.min_iou)
    added = augmented_corpus(corpus, os.path.join(work, "corpus_expert"), programs, args.repeat)
    print(
        f"expert_iteration: {counts['kept']} of {counts['refined']} refined kept; {added} rows added",
        flush=True,
    )
    base_steps = json.load(open(os.path.join(run_dir, "sft", "sft_summary.json")))["global_step"]
    arms = {"control": corpus, "expert": os.path.join(work, "corpus_expert")}
    for arm, arm_corpus in arms.items():
        shutil.rmtree(os.path.join(work, arm), ignore_errors=True)
        shutil.copytree(os.path.join(run_dir, "sft"), os.path.join(work, arm))
        seconds[f"sft_{arm}"] = run(
            "rl.sft",
            "--config",
            "configs/sft.yaml",
            "--runs_dir",
            work,
            "--name",
            arm,
            "--corpus_dir",
            arm_corpus,
            "--build_corpus",
            "no",
            "--max_steps",
            str(base_steps + args.steps),
            "--eval_steps",
            "0",
            "--save_steps",
            str(args.steps),
            "--seed",
            str(args.seed),
        )
    comparisons = {}
    for split in args.splits:
        for arm in arms:
            seconds[f"eval_{arm}_{split}"] = run(
                "rl.eval",
                "--checkpoint",
                os.path.join(work, arm, "final"),
                "--corpus_dir",
                corpus,
                "--split",
                split,
                "--k",
                "0",
                "--limit",
                str(args.limit),
                "--render_workers",
                str(args.workers),
                "--reward_from",
                ppo,
                "--out",
                os.path.join(work, f"eval_{arm}_{split}"),
            )
        comparison = compare.compare(
            os.path.join(work, f"eval_control_{split}"),
            os.path.join(work, f"eval_expert_{split}"),
            ("control", "expert"),
        )
        compare.write(comparison, os.path.join(work, f"comparison_{split}"))
        print(compare.table_markdown(comparison), flush=True)
        comparisons[split] = comparison
    data = {
        "bench": "expert_iteration",
        "command": "python bench/expert_iteration.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args),
        "base_sft_steps": base_steps,
        "train_refinement": counts,
        "rows_added": added,
        "seconds": seconds,
        "comparisons": comparisons,
    }
    write_json(args.out, data)
    return data


if __name__ == "__main__":
    main()
