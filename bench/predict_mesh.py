"""``rl.predict --mesh``: an STL in, an editable OpenSCAD program out, scored against the mesh.

Two meshes: a bundled OpenSCAD example (``--example``, exported to STL by OpenSCAD itself,
in the sandbox) and a ``test`` part of a corpus (its stored mesh written as STL). For each,
``rl.predict --mesh part.stl`` runs as a user would (the policy is shown the mesh's four views
and its size), and the kept program's render is scored against the mesh with the cadrille
protocol (unit cube, independent samples, volumetric IoU; :func:`reward.metrics.protocol_metrics`).
Writes the program, ``prediction.png`` (the mesh's iso view, then the program's four views)
and ``bench/results/predict_mesh.json``::

    .venv/bin/python bench/predict_mesh.py --checkpoint runs/demo/ppo/final --corpus runs/demo/corpus
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "predict_mesh.json")
EXAMPLE = "/usr/share/openscad/examples/Basics/CSG.scad"


def example_stl(path: str, out: str) -> str:
    """The OpenSCAD example at ``path`` exported to STL by OpenSCAD (the sandboxed ``run``)."""
    from renderer.openscad import run
    from renderer.stl import write_binary_stl

    result = run(open(path).read())
    if not result.ok:
        raise SystemExit(f"{path}: OpenSCAD gave {result.status}")
    stl = os.path.join(out, os.path.splitext(os.path.basename(path))[0] + ".stl")
    write_binary_stl(stl, result.vertices, result.faces)
    return stl


def corpus_stl(corpus: str, out: str, index: int) -> tuple[str, str]:
    """``(stl path, row id)`` of the corpus ``test`` row ``index``."""
    from corpus.dataset import load, load_mesh
    from renderer.stl import write_binary_stl

    row = load(corpus, "test")[index]
    stl = os.path.join(out, f"{row['id']}.stl")
    write_binary_stl(stl, *load_mesh(corpus, row))
    return stl, row["id"]


def predict_and_score(stl: str, args, name: str) -> dict:
    """``rl.predict --mesh stl`` in a child process, then the protocol figures of its program."""
    from renderer.openscad import run
    from renderer.stl import read_binary_stl
    from reward.metrics import protocol_metrics

    out = os.path.join(args.out_dir, name)
    command = [sys.executable, "-m", "rl.predict", "--mesh", stl, "--checkpoint", args.checkpoint,
               "--k", str(args.k), "--refine", str(args.refine), "--fit", str(args.fit).lower(),
               "--render_workers", "1", "--out", out]
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    summary = json.load(open(os.path.join(out, "candidates.json")))
    code = open(os.path.join(out, "prediction.scad")).read()
    figures = protocol_metrics(run(code), *read_binary_stl(stl))
    return {"mesh": stl, "out": out, "printed": printed.strip().splitlines(), "size": summary["size"],
            "valid": summary["valid"], "code": code, "protocol_iou": figures["iou"],
            "protocol_cd_x1e3": None if figures["cd"] is None else figures["cd"] * 1e3,
            "agreement": summary["candidates"][summary["chosen"]]["agreement"],
            "kept_mode": summary["candidates"][summary["chosen"]]["mode"],
            "refine": summary["refine"] and {k: summary["refine"][k] for k in ("renders", "seconds")}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a policy folder (e.g. runs/demo/ppo/final)")
    parser.add_argument("--corpus", required=True, help="corpus whose test part is the second mesh")
    parser.add_argument("--example", default=EXAMPLE, help="an OpenSCAD example (.scad) for the first")
    parser.add_argument("--index", type=int, default=0, help="which test row (default the first)")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--refine", type=int, default=0, help="refinement renders (0: off)")
    parser.add_argument("--fit", type=lambda v: v.lower() in ("1", "true", "yes"), default=True,
                        help="rl.predict --fit: the greedy program fitted onto the mesh's box joins (true)")
    parser.add_argument("--out_dir", default="runs/predict_mesh")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    example = example_stl(args.example, args.out_dir)
    part, row_id = corpus_stl(args.corpus, args.out_dir, args.index)
    results = {"checkpoint": args.checkpoint, "k": args.k, "refine": args.refine, "fit": args.fit,
               "example": predict_and_score(example, args, "example"),
               "corpus_part": {"id": row_id, **predict_and_score(part, args, "corpus_part")}}
    for name in ("example", "corpus_part"):
        r = results[name]
        iou = "n/a" if r["protocol_iou"] is None else f"{r['protocol_iou']:.3f}"
        print(f"{name}: {os.path.basename(r['mesh'])} size {r['size']} -> valid {r['valid']}, "
              f"protocol IoU {iou}; program in {r['out']}/prediction.scad")
    write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
