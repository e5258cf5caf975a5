"""Copy a corpus with only what SFT reads, to carry it to a machine with a size limit.

A GPU machine without OpenSCAD or network (``bench/gpu_sft.sh``) cannot build a corpus, and what
travels to it is limited in size. SFT reads the train split's input, code, family, params and
extents columns and a val split (:func:`rl.sft_setup.load_splits`); this copies those, a few val
rows, and ``build.json``, without meshes or test splits. The copy is a corpus folder that
``python -m rl.sft --corpus_dir`` accepts; evaluation still needs the full corpus.

    .venv/bin/python scripts/slim_corpus.py runs/corpus10k .dev/corpus10k_sft [--val 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN_COLUMNS = ["id", "image", "views", "code", "family", "params", "extents"]
VAL_COLUMNS = ["id", "image", "views", "code", "family", "params", "extents", "mesh_path"]


def slim(source: str, target: str, val_rows: int) -> dict:
    """Write the slim copy of ``source`` into ``target``; returns {split: rows}."""
    from corpus.dataset import load

    os.makedirs(os.path.join(target, "data"), exist_ok=True)
    rows = {}
    for split, columns, limit in (("train", TRAIN_COLUMNS, None), ("val", VAL_COLUMNS, val_rows)):
        dataset = load(source, split).select_columns(columns)  # arrow keeps the PNG bytes
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        dataset.to_parquet(os.path.join(target, "data", f"{split}-00000-of-00001.parquet"))
        rows[split] = len(dataset)
    with open(os.path.join(source, "build.json")) as handle:
        info = json.load(handle)
    info["slim_copy_of"] = {"source": os.path.abspath(source), "rows": rows}
    with open(os.path.join(target, "build.json"), "w") as handle:
        json.dump(info, handle, indent=1)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--val", type=int, default=16, help="val rows to keep (default 16)")
    args = parser.parse_args()
    if os.path.exists(args.target):
        shutil.rmtree(args.target)
    rows = slim(args.source, args.target, args.val)
    files = [os.path.join(root, name) for root, _, names in os.walk(args.target) for name in names]
    size = sum(os.path.getsize(path) for path in files)
    print(f"slim_corpus: {rows} -> {args.target} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
