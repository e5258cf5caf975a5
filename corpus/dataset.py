"""The corpus dataset format: its columns, how a program becomes a row, and how to read it back.

A dataset folder (written by ``python -m corpus.build`` or ``python -m corpus.import``)::

    DIR/data/{split}-00000-of-0000K.parquet   one Hugging Face ``datasets`` table per split
    DIR/meshes/<id>.npz                       vertices (N, 3) float32, faces (M, 3) int32
    DIR/build.json                            settings, counts, rejects, timings

Read it with :func:`load` (or ``datasets.load_dataset("parquet", data_files=...)``)::

    from corpus.dataset import load, load_mesh
    train = load("runs/corpus2k", "train")       # datasets.Dataset
    row = train[0]                              # row["image"] is a PIL image (iso view)
    vertices, faces = load_mesh("runs/corpus2k", row)

Columns: ``id``, ``family``, ``seed`` (the seed that made the code, ``generate(family, seed)``),
``params`` (JSON), ``code``, ``image`` (iso view), ``views`` (iso, front, right, top),
``mesh_path`` (relative to DIR), ``n_faces``, ``render_seconds`` (OpenSCAD wall time),
``extents`` (bounding box, mm), ``area``, ``volume``; imports add ``user_image``.

The views are rendered exactly as the reward renders a target
(:meth:`reward.score.Scorer.prepare`): from the stored float32 mesh, in that mesh's own
:class:`renderer.views.Frame`, with :data:`renderer.views.CANONICAL_CAMERAS`, so a
policy's input image is the picture the reward compares its prediction with.
:class:`ViewProcessor` is the picklable "scorer" the :class:`renderer.pool.RenderPool`
actors call on each OpenSCAD result to make them.
"""

from __future__ import annotations

import glob
import io
import json
import os
from dataclasses import dataclass, field

import numpy as np

from corpus.splits import SPLITS

ROWS_PER_SHARD = 1000
"""Rows per parquet file of a split."""


def features(with_user_image: bool = False):
    """The ``datasets.Features`` of a corpus table (imports add ``user_image``)."""
    from datasets import Features, Image, List, Value

    columns = {
        "id": Value("string"),
        "family": Value("string"),
        "seed": Value("int64"),
        "params": Value("string"),
        "code": Value("string"),
        "image": Image(),
        "views": List(Image()),
        "mesh_path": Value("string"),
        "n_faces": Value("int64"),
        "render_seconds": Value("float64"),
        "extents": List(Value("float64"), length=3),
        "area": Value("float64"),
        "volume": Value("float64"),
    }
    if with_user_image:
        columns["user_image"] = Image()
    return Features(columns)


@dataclass
class RenderRecord:
    """What a render actor sends back for one program: a status, and views and mesh when usable."""

    status: str
    """The OpenSCAD status, ``degenerate`` for an ok run without volume, or ``ok``."""
    seconds: float
    """OpenSCAD wall time."""
    detail: str = ""
    """First error line of OpenSCAD's messages (failures only)."""
    views: list[bytes] = field(default_factory=list)
    """One PNG per camera of :data:`renderer.views.CANONICAL_CAMERAS`."""
    view_names: tuple[str, ...] = ()
    vertices: np.ndarray | None = None
    """``(N, 3) float32``."""
    faces: np.ndarray | None = None
    """``(M, 3) int32``."""
    extents: tuple[float, float, float] = (0.0, 0.0, 0.0)
    area: float = 0.0
    volume: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def image(self) -> bytes:
        """The iso view's PNG (the first camera when there is no iso camera)."""
        names = list(self.view_names)
        return self.views[names.index("iso") if "iso" in names else 0]


class ViewProcessor:
    """RenderPool "scorer" for the corpus: an OpenSCAD result -> :class:`RenderRecord`.

    Picklable (plain settings only). ``prepare`` is never used by the corpus (its
    requests have no target) but is part of the pool's scorer contract.
    """

    def __init__(self, size: int = 128, threads: int = 1):
        self.size = size
        self.threads = threads

    def prepare(self, vertices, faces):
        return None

    def __call__(self, result, prepared=None) -> RenderRecord:
        from corpus.families import is_valid_mesh

        status, seconds = str(result.status), float(result.seconds)
        if not result.ok:
            return RenderRecord(status, seconds, first_error_line(result.stderr))
        if not is_valid_mesh(result):
            return RenderRecord("degenerate", seconds, "the mesh is flat or empty")
        vertices = np.asarray(result.vertices, dtype=np.float32)
        faces = canonical_faces(result.faces).astype(np.int32)
        images, names = target_views(vertices, faces, self.size, self.threads)
        if images is None:
            return RenderRecord("degenerate", seconds, "no usable face")
        extents, area, volume = mesh_measures(vertices, faces)
        pngs = [encode_png(image) for image in images]
        return RenderRecord("ok", seconds, "", pngs, names, vertices, faces, extents, area, volume)


def canonical_faces(faces: np.ndarray) -> np.ndarray:
    """``faces (M, 3)`` in a canonical order: each triangle rotated to start at its smallest
    index (orientation kept), rows sorted. OpenSCAD emits the same triangles in an order that
    varies from run to run; this makes the stored mesh (and a build) byte-for-byte repeatable."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    shift = np.argmin(faces, axis=1)
    rolled = faces[np.arange(len(faces))[:, None], (shift[:, None] + np.arange(3)) % 3]
    return rolled[np.lexsort(rolled.T[::-1])]


def target_views(vertices: np.ndarray, faces: np.ndarray, size: int = 128, threads: int = 1):
    """The ``(V, H, W) float32`` views of a target as :func:`reward.score.prepare_target` renders
    them (own frame, cleaned mesh, canonical cameras) and the camera names; ``(None, ())`` if no
    face is usable."""
    from renderer.views import CANONICAL_CAMERAS, Frame, render
    from reward.geometry import clean_mesh

    frame = Frame.of(np.asarray(vertices, dtype=np.float64))
    clean_vertices, clean_faces = clean_mesh(frame.apply(vertices), faces)
    if len(clean_faces) == 0:
        return None, ()
    mesh = _Mesh(clean_vertices, clean_faces)
    views = render(mesh, Frame((0.0, 0.0, 0.0), 1.0), CANONICAL_CAMERAS, size, threads)
    return views.images, views.names


@dataclass
class _Mesh:
    vertices: np.ndarray
    faces: np.ndarray


def mesh_measures(vertices: np.ndarray, faces: np.ndarray) -> tuple[tuple[float, float, float], float, float]:
    """Bounding-box ``extents``, surface ``area`` and enclosed ``volume`` (divergence theorem, abs;
    OpenSCAD's meshes are taken as closed)."""
    from reward.crossings import enclosed_volume
    from reward.geometry import triangle_areas

    v = np.asarray(vertices, dtype=np.float64)
    area = float(triangle_areas(v, faces).sum())
    volume = float(enclosed_volume(v, faces, closed=True))
    extents = tuple(float(e) for e in v.max(axis=0) - v.min(axis=0))
    return extents, area, volume  # type: ignore[return-value]


def encode_png(image: np.ndarray) -> bytes:
    """A float image in [0, 1] as PNG bytes (grayscale, deterministic)."""
    from PIL import Image

    from renderer.views import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes as a ``(H, W) float32`` image in [0, 1]."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32) / 255.0


def first_error_line(stderr: str) -> str:
    """The first ``ERROR``/``WARNING`` line of OpenSCAD's messages, else the last non-empty one."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for prefix in ("ERROR", "WARNING"):
        for line in lines:
            if line.startswith(prefix):
                return line
    return lines[-1] if lines else ""


def save_mesh(root: str, row_id: str, vertices: np.ndarray, faces: np.ndarray) -> str:
    """Write ``meshes/<row_id>.npz`` under ``root``; return its path relative to ``root``."""
    relative = os.path.join("meshes", f"{row_id}.npz")
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path, vertices=np.asarray(vertices, np.float32), faces=np.asarray(faces, np.int32))
    return relative


def load_mesh(root: str, row_or_path) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (N, 3) float32, faces (M, 3) int32)`` of a row (or its ``mesh_path``)."""
    relative = row_or_path["mesh_path"] if isinstance(row_or_path, dict) else row_or_path
    with np.load(os.path.join(root, relative)) as data:
        return data["vertices"], data["faces"]


def row_of(record: RenderRecord, mesh_path: str, **columns) -> dict:
    """A table row from a usable :class:`RenderRecord`; ``columns`` gives id, family, seed, params, code."""
    return {
        **columns,
        "image": {"bytes": record.image(), "path": None},
        "views": [{"bytes": b, "path": None} for b in record.views],
        "mesh_path": mesh_path,
        "n_faces": int(len(record.faces)),
        "render_seconds": float(record.seconds),
        "extents": [float(e) for e in record.extents],
        "area": float(record.area),
        "volume": float(record.volume),
    }


def write_splits(root: str, rows_by_split: dict[str, list[dict]], with_user_image: bool = False) -> dict:
    """Write each split's rows as ``data/{split}-*.parquet`` under ``root`` (old ones removed).

    A split without rows gets no file (``datasets`` cannot read an empty parquet split);
    :func:`load` gives it as an empty dataset. Returns ``{split: number of rows}``.
    """
    from datasets import Dataset

    data_dir = os.path.join(root, "data")
    os.makedirs(data_dir, exist_ok=True)
    for old in glob.glob(os.path.join(data_dir, "*.parquet")):
        os.remove(old)
    schema = features(with_user_image)
    for split, rows in rows_by_split.items():
        shards = -(-len(rows) // ROWS_PER_SHARD)
        for shard in range(shards):
            part = rows[shard * ROWS_PER_SHARD : (shard + 1) * ROWS_PER_SHARD]
            path = os.path.join(data_dir, f"{split}-{shard:05d}-of-{shards:05d}.parquet")
            Dataset.from_list(part, features=schema).to_parquet(path)
    return {split: len(rows) for split, rows in rows_by_split.items()}


def split_files(root: str, split: str) -> list[str]:
    """The parquet files of ``split`` under ``root``, sorted."""
    return sorted(glob.glob(os.path.join(root, "data", f"{split}-*.parquet")))


def available_splits(root: str) -> list[str]:
    """The splits that have files under ``root/data``, in :data:`SPLITS` order, then others sorted."""
    files = glob.glob(os.path.join(root, "data", "*.parquet"))
    names = {os.path.basename(p).rsplit("-", 3)[0] for p in files}
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def load(root: str, split: str = "train", decode: bool = True):
    """One split of a corpus folder as a ``datasets.Dataset`` (through ``load_dataset("parquet")``).

    A split that ``build.json`` lists with no rows gives an empty dataset with the corpus
    features. With ``decode=False`` the image columns stay ``{"bytes", "path"}`` dicts
    (the exact PNG bytes). Raises FileNotFoundError for a split the folder does not have.
    """
    from datasets import Dataset, Image, List, load_dataset

    files = split_files(root, split)
    if files:
        dataset = load_dataset("parquet", data_files={split: files}, split=split)
    else:
        info = read_build_info(root)
        if split not in info.get("splits", {}):
            known = ", ".join(available_splits(root)) or "none"
            raise FileNotFoundError(f"no split {split!r} under {root}/data (splits: {known})")
        schema = features(with_user_image=info.get("kind") == "import")
        dataset = Dataset.from_dict({name: [] for name in schema}, features=schema)
    if not decode:
        for name, feature in dataset.features.items():
            if isinstance(feature, Image):
                dataset = dataset.cast_column(name, Image(decode=False))
            elif isinstance(feature, List) and isinstance(feature.feature, Image):
                dataset = dataset.cast_column(name, List(Image(decode=False)))
    return dataset


def read_build_info(root: str) -> dict:
    """``root/build.json`` as a dict ({} when missing)."""
    path = os.path.join(root, "build.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_build_info(root: str, info: dict) -> str:
    """Write ``info`` to ``root/build.json`` (atomically); return the path."""
    path = os.path.join(root, "build.json")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(path + ".tmp", path)
    return path
