"""Import a user's folder of OpenSCAD programs into the corpus dataset format.

Usage (``corpus/import.py`` forwards here; ``import`` is a Python keyword)::

    python -m corpus.import my_parts/ --out runs/my_parts                 # every file -> split "test"
    python -m corpus.import my_parts/ --out runs/my_parts --split auto    # 90/5/5, no leakage
    python -m corpus.import my_parts/ --out runs/my_parts --workers 0 --timeout 60

Every ``name.scad`` in the folder (not its subfolders) becomes one row with
``family = "imported"``, ``seed = 0`` and ``params = "{}"``. Its views and mesh come
from running the ``.scad`` with OpenSCAD, exactly as in ``corpus.build``, so they match
what the reward renders; a ``name.png`` next to it, if any, is kept as the extra column
``user_image``. A file that does not give a 3-D mesh (syntax error, empty, timeout,
a forbidden ``include``, ...) is listed in a table (name, status, first error line)
and skipped; only a folder where nothing renders is an error. Writes the same layout
as ``corpus.build`` (``OUT/data``, ``OUT/meshes``, ``OUT/build.json``).
"""

from __future__ import annotations

import glob
import os
import re
import sys
import time
from dataclasses import dataclass

from corpus import dataset, splits
from corpus._cli import Parser, UsageError, fail, output_dir, positive_int, workers_arg

FAMILY = "imported"


@dataclass(frozen=True)
class Program:
    """One ``.scad`` file of the folder and its optional picture."""

    name: str
    """The file's stem."""
    id: str
    """Row id: the stem with characters other than letters, digits, ``._-`` replaced by ``_``."""
    code: str
    png_path: str | None


@dataclass(frozen=True)
class Failure:
    name: str
    status: str
    detail: str


def find_programs(folder: str) -> list[Program]:
    """The ``.scad`` files of ``folder`` (sorted by name), read as UTF-8 (bad bytes replaced)."""
    programs, used = [], set()
    for path in sorted(glob.glob(os.path.join(folder, "*.scad"))):
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8", errors="replace") as fh:
            code = fh.read()
        png = os.path.splitext(path)[0] + ".png"
        row_id = _unique(re.sub(r"[^A-Za-z0-9._-]", "_", name) or "part", used)
        programs.append(Program(name, row_id, code, png if os.path.exists(png) else None))
    return programs


def _unique(stem: str, used: set) -> str:
    candidate, k = stem, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}"
    used.add(candidate)
    return candidate


def render_programs(programs: list[Program], workers: int, size: int, timeout: float) -> list:
    """One :class:`corpus.dataset.RenderRecord` per program, in order (RenderPool, ``workers`` actors)."""
    from renderer.openscad import RenderLimits
    from renderer.pool import RenderPool, ScoreRequest

    limits = RenderLimits(timeout_s=timeout)
    with RenderPool(dataset.ViewProcessor(size, threads=1), workers=workers, limits=limits) as pool:
        return pool.score([ScoreRequest(p.code) for p in programs])


def import_rows(root: str, programs: list[Program], records: list) -> tuple[list[dict], list[Failure]]:
    """Rows of the programs that rendered (meshes written under ``root``) and the failures."""
    rows, failures = [], []
    for program, record in zip(programs, records, strict=True):
        if not record.ok:
            failures.append(Failure(program.name, record.status, record.detail))
            continue
        mesh_path = dataset.save_mesh(root, program.id, record.vertices, record.faces)
        columns = dict(id=program.id, family=FAMILY, seed=0, params="{}", code=program.code)
        row = dataset.row_of(record, mesh_path, **columns)
        row["user_image"] = _read_png(program.png_path)
        rows.append(row)
    return rows, failures


def _read_png(path: str | None):
    if path is None:
        return None
    with open(path, "rb") as fh:
        return {"bytes": fh.read(), "path": None}


def split_rows(rows: list[dict], split: str, seed: int) -> dict[str, list[dict]]:
    """All rows in ``split``, or with ``split == "auto"`` the :func:`corpus.splits.assign` splits."""
    if split != "auto":
        return {split: rows}
    inputs = [
        splits.SplitInput(
            r["id"], r["family"], r["code"], splits.geometry_key(r["extents"], r["area"], r["volume"])
        )
        for r in rows
    ]
    result = splits.assign(inputs, (), seed)
    by_split = {name: [] for name in splits.SPLITS[:3]}
    for row, name in zip(rows, result.splits, strict=True):
        if name is not None:
            by_split[name].append(row)
    return by_split


def import_folder(
    folder: str,
    out: str,
    split: str = "test",
    workers: int = 0,
    size: int = 128,
    timeout: float = 30.0,
    seed: int = 0,
) -> tuple[dict, list[Failure]]:
    """Import ``folder`` into ``out``; return ``(build.json dict, failures)``. Raises UsageError."""
    started = time.perf_counter()
    programs = check_folders(folder, out)
    records = render_programs(programs, workers, size, timeout)
    rows, failures = import_rows(out, programs, records)
    if not rows:
        raise UsageError(f"none of the {len(programs)} .scad files in {folder!r} rendered")
    counts = dataset.write_splits(out, split_rows(rows, split, seed), with_user_image=True)
    info = {
        "kind": "import",
        "source": os.path.abspath(folder),
        "settings": {"split": split, "size": size, "timeout": timeout, "seed": seed, "workers": workers},
        "splits": counts,
        "counts": {
            "files": len(programs),
            "rendered": len(rows),
            "failed": len(failures),
            "with_user_image": sum(r["user_image"] is not None for r in rows),
        },
        "failures": [f.__dict__ for f in failures],
        "timing": {
            "this_run_seconds": round(time.perf_counter() - started, 2),
            "openscad_seconds_total": round(sum(r.seconds for r in records), 2),
        },
    }
    dataset.write_build_info(out, info)
    return info, failures


def check_folders(folder: str, out: str) -> list[Program]:
    """The folder's programs; raises UsageError for a missing folder, no .scad file or a bad ``out``."""
    if not os.path.isdir(folder):
        raise UsageError(f"{folder!r} is not a folder")
    programs = find_programs(folder)
    if not programs:
        raise UsageError(f"no .scad file in {folder!r}")
    output_dir(out)
    if os.path.isdir(out) and os.listdir(out) and dataset.read_build_info(out).get("kind") != "import":
        raise UsageError(f"--out {out!r} is not empty and holds no import; use an empty or new folder")
    return programs


def failure_table(failures: list[Failure]) -> str:
    """The skipped files as an aligned text table (name, status, first error line)."""
    width = max([len("name")] + [len(f.name) for f in failures])
    lines = [f"{'name':<{width}}  {'status':<14}  first error line", "-" * (width + 36)]
    lines += [f"{f.name:<{width}}  {f.status:<14}  {f.detail[:100]}" for f in failures]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None):
    parser = Parser(prog="corpus.import", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder of name.scad files (and optional name.png pictures)")
    parser.add_argument(
        "--out", required=True, help="output dataset folder (new, empty or an earlier import)"
    )
    parser.add_argument(
        "--split",
        default="test",
        help="split every row goes to (default test), or 'auto' for 90/5/5 train/val/test",
    )
    parser.add_argument(
        "--workers",
        type=workers_arg,
        default=0,
        help="render actors: 'auto' (one per CPU) or N; 0 (default) runs here",
    )
    parser.add_argument(
        "--size", type=positive_int, default=128, help="view size in pixels (reward default 128)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="OpenSCAD wall-clock limit per file, s")
    parser.add_argument("--seed", type=int, default=0, help="split hashing seed for --split auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_]+", args.split):
        fail("corpus.import", f"--split must be a name of letters, digits and _, got {args.split!r}")
    try:
        import datasets

        datasets.disable_progress_bars()
        info, failures = import_folder(
            args.folder, args.out, args.split, args.workers, args.size, args.timeout, args.seed
        )
    except UsageError as error:
        fail("corpus.import", str(error))
    if failures:
        print(f"skipped {len(failures)} of {info['counts']['files']} files:")
        print(failure_table(failures))
    c = info["counts"]
    print(
        f"imported {c['rendered']} of {c['files']} files ({c['with_user_image']} with a picture) "
        f"into {args.out}: splits {info['splits']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
