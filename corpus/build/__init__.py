"""Build the procedural corpus: programs -> OpenSCAD meshes -> views -> a split ``datasets`` folder.

Usage::

    python -m corpus.build --n 2000 --out runs/corpus2k                 # every core, seed 0
    python -m corpus.build --n 24 --out runs/tiny --workers 0           # in this process, no Ray
    python -m corpus.build --n 2000 --out runs/c --holdout_families gear,hinge --timeout 60
    python -m corpus.build --n 1500 --out runs/fast --families plate,washer,profile --holdout_families washer
    python -m corpus.build --n 10000 --out /shared/c10k --ray_address HEAD:6379   # on a running cluster

Part ``i`` of a build is family ``order[i % F]`` (the ``F`` families in an order shuffled
by ``--seed``) with seed ``seed * 1_000_000 + i // F``, so with ``--seed 0`` each family gets
seeds 0, 1, 2, ... like ``python -m corpus.families``. Its id is ``{family}-{seed:06d}``.
A program that does not give a 3-D mesh is retried with derived seeds
(:func:`corpus.families.derive_seed`, up to ``--max_tries``); each failed try is counted as
a reject of its family, and a part whose tries all fail is left out.

Programs run on :class:`renderer.pool.RenderPool` actors (``--workers``; 0 runs them here),
which also render the views (:class:`corpus.dataset.ViewProcessor`). Work goes in chunks
of ``--chunk_size`` parts; each finished chunk is kept under ``OUT/chunks/`` and skipped
when the same command runs again, so an interrupted build resumes where it stopped and
ends with the same dataset. A build is deterministic for a seed: the same ids, code and
image bytes (unless a program's run time crosses ``--timeout`` on a busier machine).

Writes (see :mod:`corpus.dataset` for the columns and :mod:`corpus.splits` for the splits)::

    OUT/data/{train,val,test,test_ood}-*.parquet
    OUT/meshes/<id>.npz
    OUT/build.json       settings, counts, rejects per family, wall time, parts/s
    OUT/chunks/          finished chunks (resume state)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from configs.cli import UsageError, output_dir
from corpus import dataset, splits
from corpus.build_info import build_info, timing
from corpus.families import FAMILIES, derive_seed, generate

SEED_STRIDE = 1_000_000
"""Part seeds of build seed ``s`` start at ``s * SEED_STRIDE``."""
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BuildSettings:
    """Everything a build depends on; ``fingerprint()`` is what finished chunks must match."""

    n: int
    """Parts to generate."""
    out: str
    """Output folder."""
    seed: int = 0
    """Build seed: family order, part seeds, default held-out families, split hashing."""
    workers: int = 0
    """Render actors (0: in this process)."""
    size: int = 128
    """View size in pixels (the reward's default is 128)."""
    holdout: tuple[str, ...] | None = None
    """Families for test_ood only; None: two chosen with ``seed``."""
    timeout: float = 30.0
    """OpenSCAD wall-clock limit per program, seconds."""
    max_tries: int = 5
    """Programs tried per part (the first plus retries with derived seeds)."""
    chunk_size: int = 128
    """Parts per chunk (the unit of resumption)."""
    fractions: tuple[float, float, float] = splits.DEFAULT_FRACTIONS
    """Train, val and test shares."""
    families: tuple[str, ...] = field(default_factory=lambda: tuple(sorted(FAMILIES)))
    """Families to draw from."""
    ray_address: str | None = None
    """A running Ray cluster to render on (None: $RAY_ADDRESS or a local one); not in the fingerprint."""

    def __post_init__(self):
        if self.n < 1:
            raise UsageError(f"n must be >= 1, got {self.n}")
        if self.size < 8:
            raise UsageError(f"size must be >= 8 pixels, got {self.size}")
        if self.timeout <= 0 or self.max_tries < 1 or self.chunk_size < 1:
            raise UsageError("timeout, max_tries and chunk_size must be positive")
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown:
            raise UsageError(f"families: unknown {unknown}; known: {', '.join(sorted(FAMILIES))}")
        holdout = self.holdout_families()
        if set(holdout) - set(self.families) or len(set(holdout)) >= len(set(self.families)):
            raise UsageError(
                f"holdout_families must name some but not all of: {', '.join(self.families)} "
                f"(got {', '.join(holdout)})"
            )

    def holdout_families(self) -> list[str]:
        if self.holdout is not None:
            return sorted(self.holdout)
        return splits.default_holdout(self.families, self.seed)

    def fingerprint(self) -> dict:
        """The settings that change what a chunk holds."""
        return {
            "format": FORMAT_VERSION,
            "seed": self.seed,
            "size": self.size,
            "timeout": self.timeout,
            "max_tries": self.max_tries,
            "chunk_size": self.chunk_size,
            "families": list(self.families),
        }


@dataclass(frozen=True)
class Slot:
    """Part ``index`` of a build: its family and the seed of its first try."""

    index: int
    family: str
    base_seed: int

    @property
    def id(self) -> str:
        return f"{self.family}-{self.base_seed:06d}"


def family_order(families, seed: int) -> list[str]:
    """``families`` sorted, then shuffled with ``seed``."""
    order = sorted(families)
    random.Random(f"corpus.build/{int(seed)}").shuffle(order)
    return order


def plan(n: int, seed: int, families=None) -> list[Slot]:
    """The ``n`` parts of a build: part ``i`` is ``order[i % F]``, seed ``seed * SEED_STRIDE + i // F``."""
    order = family_order(families or FAMILIES, seed)
    return [Slot(i, order[i % len(order)], seed * SEED_STRIDE + i // len(order)) for i in range(n)]


def chunk_ranges(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in steps of ``chunk_size``."""
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def plan_hash(slots: list[Slot]) -> str:
    """A hash of the slots and their first-try programs: changes when a family's generator does."""
    digest = hashlib.sha256()
    for slot in slots:
        digest.update(f"{slot.id}\n{_first_code(slot)}\n".encode())
    return digest.hexdigest()[:16]


def _first_code(slot: Slot) -> str:
    try:
        return generate(slot.family, slot.base_seed).code
    except Exception as error:  # noqa: BLE001 - a generator bug is recorded as a reject later
        return f"generator error: {error!r}"


# --------------------------------------------------------------------------- rendering


def make_pool(settings: BuildSettings):
    """A :class:`RenderPool` of :class:`ViewProcessor` actors for ``settings``."""
    from renderer.openscad import RenderLimits
    from renderer.pool import RenderPool

    limits = RenderLimits(timeout_s=settings.timeout)
    return RenderPool(
        dataset.ViewProcessor(settings.size, threads=1), workers=settings.workers, limits=limits,
        ray_address=settings.ray_address,
    )


def render_with_retries(pool, slots: list[Slot], max_tries: int):
    """Render every slot, retrying failures with derived seeds, in rounds of one pool batch.

    Returns ``(accepted, rejects)``: ``accepted`` is ``[(slot, part, record)]`` in slot
    order; ``rejects`` has one dict per failed try (id, family, seed, attempt, status, detail).
    """
    from renderer.pool import ScoreRequest

    accepted, rejects = {}, []
    pending = [(slot, 0) for slot in slots]
    while pending:
        tries = [(slot, attempt, _generate(slot, attempt)) for slot, attempt in pending]
        runnable = [(s, a, p) for s, a, p in tries if not isinstance(p, str)]
        records = pool.score([ScoreRequest(p.code) for _, _, p in runnable])
        outcomes = {(s.index, a): r for (s, a, _), r in zip(runnable, records, strict=True)}
        pending = []
        for slot, attempt, part in tries:
            record = outcomes.get((slot.index, attempt))
            if record is not None and record.ok:
                accepted[slot.index] = (slot, part, record)
                continue
            rejects.append(_reject(slot, attempt, part, record))
            if attempt + 1 < max_tries:
                pending.append((slot, attempt + 1))
    return [accepted[s.index] for s in slots if s.index in accepted], rejects


def _generate(slot: Slot, attempt: int):
    """The part of ``slot``'s try ``attempt``, or the generator's error message."""
    try:
        return generate(slot.family, derive_seed(slot.base_seed, attempt))
    except Exception as error:  # noqa: BLE001 - a generator bug: recorded as a reject, not hidden
        return f"{type(error).__name__}: {error}"


def _reject(slot: Slot, attempt: int, part, record) -> dict:
    generated = not isinstance(part, str)
    return {
        "id": slot.id,
        "family": slot.family,
        "seed": part.seed if generated else derive_seed(slot.base_seed, attempt),
        "attempt": attempt,
        "status": record.status if record is not None else "generator_error",
        "detail": record.detail if record is not None else part,
    }


def chunk_rows(root: str, accepted) -> list[dict]:
    """Table rows of a chunk's accepted parts; writes their meshes under ``root/meshes``."""
    rows = []
    for slot, part, record in accepted:
        mesh_path = dataset.save_mesh(root, slot.id, record.vertices, record.faces)
        params = json.dumps(part.params, sort_keys=True, default=str)
        columns = dict(id=slot.id, family=slot.family, seed=part.seed, params=params, code=part.code)
        rows.append(dataset.row_of(record, mesh_path, **columns))
    return rows


# --------------------------------------------------------------------------- chunk files


def _chunk_paths(root: str, start: int, stop: int) -> tuple[str, str]:
    stem = os.path.join(root, "chunks", f"{start:07d}-{stop:07d}")
    return stem + ".parquet", stem + ".json"


def read_chunk(root: str, start: int, stop: int, expected_hash: str):
    """``(rows, meta)`` of a finished chunk, or None if it is missing, partial or stale."""
    import pyarrow.parquet as pq

    table_path, meta_path = _chunk_paths(root, start, stop)
    if not (os.path.exists(table_path) and os.path.exists(meta_path)):
        return None
    with open(meta_path, encoding="utf-8") as fh:
        meta = json.load(fh)
    if meta.get("plan_hash") != expected_hash:
        return None
    return pq.read_table(table_path).to_pylist(), meta


def write_chunk(root: str, start: int, stop: int, rows: list[dict], meta: dict) -> None:
    """Persist a finished chunk: its meta, then its table (the table's presence marks it done)."""
    from datasets import Dataset

    table_path, meta_path = _chunk_paths(root, start, stop)
    os.makedirs(os.path.dirname(table_path), exist_ok=True)
    if os.path.exists(table_path):
        os.remove(table_path)
    with open(meta_path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
    os.replace(meta_path + ".tmp", meta_path)
    Dataset.from_list(rows, features=dataset.features()).to_parquet(table_path + ".tmp")
    os.replace(table_path + ".tmp", table_path)


def check_out_dir(settings: BuildSettings) -> None:
    """Refuse an ``--out`` that holds something else, or a build made with other settings."""
    root = output_dir(settings.out)
    state = os.path.join(root, "chunks", "settings.json")
    if os.path.exists(state):
        with open(state, encoding="utf-8") as fh:
            previous = json.load(fh)
        if previous != settings.fingerprint():
            changed = sorted(
                k
                for k in previous.keys() | settings.fingerprint().keys()
                if previous.get(k) != settings.fingerprint().get(k)
            )
            raise UsageError(
                f"--out {root!r} holds a build with other settings ({', '.join(changed)}); "
                "use another --out or delete it"
            )
    elif os.path.isdir(root) and os.listdir(root):
        raise UsageError(f"--out {root!r} is not empty and holds no corpus build; use an empty or new folder")
    os.makedirs(os.path.join(root, "chunks"), exist_ok=True)
    with open(state, "w", encoding="utf-8") as fh:
        json.dump(settings.fingerprint(), fh, indent=1)


# --------------------------------------------------------------------------- the build


def build(settings: BuildSettings, progress: bool = True, chunk_limit: int | None = None) -> dict:
    """Build (or resume) the corpus described by ``settings``; return the ``build.json`` dict.

    ``chunk_limit`` stops after rendering that many new chunks, without writing the
    dataset (it simulates an interruption; the returned dict then has ``complete: False``).
    """
    started = time.perf_counter()
    check_out_dir(settings)
    slots = plan(settings.n, settings.seed, settings.families)
    ranges = chunk_ranges(settings.n, settings.chunk_size)
    hashes = {r: plan_hash(slots[r[0] : r[1]]) for r in ranges}
    chunks = finished_chunks(settings.out, ranges, hashes)
    resumed = len(chunks)
    todo = [r for r in ranges if r not in chunks][:chunk_limit]
    ray_start = render_chunks(settings, slots, todo, hashes, chunks, progress)
    if len(chunks) < len(ranges):
        return {"complete": False, "chunks_done": len(chunks), "chunks": len(ranges)}
    elapsed = time.perf_counter() - started
    return assemble(settings, [chunks[r] for r in ranges], elapsed, ray_start, resumed)


def finished_chunks(root: str, ranges, hashes) -> dict:
    """``{(start, stop): (rows, meta)}`` of the chunks already finished under ``root``."""
    chunks, stale = {}, 0
    for r in ranges:
        found = read_chunk(root, *r, hashes[r])
        if found is not None:
            chunks[r] = found
        elif os.path.exists(_chunk_paths(root, *r)[0]):
            stale += 1
    if stale:
        print(
            f"corpus.build: {stale} finished chunks were made by other family generators; "
            "rendering them again",
            file=sys.stderr,
        )
    return chunks


def render_chunks(settings: BuildSettings, slots, todo, hashes, chunks: dict, progress: bool) -> float:
    """Render the chunks in ``todo`` into ``chunks`` (persisting each); return Ray's start-up seconds."""
    from tqdm import tqdm

    done = sum(stop - start for start, stop in chunks)
    bar = tqdm(total=settings.n, initial=done, unit="part", desc="corpus.build", disable=not progress)
    if not todo:
        bar.close()
        return 0.0
    pool = make_pool(settings)
    try:
        for r in todo:
            chunks[r] = _run_chunk(pool, settings, slots[r[0] : r[1]], r, hashes[r])
            bar.update(r[1] - r[0])
            bar.set_postfix(rejects=sum(len(meta["rejects"]) for _, meta in chunks.values()))
    finally:
        bar.close()
        pool.close()
    return pool.ray_start_s


def _run_chunk(pool, settings: BuildSettings, slots: list[Slot], r: tuple[int, int], hash_: str):
    start = time.perf_counter()
    accepted, rejects = render_with_retries(pool, slots, settings.max_tries)
    rows = chunk_rows(settings.out, accepted)
    attempts = Counter(row["family"] for row in rows) + Counter(x["family"] for x in rejects)
    meta = {
        "plan_hash": hash_,
        "rows": len(rows),
        "attempts": dict(attempts),
        "rejects": rejects,
        "failed": sorted({s.id for s in slots} - {row["id"] for row in rows}),
        "seconds": time.perf_counter() - start,
    }
    write_chunk(settings.out, *r, rows, meta)
    return rows, meta


# --------------------------------------------------------------------------- assembly


def assemble(settings: BuildSettings, chunks: list[tuple], seconds: float, ray_start: float, resumed) -> dict:
    """Split the rows of every chunk, write the split tables and ``build.json``; return its dict."""
    rows = [row for chunk_rows_, _ in chunks for row in chunk_rows_]
    metas = [meta for _, meta in chunks]
    holdout = settings.holdout_families()
    inputs = [
        splits.SplitInput(
            r["id"], r["family"], r["code"], splits.geometry_key(r["extents"], r["area"], r["volume"])
        )
        for r in rows
    ]
    assignment = splits.assign(inputs, holdout, settings.seed, settings.fractions)
    by_split = {name: [] for name in splits.SPLITS}
    for row, name in zip(rows, assignment.splits, strict=True):
        if name is not None:
            by_split[name].append(row)
    counts = dataset.write_splits(settings.out, by_split)
    info = build_info(settings, rows, metas, assignment, counts, holdout)
    info["timing"] = timing(rows, metas, seconds, ray_start, resumed)
    dataset.write_build_info(settings.out, info)
    return info
