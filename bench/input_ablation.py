"""What the policy should be shown: the iso view, the four views tiled, image tokens, the size.

Same corpus, split, SFT budget and schedule for every variant; only the policy's input changes.
Each variant is trained with ``rl.sft`` for ``--seeds`` (SFT varies from run to run), then
every checkpoint is evaluated greedily with ``rl.eval`` on ``test`` and ``test_ood`` and
measured by ``bench/image_reliance.py`` (true vs shuffled pictures, the sizes kept). Variants::

    iso16        the iso view, 128 px, 16 image tokens (the old default)
    tile16       iso, front / right, top tiled 2x2, 256 px, patch 16, 16 image tokens
    tile64       the tile, 256 px, patch 16, pixel shuffle 2: 64 image tokens
    tile16_size  tile16 and the part's size in the prompt (20 % of SFT rows without it)
    tile64_size  tile64 and the size
    tile16_params        tile16 and the parameter objective (rl.sft_aux.ParamTable, weight 0.5)
    tile16_size_params   tile16_size and the parameter objective
    tile64_no_pictures   tile64, every SFT row shown by its four views (sft.picture_fraction 0)
    tile64_pictures      tile64, 20 % of SFT rows shown as one restyled, normalised picture

Per variant and seed: protocol IoU (invalid = 0, and over valid programs), CD x1e3, IR,
target-frame IoU, distinct greedy programs, image reliance, SFT tokens/s; and each variant's
paired difference to ``iso16`` of the same seed (``rl.compare``: 95 % BCa intervals).
Writes ``bench/results/input_ablation.json``::

    .venv/bin/python bench/input_ablation.py --corpus runs/demo/corpus --work /tmp/ablation \\
        --steps 900 --seeds 0 1 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "input_ablation.json")
TILE16 = {"views": "tile", "image_size": 256, "patch_size": 16, "scale_factor": 4}
TILE64 = {"views": "tile", "image_size": 256, "patch_size": 16, "scale_factor": 2}
VARIANTS = {
    "iso16": {"views": "iso", "image_size": 128, "patch_size": 8, "scale_factor": 4},
    "tile16": TILE16,
    "tile64": TILE64,
    "tile16_size": {**TILE16, "size_in_prompt": True},
    "tile64_size": {**TILE64, "size_in_prompt": True},
    "tile16_params": {**TILE16, "sft.image_param_weight": 0.5},
    "tile16_size_params": {**TILE16, "size_in_prompt": True, "sft.image_param_weight": 0.5},
    "tile64_no_pictures": {**TILE64, "sft.picture_fraction": 0.0},
    "tile64_pictures": {**TILE64, "sft.picture_fraction": 0.2},
}
SPLITS = ("test", "test_ood")


def python_m(*args: str, log: str) -> float:
    """``python -m ARGS`` with its output in ``log``; seconds taken; raises when it fails."""
    started = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("+ python -m " + " ".join(args) + "\n")
        fh.flush()
        subprocess.run([sys.executable, "-m", *args], check=True, stdout=fh, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def train_and_evaluate(name: str, seed: int, args) -> dict:
    """SFT of one variant and seed, then its evaluations; the figures of this run."""
    run = f"{name}_s{seed}"
    log = os.path.join(args.work, f"{run}.log")
    final = os.path.join(args.work, run, "final")
    overrides = [f"--{key[4:]}={value}" if key.startswith("sft.") else f"--policy.{key}={value}"
                 for key, value in VARIANTS[name].items()]
    if not os.path.exists(os.path.join(args.work, run, "sft_summary.json")):
        python_m("rl.sft", "--config", "configs/sft.yaml", "--runs_dir", args.work, "--name", run,
                 "--corpus_dir", args.corpus, "--build_corpus", "no", "--max_steps", str(args.steps),
                 "--eval_steps", str(args.steps), "--seed", str(seed), "--threads", "1", *overrides,
                 log=log)
    summary = json.load(open(os.path.join(args.work, run, "sft_summary.json")))
    result = {"variant": name, "seed": seed, "policy": VARIANTS[name],
              "sft_tokens_per_s": summary["tokens_per_s"], "sft_seconds": summary["train_seconds"]}
    for split in SPLITS:
        folder = os.path.join(args.work, "eval", f"{run}_{split}")
        if not os.path.exists(os.path.join(folder, "metrics.json")):
            python_m("rl.eval", "--checkpoint", final, "--corpus_dir", args.corpus, "--split", split,
                     "--limit", str(args.limit), "--out", folder, "--seed", str(seed), "--threads", "1",
                     "--render_workers", "0", "--views", "false", log=log)
        result[split] = figures(folder)
    result["image_reliance"] = reliance(final, args)
    return result


def figures(folder: str) -> dict:
    """The headline greedy figures of one ``rl.eval`` folder."""
    metrics = json.load(open(os.path.join(folder, "metrics.json")))
    greedy, protocol = metrics["greedy"], metrics["greedy"]["protocol"]
    records = [json.loads(line) for line in open(os.path.join(folder, "records.jsonl"))]
    codes = [r["code"] for r in records if r["extra"]["mode"] == "greedy"]
    valid_iou = protocol["iou_mean"] or 0.0  # None when no program is valid
    return {
        "n": protocol["n"],
        "ir": protocol["ir"],
        "protocol_iou_invalid0": valid_iou * protocol["n_valid"] / protocol["n"],
        "protocol_iou_valid": protocol["iou_mean"],
        "cd_median_x1e3": protocol["cd_median_x1e3"],
        "target_frame_iou_valid": greedy["iou_mean"],
        "distinct_programs": len(set(codes)) / len(codes),
    }


def reliance(final: str, args) -> dict:
    """``bench/image_reliance.py``'s figures of a checkpoint (in a child process, one thread)."""
    out = os.path.join(final, "image_reliance.json")
    if not os.path.exists(out):
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "image_reliance.py"),
                        "--checkpoint", final, "--corpus", args.corpus, "--split", "val", "--n", "32",
                        "--out", out], check=True, capture_output=True)
    entry = next(iter(json.load(open(out)).values()))
    return {k: entry[k] for k in ("reliance", "loss_true", "loss_shuffled", "first_line_acc",
                                  "distinct_greedy")}


def paired(args, names) -> dict:
    """Each variant against ``iso16`` of the same seed, per split (``rl.compare``)."""
    from rl.compare import compare

    out = {}
    for name in names:
        if name == "iso16":
            continue
        for seed in args.seeds:
            for split in SPLITS:
                a = os.path.join(args.work, "eval", f"iso16_s{seed}_{split}")
                b = os.path.join(args.work, "eval", f"{name}_s{seed}_{split}")
                if os.path.exists(os.path.join(a, "metrics.json")):
                    out[f"{name}_s{seed}_{split}"] = compare(a, b, ("iso16", name))
    return out


def table(runs: list[dict]) -> str:
    """The README's Markdown table: one row per variant and seed."""
    lines = ["| variant | seed | test protocol IoU (inv. 0) | IoU valid | CD x1e3 | IR | target-frame IoU "
             "| distinct | test_ood protocol IoU (inv. 0) | IR | image reliance | SFT tokens/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        t, o = r["test"], r["test_ood"]
        lines.append(
            f"| {r['variant']} | {r['seed']} | {t['protocol_iou_invalid0']:.3f} | "
            f"{t['protocol_iou_valid'] or 0:.3f} | {t['cd_median_x1e3'] or float('nan'):.1f} | "
            f"{t['ir']:.3f} | "
            f"{t['target_frame_iou_valid'] or 0:.3f} | {t['distinct_programs']:.2f} | "
            f"{o['protocol_iou_invalid0']:.3f} | {o['ir']:.3f} | {r['image_reliance']['reliance']:.3f} | "
            f"{r['sft_tokens_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="corpus folder (train, test, test_ood)")
    parser.add_argument("--work", required=True, help="folder for the runs, evaluations and logs")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=900, help="SFT steps (the main job's 900)")
    parser.add_argument("--limit", type=int, default=40, help="images per evaluation split")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (each on one thread)")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    jobs = [(name, seed) for seed in args.seeds for name in args.variants]
    with ThreadPoolExecutor(args.parallel) as pool:
        runs = list(pool.map(lambda job: train_and_evaluate(*job, args), jobs))
    result = {"corpus": os.path.abspath(args.corpus), "steps": args.steps, "limit": args.limit,
              "parallel": args.parallel, "runs": runs, "paired_vs_iso16": paired(args, args.variants)}
    print(table(runs))
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
