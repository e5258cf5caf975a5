"""Import a user's folder of OpenSCAD programs into the corpus dataset format.

Usage (``corpus/import.py`` forwards here; ``import`` is a Python keyword)::

    python -m corpus.import my_parts/ --out runs/my_parts                 # every file -> split "test"
    python -m corpus.import my_parts/ --out runs/my_parts --split auto    # 90/5/5, no leakage
    python -m corpus.import my_parts/ --out runs/my_parts --workers 0 --timeout 60
    python -m corpus.import my_parts/ --out /shared/my_parts --workers 16 --ray_address HEAD:6379

Every regular file ``name.scad`` in the folder (not its subfolders) becomes one row with
``family = "imported"``, ``seed = 0`` and ``params = "{}"``. Its views and mesh come
from running the ``.scad`` with OpenSCAD, exactly as in ``corpus.build``, so they match
what the reward renders; a ``name.png`` next to it, if any, is kept as the extra column
``user_image``. A file that does not give a 3-D mesh (syntax error, empty, timeout,
a forbidden ``include``, ...) is listed in a table (name, status, first error line)
and skipped; only a folder where nothing renders is an error. Writes the same layout
as ``corpus.build`` (``OUT/data``, ``OUT/meshes``, ``OUT/build.json``).

Which entries count (:func:`find_programs`): the folder is listed with ``os.scandir``, so
names with glob characters (``d[1]``, ``*``) are plain names. Suffixes match in any case
(``PART.SCAD``, ``part.PNG``). Hidden ``.scad`` files (``.name.scad``) are skipped with a
warning. A folder, FIFO, socket, device, broken symlink or unreadable file named
``*.scad``, or named as a program's picture, is skipped with one warning line on stderr
(``corpus.import: warning: skipped 'x.scad': a folder, not a regular file``) and the rest is
imported; a FIFO is never opened. The skipped entries are also listed in ``build.json``.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from dataclasses import dataclass, field

from configs.cli import UsageError, fail, output_dir, parse, warn
from configs.corpus import ImportConfig
from corpus import dataset, splits
from renderer.errors import RendererUnavailable

PROG = "corpus.import"
FAMILY = "imported"
SCAD = ".scad"
PNG = ".png"


@dataclass(frozen=True)
class Program:
    """One ``.scad`` file of the folder and its optional picture."""

    name: str
    """The file's stem."""
    id: str
    """Row id: the stem with characters other than letters, digits, ``._-`` replaced by ``_``."""
    code: str
    png_path: str | None
    picture: bytes | None = field(default=None, repr=False)
    """The bytes of ``png_path``, read while the folder was scanned."""


@dataclass(frozen=True)
class Failure:
    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class Skipped:
    """A folder entry named like a program or picture that is not imported, and why."""

    name: str
    """The entry's file name."""
    reason: str
    """Why, e.g. ``a folder, not a regular file``; the CLI prints one warning line per entry."""


def find_programs(folder: str) -> tuple[list[Program], list[Skipped]]:
    """The programs of ``folder`` (sorted by file name) and the entries skipped, each with why.

    Lists the folder with :func:`os.scandir` (no glob: ``[``, ``*``, ``?`` in names are plain
    characters). A program is a *regular* file (or a symlink to one) named ``stem.scad``, the
    suffix in any case (``PART.SCAD``); code is read as UTF-8, bad bytes replaced. Its picture
    is the regular file ``stem.png`` (suffix in any case, ``.png`` preferred). Skipped, with a
    reason: hidden ``.scad`` files (the name starts with ``.``), and folders, FIFOs, sockets,
    devices, broken symlinks or unreadable files named like a program or its picture. A FIFO is
    never opened. Other files (``notes.txt``) and subfolders are ignored.
    """
    with os.scandir(folder) as listing:
        names = sorted(entry.name for entry in listing)
    pictures: dict[str, list[str]] = {}
    for name in names:
        if name.lower().endswith(PNG):
            pictures.setdefault(name[: -len(PNG)], []).append(name)
    programs, skipped, used = [], [], set()
    for name in names:
        if not name.lower().endswith(SCAD):
            continue
        stem = name[: -len(SCAD)]
        if stem.startswith(".") or not stem:
            skipped.append(Skipped(name, "a hidden file (the name starts with '.'); rename it to import it"))
            continue
        try:
            code = read_regular(os.path.join(folder, name)).decode("utf-8", errors="replace")
        except OSError as error:
            skipped.append(Skipped(name, _why_not_read(os.path.join(folder, name), error)))
            continue
        png_path, picture = _find_picture(folder, stem, pictures.get(stem, []), skipped)
        row_id = _unique(re.sub(r"[^A-Za-z0-9._-]", "_", stem), used)
        programs.append(Program(stem, row_id, code, png_path, picture))
    return programs, skipped


def _find_picture(
    folder: str, stem: str, candidates: list[str], skipped: list[Skipped]
) -> tuple[str | None, bytes | None]:
    """Path and bytes of ``stem``'s picture among ``candidates`` (``stem.png`` in any case), or
    ``(None, None)``; a candidate that is not a readable regular file, or a second one, is skipped."""
    found: tuple[str | None, bytes | None] = (None, None)
    for name in sorted(candidates, key=lambda n: (not n.endswith(PNG), n)):
        path = os.path.join(folder, name)
        if found[0] is not None:
            skipped.append(Skipped(name, f"{stem!r} already has the picture {os.path.basename(found[0])!r}"))
            continue
        try:
            found = (path, read_regular(path))
        except OSError as error:
            skipped.append(Skipped(name, _why_not_read(path, error)))
    return found


def read_regular(path: str) -> bytes:
    """The bytes of the regular file (or symlink to one) at ``path``; OSError for anything else.

    ``stat`` first, so a FIFO, socket or device is never opened; then opened non-blocking and
    checked again with ``fstat``, so a FIFO swapped in between cannot hang the import.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, mode)
        return fh.read()


class NotRegularFile(OSError):
    """An entry that is a folder, FIFO, socket or device rather than a regular file."""

    def __init__(self, path: str, mode: int):
        super().__init__(f"{path!r} is not a regular file")
        self.mode = mode


def _why_not_read(path: str, error: OSError) -> str:
    """The one-line reason :func:`read_regular` failed on ``path``."""
    if isinstance(error, NotRegularFile):
        return f"{_kind(error.mode)}, not a regular file"
    if isinstance(error, FileNotFoundError) and os.path.islink(path):
        return "a broken symlink"
    return f"cannot be read ({error.strerror or error})"


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")]
    return next((word for test, word in kinds if test(mode)), "a device or other special file")


def _unique(stem: str, used: set) -> str:
    candidate, k = stem, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}"
    used.add(candidate)
    return candidate


def render_programs(
    programs: list[Program], workers: int, size: int, timeout: float, ray_address: str | None = None
) -> list:
    """One :class:`corpus.dataset.RenderRecord` per program, in order (RenderPool, ``workers`` actors,
    on the Ray cluster at ``ray_address`` if given)."""
    from renderer.openscad import RenderLimits
    from renderer.pool import RenderPool, ScoreRequest

    limits = RenderLimits(timeout_s=timeout)
    processor = dataset.ViewProcessor(size, threads=1)
    with RenderPool(processor, workers=workers, limits=limits, ray_address=ray_address) as pool:
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
        row["user_image"] = None if program.picture is None else {"bytes": program.picture, "path": None}
        rows.append(row)
    return rows, failures


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
    ray_address: str | None = None,
) -> tuple[dict, list[Failure]]:
    """Import ``folder`` into ``out``; return ``(build.json dict, failures)``. Raises UsageError."""
    started = time.perf_counter()
    programs, skipped = check_folders(folder, out)
    records = render_programs(programs, workers, size, timeout, ray_address)
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
        "skipped": [s.__dict__ for s in skipped],
        "timing": {
            "this_run_seconds": round(time.perf_counter() - started, 2),
            "openscad_seconds_total": round(sum(r.seconds for r in records), 2),
        },
    }
    dataset.write_build_info(out, info)
    return info, failures


def check_folders(folder: str, out: str) -> tuple[list[Program], list[Skipped]]:
    """:func:`find_programs` of ``folder``; UsageError for a missing or unreadable folder, no
    importable .scad file or a bad ``out``."""
    if not os.path.isdir(folder):
        raise UsageError(f"{folder!r} is not a folder")
    try:
        programs, skipped = find_programs(folder)
    except OSError as error:
        raise UsageError(f"cannot list {folder!r} ({error.strerror or error})") from None
    if not programs:
        why = f" ({len(skipped)} skipped; {skipped[0].name!r}: {skipped[0].reason})" if skipped else ""
        raise UsageError(f"no .scad file in {folder!r}{why}")
    output_dir(out)
    if os.path.isdir(out) and os.listdir(out) and dataset.read_build_info(out).get("kind") != "import":
        raise UsageError(f"--out {out!r} is not empty and holds no import; use an empty or new folder")
    return programs, skipped


def failure_table(failures: list[Failure]) -> str:
    """The skipped files as an aligned text table (name, status, first error line)."""
    width = max([len("name")] + [len(f.name) for f in failures])
    lines = [f"{'name':<{width}}  {'status':<14}  first error line", "-" * (width + 36)]
    lines += [f"{f.name:<{width}}  {f.status:<14}  {f.detail[:100]}" for f in failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    config = parse(PROG, __doc__.splitlines()[0], ImportConfig, argv)
    try:
        import datasets

        datasets.disable_progress_bars()
        info, failures = import_folder(
            config.folder,
            config.out,
            config.split,
            config.worker_count,
            config.size,
            config.timeout,
            config.seed,
            config.ray_address,
        )
    except (UsageError, RendererUnavailable) as error:
        fail(PROG, str(error))
    for entry in info["skipped"]:
        warn(PROG, f"skipped {entry['name']!r}: {entry['reason']}")
    if failures:
        print(f"skipped {len(failures)} of {info['counts']['files']} files:")
        print(failure_table(failures))
    c = info["counts"]
    print(
        f"imported {c['rendered']} of {c['files']} files ({c['with_user_image']} with a picture) "
        f"into {config.out}: splits {info['splits']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
