"""What the web app (:mod:`rl.app`) does with one request, without gradio: check the uploads, write
the program, render it, and say what happened.

:class:`AppService` is made once when the app starts: it loads the policy and starts the render
pool of the refinement (:meth:`AppService.start`); every request then goes through
:meth:`AppService.handle`, which uses :func:`rl.predict.infer` (the inference of
``python -m rl.predict``) on inputs held in memory. Every program runs in the sandboxed
OpenSCAD (:func:`renderer.openscad.run`), directly or on the pool.

A request is pictures (the iso view, and optionally the front, right and top views, in that
order, as the corpus renders them), a mesh (``.stl``, ``.obj``, ``.off``, ``.ply``, ``.npz``), or
both (the mesh is what programs are checked against). The policy is shown all four views when
four are given, else the iso view alone; with a mesh, the mesh's four views and its size
(:func:`rl.predict.prepare_inputs`). An optional size in mm scales the kept program so that
its largest side has that length. Every file is checked before it is decoded: its size on disk
(``max_upload_mb``), a picture's width x height from its header (``max_image_pixels``); a bad
one is an :class:`Answer` whose status names the problem, never an exception.

Each request writes into its own folder (the newest ``keep_results`` are kept): ``prediction.scad``,
``prediction.stl`` (a valid program only), ``views.png`` (the input's views above the program's:
iso, front, right, top) and ``candidates.json`` (as ``rl.predict`` writes it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass

import numpy as np

from configs.app import AppConfig
from configs.cli import UsageError
from configs.eval import PredictConfig
from renderer.errors import RendererUnavailable
from renderer.stl import write_binary_stl
from renderer.views import to_uint8
from reward.agreement import AgreementScorer, picture_of
from rl.checkpoint import load_checkpoint
from rl.files import write_json
from rl.predict import VIEW_SIZE, infer, prepare_inputs, read_image, read_mesh
from rl.refine import describe

VIEW_NAMES = ("iso", "front", "right", "top")
"""The picture slots of a request, in the order of :func:`reward.agreement.picture_cameras`."""
MAKE_CHECKPOINT = "make demo   # or: .venv/bin/python -m rl.demo"
"""The command that makes the default checkpoint, runs/demo/ppo/final."""
SCALED_MODULE = "scadloop_sized_part"
"""The module a program is wrapped in when a size is asked for."""


@dataclass
class Answer:
    """What a request gives back: every field the page shows."""

    status: str
    """Markdown: valid or not, the terms of the agreement, OpenSCAD's messages; or why the upload
    was refused."""
    code: str = ""
    """The kept program ('' when nothing ran)."""
    scad_path: str | None = None
    """``prediction.scad`` (the program's text)."""
    stl_path: str | None = None
    """``prediction.stl``; None when no program is valid."""
    views_path: str | None = None
    """``views.png``: the input's views above the program's."""
    summary: dict | None = None
    """What ``candidates.json`` holds."""


class AppService:
    """The policy, the render pool and the results folder of a running app."""

    def __init__(self, config: AppConfig, policy=None, pool=None, problem: str | None = None, index=None):
        self.config = config
        self.policy = policy
        self.pool = pool
        self.index = index
        """The :class:`policies.exemplars.ExemplarIndex` of ``config.retrieve``, or None."""
        self.problem = problem
        """Why there is no policy (the page then says how to make one), or None."""
        self.folder = tempfile.mkdtemp(prefix="scadloop-app-")

    @classmethod
    def start(cls, config: AppConfig) -> AppService:
        """Load the checkpoint and start the render pool once; a checkpoint that is missing or does
        not load leaves ``problem`` set instead (no pool is started then)."""
        from renderer.pool import RenderPool
        from rl.runtime import quiet_libraries, set_threads

        set_threads(config.threads)
        quiet_libraries()
        try:
            policy = load_checkpoint(config.checkpoint)
        except UsageError as error:
            return cls(config, problem=str(error))
        index = None
        if config.retrieve:
            from rl.predict import retrieval_index

            try:
                index = retrieval_index(policy, config.checkpoint, config.corpus_dir)
            except UsageError as error:
                return cls(config, problem=f"retrieve {config.retrieve}: {error}")
        pool = RenderPool(AgreementScorer(VIEW_SIZE), workers=config.render_workers,
                          ray_address=config.ray_address)
        return cls(config, policy, pool, index=index)

    def missing_page(self) -> str:
        """Markdown of the page shown when there is no policy: what is wrong and which command fixes it."""
        return (f"## No policy to serve\n\n`{self.config.checkpoint}`: {self.problem}\n\n"
                f"Make the default checkpoint (`runs/demo/ppo/final`, the main job, about 15 minutes on "
                f"2 CPU cores) with\n\n```bash\n{MAKE_CHECKPOINT}\n```\n\nthen start the app again, or "
                f"start it on another policy folder: `python -m rl.app --checkpoint runs/<name>/final`.")

    def handle(self, pictures, mesh_path: str | None = None, size_mm: float | None = None,
               k: int | None = None, refine: int | None = None, progress=None) -> Answer:
        """Answer one request: ``pictures`` are up to four paths or None (:data:`VIEW_NAMES`),
        ``mesh_path`` a mesh file or None; ``k`` and ``refine`` default to the config's.
        ``progress(fraction, stage)`` hears of each stage."""
        if self.policy is None:
            return Answer(self.missing_page())
        started = time.perf_counter()
        tell = progress or (lambda fraction, stage: None)
        try:
            config = self._predict_config(k, refine)
            size = _size(size_mm)
            tell(0.0, "checking the upload")
            inputs, against = self._inputs(list(pictures or []), mesh_path)
        except UsageError as error:
            return Answer(f"**Upload refused:** {_plain(error)}")
        target_id = uuid.uuid4().hex
        try:
            prediction = infer(self.policy, inputs, config, self.pool, target_id, tell, self.index)
        except RendererUnavailable as error:  # no OpenSCAD or no sandbox on this machine
            return Answer(f"**OpenSCAD cannot run here:** {_plain(error)}")
        finally:
            if self.pool is not None:
                self.pool.targets.pop(target_id, None)
        tell(0.9, "writing the files")
        code, result, note = prediction.code, prediction.result, ""
        if size is not None and prediction.valid:
            code, result, note = _scaled(code, result, size)
        out = self._request_folder(target_id)
        summary = {"against": against, "chosen": prediction.chosen, "valid": prediction.valid,
                   "status": str(result.status), "k": config.k, "size_mm": size,
                   "candidates": prediction.candidates(),
                   "refine": prediction.refined.to_dict() if prediction.refined else None,
                   "seconds": round(time.perf_counter() - started, 3)}
        write_json(os.path.join(out, "candidates.json"), summary)
        scad = os.path.join(out, "prediction.scad")
        with open(scad, "w", encoding="utf-8") as fh:
            fh.write(code)
        stl = None
        if prediction.valid:
            stl = write_binary_stl(os.path.join(out, "prediction.stl"), result.vertices, result.faces)
        views = _save_views(os.path.join(out, "views.png"), inputs.target.pictures, prediction.kept_views)
        status = _status(prediction, against, summary, note)
        return Answer(status, code, scad, stl, views, summary)

    def _predict_config(self, k: int | None, refine: int | None) -> PredictConfig:
        c = self.config
        k = c.k if k is None else int(k)
        refine = c.refine if refine is None else int(refine)
        if not 1 <= k <= c.max_k:
            raise UsageError(f"k must be in 1..{c.max_k}, got {k}")
        if not 0 <= refine <= c.max_refine:
            raise UsageError(f"refinement renders must be in 0..{c.max_refine}, got {refine}")
        return PredictConfig(checkpoint=c.checkpoint, k=k, select=c.select, refine=refine,
                             retrieve=c.retrieve if self.index is not None else 0,
                             refine_seconds=c.refine_seconds, refine_optimiser=c.refine_optimiser,
                             render_workers=c.render_workers, ray_address=c.ray_address,
                             temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens,
                             seed=c.seed, threads=c.threads)

    def _inputs(self, paths: list, mesh_path: str | None):
        """:class:`rl.predict.Inputs` of the uploads and what programs are checked against."""
        from policies.pictures import user_views

        given = [i for i, path in enumerate(paths) if path]
        if len(paths) > len(VIEW_NAMES):
            raise UsageError(f"at most {len(VIEW_NAMES)} pictures ({', '.join(VIEW_NAMES)}), "
                             f"got {len(paths)}")
        if given and given != list(range(len(given))):
            missing = VIEW_NAMES[next(i for i in range(len(VIEW_NAMES)) if i not in given)]
            raise UsageError(f"the views are used in the order {', '.join(VIEW_NAMES)}: "
                             f"give the {missing} view too, or leave out the ones after it")
        if not given and not mesh_path:
            raise UsageError("upload a picture of the part (its iso view) or a mesh of it")
        images = [self._checked(paths[i], lambda path: read_image(path, self.config.max_image_pixels))
                  for i in given]
        images = user_views(images, VIEW_SIZE)  # as our renders look (policies.pictures)
        mesh = None
        if mesh_path:
            mesh = self._checked(mesh_path, lambda path: read_mesh(path, self._max_bytes()))
        pictures = np.stack([picture_of(image, VIEW_SIZE) for image in images]) if images else None
        try:
            if images:  # the policy is shown all four views, or the iso view alone (or the mesh's)
                shown = images if len(images) == len(VIEW_NAMES) else images[0]
                return prepare_inputs(shown, pictures, mesh), "mesh" if mesh else "pictures"
            return prepare_inputs((), None, mesh), "mesh"  # the mesh's own views, shown and compared
        except ValueError as error:  # a mesh without a usable face
            raise UsageError(f"mesh {os.path.basename(mesh_path)!r}: {error}") from None

    def _checked(self, path: str, read):
        """``read(path)`` after the upload cap; messages name the file, not the server's folder."""
        name = os.path.basename(path)
        try:
            if os.path.isfile(path) and os.path.getsize(path) > self._max_bytes():
                raise UsageError(f"{name!r} is {os.path.getsize(path) / 2**20:.1f} MiB, over the "
                                 f"{self.config.max_upload_mb:g} MiB limit")
            return read(path)
        except UsageError as error:
            raise UsageError(str(error).replace(path, name)) from None

    def _max_bytes(self) -> int:
        return int(self.config.max_upload_mb * 2**20)

    def _request_folder(self, name: str) -> str:
        """A new folder for one request's files; the oldest beyond ``keep_results`` are removed."""
        out = os.path.join(self.folder, name)
        os.makedirs(out)
        folders = sorted((os.path.join(self.folder, name) for name in os.listdir(self.folder)),
                         key=os.path.getmtime)
        for old in folders[: max(0, len(folders) - self.config.keep_results)]:
            shutil.rmtree(old, ignore_errors=True)
        return out

    def close(self) -> None:
        """Stop the render pool and remove the results folder."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _size(size_mm) -> float | None:
    if size_mm is None or size_mm == "" or float(size_mm) == 0:
        return None
    size = float(size_mm)
    if not 0 < size <= 10_000 or not np.isfinite(size):
        raise UsageError(f"the size must be a length in mm between 0 and 10000 (0 or empty: none), "
                         f"got {size_mm}")
    return size


def _scaled(code: str, result, size: float):
    """The program wrapped so its bounding box's largest side is ``size`` mm, its render and a note;
    the program unchanged (and why) when the wrapped one does not render."""
    from renderer.fit import scaled_program
    from renderer.openscad import run as run_openscad

    extent = float(np.ptp(result.vertices, axis=0).max())
    factor = size / extent
    wrapped = (f"// scaled by {factor:.6g}: largest side {extent:.4g} mm -> {size:g} mm\n"
               + scaled_program(code, factor, SCALED_MODULE))
    scaled = run_openscad(wrapped)
    if not scaled.ok or len(scaled.faces) == 0:
        return code, result, (f"the program scaled to {size:g} mm did not render ({scaled.status}); "
                              "kept as written")
    return wrapped, scaled, f"scaled by {factor:.4g} to a largest side of {size:g} mm (was {extent:.4g} mm)"


def _save_views(path: str, inputs: np.ndarray, views: np.ndarray | None) -> str:
    """One PNG: the input's views (``(P, H, W)``, P <= 4) on the top row, the program's four below
    (white when it is invalid)."""
    from PIL import Image

    size = inputs.shape[-1]
    grid = np.ones((2, len(VIEW_NAMES), size, size), np.float32)
    grid[0, : len(inputs)] = inputs
    if views is not None:
        grid[1] = views
    rows = [np.concatenate(list(row), axis=1) for row in grid]
    gap = np.full((4, rows[0].shape[1]), 0.8, np.float32)
    Image.fromarray(to_uint8(np.concatenate([rows[0], gap, rows[1]]))).save(path)
    return path


def _status(prediction, against: str, summary: dict, note: str) -> str:
    """The Markdown the page shows above the program."""
    candidates = summary["candidates"]
    valid = sum(c["valid"] for c in candidates)
    lines = []
    if prediction.valid:
        chosen = prediction.chosen
        agreement = prediction.refined.best if prediction.refined else prediction.agreements[chosen]
        lines.append(f"**Valid program**: kept program {chosen} of {len(candidates)} ({valid} valid), "
                     f"chosen by agreement with the {against}; {summary['seconds']:.1f} s.")
        lines += ["", f"Agreement of its render with the {against} (terms in [0, 1], reward.agreement):", "",
                  "| term | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in _terms(agreement)]
        if prediction.refined:
            lines += ["", describe(prediction.refined.to_dict()) + "."]
        if note:
            lines += ["", f"Size: {note}."]
    else:
        lines.append(f"**No valid program** among {len(candidates)} (INVALID, status "
                     f"`{summary['status']}`): the greedy attempt is shown; {summary['seconds']:.1f} s.")
        lines += ["", "OpenSCAD's messages:", "", "```text", _fence_safe(prediction.result.stderr), "```"]
    lines += ["", "| program | status | agreement |", "|---:|---|---:|"]
    lines += [f"| {c['index']} ({c['mode']}) | {c['status']} | "
              f"{c['agreement']['total']:.3f} |" for c in candidates]
    return "\n".join(lines)


def _terms(agreement) -> list[tuple[str, float]]:
    names = ("total", "ssim", "silhouette", "frame_ssim", "frame_silhouette", "chamfer", "iou")
    return [(name, getattr(agreement, name)) for name in names if getattr(agreement, name) is not None]


def _fence_safe(text: str, lines: int = 20) -> str:
    tail = [line for line in (text or "").strip().splitlines() if line.strip()][-lines:]
    return "\n".join(tail).replace("```", "'''") or "(no message)"


def _plain(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
