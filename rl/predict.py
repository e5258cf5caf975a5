"""Predict the OpenSCAD program of a part from a picture, its four views, or a mesh.

Commands::

    python -m rl.predict part.png                                  # runs/sft/final, k=4
    python -m rl.predict photo.jpg --checkpoint runs/ppo/final --k 8 --out pred/ --size 40x30x12
    python -m rl.predict --views iso.png,front.png,right.png,top.png    # the four canonical views
    python -m rl.predict --tile views.png                          # the four views tiled 2x2
    python -m rl.predict --mesh part.stl --refine 200              # an STL: its views and its size
    python -m rl.predict part.png --select consensus
    python -m rl.predict --mesh part.stl --retrieve 4   # also the 4 nearest training parts' programs
    python -m rl.predict part.png --checkpoint runs/ppo/final --refine 200       # then tune its numbers
    python -m rl.predict --help

What the policy is shown (:mod:`policies.inputs`): a mesh's four views and exact size; else the
four views (``--views``, or ``--tile`` cut in four); else the one picture as the iso view (a
tiled policy then sees three blank views: a note says quality is lower); ``--size WxDxH`` (mm)
gives the size when no mesh does. Each picture may be any size, RGB, grayscale or with alpha
(composited on white); it is padded to a square with white and resized by the policy. The
policy writes ``k`` programs (the greedy one, then ``k - 1`` sampled; ``--syntax_guard``: never a
token after which no program could parse, :mod:`renderer.syntax`); each runs in OpenSCAD.
With ``--retrieve N`` the programs of the N training parts whose views are nearest in pixels
(:class:`policies.exemplars.ExemplarIndex` of the train split) join them as candidates, and when
the size is known (``--size``, ``--mesh``) so does the greedy program brought to it (``--fit``,
on by default), twice: ``fitted`` (:func:`renderer.fit.fit_program` scales each axis so its
render's bounding box is the size; editable, wrapped in ``scale([...])``) and ``dimensioned``
(``--dimension``, on by default: :func:`renderer.dimensions.dimension` solves its own numbers to
the size, ``outer_d = 20;`` becoming ``outer_d = 25;``, and scales only what they fall short of);
with a mesh both are moved onto the mesh's box, in the mesh's coordinates. The kept program is:

1. a **valid** one (a usable 3-D mesh) before any invalid one;
2. among valid ones, by ``--select``:

   - ``input`` (default): the program's agreement with the input (:mod:`reward.agreement`): SSIM
     and silhouette IoU between its iso view, rendered in its own frame with the corpus camera
     (exactly how corpus images are made), and the input image in grayscale at the same size. It
     assumes the picture is a render-like iso view (as corpus and reward images are). With
     ``--mesh``, the mesh replaces the picture: its four views in its own frame and the program
     in the mesh's frame (views, chamfer, IoU).
   - ``consensus``: self-consistency. Each valid program is taken as the target and the others
     are scored against it with the reward (:class:`reward.score.Scorer`, IoU + SSIM + chamfer in
     its frame); the program the others agree with most wins. Needs no assumption about the
     picture, but needs several valid programs to mean anything.
3. with no valid program, the greedy attempt is written anyway and reported as invalid.

``--refine N`` then tunes the kept program's numeric literals against the same agreement, with
at most N renders and ``--refine_seconds`` (:func:`rl.refine.refine`; never worse than the kept
program on the agreement, only literals changed).

Writes into ``--out`` (default ``runs/predict/<image stem>``): ``prediction.scad`` (the refined
program with ``--refine``), ``unrefined.scad`` (with ``--refine``: the kept program before it),
``prediction.stl`` (binary; only for a valid program), ``prediction.png`` (the input, then the
program's iso / front / right / top views) and ``candidates.json`` (every program, its status,
agreement and score; with ``--refine`` the refinement: both programs, their agreements, the
literals changed, renders and seconds). The inputs and checkpoint are checked first; a bad
one is one line on stderr (``rl.predict: error: ...``) and exit 2, never a traceback: no input,
a picture beside --views or --tile, --views with other than 4 pictures, a size that is not
three positive numbers, a missing file, a folder or FIFO, a picture over 8192x8192 pixels
(refused from its header, before decoding), a non-image or a truncated one; a mesh that is
not a binary STL, .npz, .obj, .off or .ply (:mod:`renderer.meshfiles`), is over 256 MiB or
has no usable face; a checkpoint whose ``policy.json`` is not JSON or names an unknown kind,
whose base model is missing, or whose weights are pickled (``.bin``: never unpickled,
safetensors only). A 16-bit grayscale picture is scaled to 8-bit (65535 -> 255), not clipped.
"""

from __future__ import annotations

import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from configs.cli import Parser, UsageError, fail
from configs.eval import PredictConfig
from configs.loader import ConfigError, add_arguments, from_args
from renderer.errors import RendererUnavailable
from renderer.stl import write_binary_stl
from reward.agreement import AgreementScorer
from rl.checkpoint import load_checkpoint
from rl.files import write_json
from rl.predict_choice import VIEW_SIZE, Inputs, choose, own_views, prepare_inputs
from rl.predict_files import (  # noqa: F401  (the limits are named here too)
    MAX_MESH_BYTES,
    MAX_PIXELS,
    mesh_size,
    read_image,
    read_mesh,
    split_tile,
)
from rl.refine import RefineSettings, describe, refine
from rl.runtime import quiet_libraries, set_threads

PROG = "rl.predict"


@dataclass
class Prediction:
    """What :func:`infer` found: every program with its render and scores, and the kept one."""

    codes: list[str]
    """Every program: the greedy one, then the ``k - 1`` sampled."""
    results: list
    """Each program's :class:`renderer.openscad.MeshResult`."""
    views: list
    """Each program's ``(4, H, W)`` views in its own frame; None for an invalid one."""
    agreements: list
    """Each program's :class:`reward.agreement.Agreement` with the inputs."""
    scores: list
    """Each program's selection score (``--select``); None for an invalid one."""
    chosen: int
    """Index of the kept program."""
    code: str
    """The kept program (after refinement, when it ran)."""
    result: object
    """The kept program's render."""
    kept_views: np.ndarray | None
    """The kept program's own-frame views; None when no program is valid."""
    refined: object = None
    """The :class:`rl.refine.RefineResult` of ``--refine``, or None."""
    retrieved: list = field(default_factory=list)
    """Ids of the training parts whose programs follow the policy's (``--retrieve``), in order."""
    sized: list[str] = field(default_factory=list)
    """Modes of the last programs, the greedy one brought to the size (``--fit``): ``fitted``
    (scaled as written) and, with ``--dimension``, ``dimensioned`` (its numbers solved first)."""

    @property
    def valid(self) -> bool:
        return self.kept_views is not None

    def candidates(self) -> list[dict]:
        """Every program as ``candidates.json`` lists it."""
        first_retrieved = len(self.codes) - len(self.retrieved) - len(self.sized)
        modes = ["greedy"] + ["sample"] * (first_retrieved - 1) + ["retrieved"] * len(self.retrieved)
        modes += self.sized
        return [
            {"index": i, "mode": modes[i],
             "retrieved_from": self.retrieved[i - first_retrieved] if modes[i] == "retrieved" else None,
             "status": str(r.status),
             "valid": self.views[i] is not None, "score": self.scores[i],
             "agreement": self.agreements[i].to_dict(), "openscad_seconds": r.seconds,
             "stderr": r.stderr.strip().splitlines()[-1:] if not r.ok else [], "code": text}
            for i, (r, text) in enumerate(zip(self.results, self.codes, strict=True))
        ]


def infer(policy, inputs: Inputs, config: PredictConfig, pool=None, target_id: str = "input",
          progress=None, index=None) -> Prediction:
    """Sample ``config.k`` programs of ``inputs.image``, add the programs of the ``config.retrieve``
    training parts nearest to it in ``index`` (a :class:`policies.exemplars.ExemplarIndex`, when
    given), run each in the sandboxed OpenSCAD, keep one by ``config.select`` and, with
    ``config.refine``, tune its numbers (:func:`rl.refine.refine`).

    ``pool``: a :class:`renderer.pool.RenderPool` of an :class:`AgreementScorer` for the refinement,
    which registers the inputs there as ``target_id`` (None: a pool of ``config.render_workers`` is
    made and closed). ``progress(fraction, stage)``, if given, hears of each stage. Nothing is written.
    """
    import torch

    from renderer.openscad import run as run_openscad
    from renderer.syntax import ScadPrefix

    tell = progress or (lambda fraction, stage: None)
    torch.manual_seed(config.seed)
    tell(0.0, f"writing {config.k} program{'s' * (config.k > 1)}")
    draw = functools.partial(policy.sample, [inputs.image], max_new_tokens=config.max_new_tokens,
                             grammar=ScadPrefix if config.syntax_guard else None)
    codes = draw(greedy=True).texts
    if config.k > 1:
        codes += draw(n=config.k - 1, temperature=config.temperature, top_p=config.top_p).texts
    retrieved = []
    if index is not None and config.retrieve:
        rows = index.nearest_rows(inputs.image, config.retrieve)
        codes = codes + [index.program(r, inputs.image.size) for r in rows]
        retrieved = [index.ids[r] for r in rows]
    tell(0.4, f"rendering {len(codes)} program{'s' * (len(codes) > 1)} with OpenSCAD")
    with ThreadPoolExecutor(max_workers=min(len(codes), os.cpu_count() or 1)) as threads:
        results = list(threads.map(run_openscad, codes))
    sized, renders = _sized(codes[0], results[0], inputs, config.dimension) if config.fit else ({}, {})
    for text in sized.values():  # a size is known and the greedy program rendered: its sized forms join
        codes.append(text)
        results.append(renders.get(text) or run_openscad(text))
    scorer = AgreementScorer(VIEW_SIZE)
    views = [own_views(r) for r in results]
    agreements = [scorer(r, inputs.target) for r in results]
    best, scores = choose(results, views, agreements, config.select)
    code, result, kept_views, refined = codes[best], results[best], views[best], None
    if config.refine and kept_views is not None:
        tell(0.6, f"refining the kept program's numbers (at most {config.refine} renders)")
        refined = _refine(code, agreements[best], inputs, config, pool, target_id)
        if refined.code != code:
            code, result = refined.code, run_openscad(refined.code)
            kept_views = own_views(result)
    return Prediction(codes, results, views, agreements, scores, best, code, result, kept_views, refined,
                      retrieved, list(sized))


def _sized(code: str, result, inputs: Inputs, dimensioned: bool = True) -> tuple[dict[str, str], dict]:
    """``{mode: program}`` of ``code`` brought to the size the input gives: ``fitted`` (scaled,
    renderer.fit) and with ``dimensioned`` also ``dimensioned`` (its numbers solved to it first,
    renderer.dimensions, then scaled for the rest), each moved onto the mesh's box when the input is
    a mesh; none when no size is known or ``code`` did not render a mesh, and only programs that
    differ from ``code`` and from each other. Beside it, ``{program: MeshResult}`` of the programs
    the solve rendered (none is rendered twice)."""
    from renderer.dimensions import dimension, measure_with_openscad
    from renderer.fit import extents_of, fit_program, placed_program
    from renderer.openscad import run as run_openscad

    size = inputs.image.size
    renders: dict = {}
    if not result.ok or len(result.faces) == 0 or size is None:
        return {}, renders

    def fitted(text: str, render) -> str:
        if inputs.mesh is None:
            return fit_program(text, extents_of(render.vertices), size)
        lower = np.asarray(inputs.mesh[0], dtype=np.float64).min(axis=0)  # the mesh's corner, at the size
        return placed_program(text, render.vertices, (lower, lower + np.asarray(size, dtype=np.float64)))

    sized = {"fitted": fitted(code, result)}
    if dimensioned:
        [solved] = dimension([code], [extents_of(result.vertices)], [size],
                             functools.partial(measure_with_openscad, renders=renders))
        if solved.code != code:
            sized["dimensioned"] = solved.program if inputs.mesh is None else fitted(
                solved.code, renders.get(solved.code) or run_openscad(solved.code))
    unique = {}
    for mode, text in sized.items():
        if text != code and text not in unique.values():
            unique[mode] = text
    return unique, renders


def read_inputs(image_path: str | None, config: PredictConfig) -> Inputs:
    """:class:`Inputs` of what the user gave: one picture, four views (``--views``), a 2x2 tile
    (``--tile``) or a mesh (``--mesh``, alone or beside pictures), and ``--size``; a
    :class:`UsageError` of one line naming what is wrong."""
    from policies.inputs import parse_size
    from policies.pictures import user_views

    given = [name for name, value in (("a picture", image_path), ("--views", config.views),
                                      ("--tile", config.tile)) if value]
    if len(given) > 1:
        raise UsageError(f"give one of a picture, --views or --tile, not {' and '.join(given)}")
    if not given and not config.mesh:
        raise UsageError("give a picture of the part, --views, --tile or --mesh")
    try:
        size = parse_size(config.size) if config.size else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    images = []
    if config.views:
        paths = [p.strip() for p in config.views.split(",") if p.strip()]
        if len(paths) != 4:
            raise UsageError(f"--views needs 4 pictures (iso,front,right,top, comma-separated), "
                             f"got {len(paths)}")
        images = [read_image(path) for path in paths]
    elif config.tile or image_path:
        images = read_image(config.tile or image_path)
        images = list(split_tile(images)) if config.tile else [images]
    images = user_views(images, VIEW_SIZE)  # as our renders look (policies.pictures)
    mesh = read_mesh(config.mesh) if config.mesh else None
    try:
        return prepare_inputs(images, None, mesh, size)
    except ValueError as error:  # a mesh without a usable face
        raise UsageError(f"mesh {config.mesh!r}: {error}") from None


def predict(image_path: str | None, config: PredictConfig) -> dict:
    """Sample, render, choose (and refine), write the prediction; returns what ``candidates.json`` holds."""
    set_threads(config.threads)
    quiet_libraries()
    inputs = read_inputs(image_path, config)
    policy = load_checkpoint(config.checkpoint)
    if len(inputs.image.views) == 1 and policy.config.views == "tile":
        print(f"{PROG}: note: one picture is shown as the iso view of four; --views, --tile or --mesh "
              "give the policy all four (better programs)", flush=True)
    source = image_path or config.tile or config.mesh or config.views.split(",")[0]
    stem = os.path.splitext(os.path.basename(source.strip()))[0]
    out = config.out or os.path.join("runs", "predict", stem)
    os.makedirs(out, exist_ok=True)
    index = retrieval_index(policy, config.checkpoint, config.corpus_dir) if config.retrieve else None
    prediction = infer(policy, inputs, config, index=index)
    if prediction.refined is not None:
        with open(os.path.join(out, "unrefined.scad"), "w", encoding="utf-8") as fh:
            fh.write(prediction.refined.start_code)
    elif os.path.exists(os.path.join(out, "unrefined.scad")):
        os.remove(os.path.join(out, "unrefined.scad"))  # an older run's, not this prediction's
    _write_prediction(out, prediction.code, prediction.result, inputs.pictures[0], prediction.kept_views)
    summary = {
        "image": image_path, "views": config.views, "tile": config.tile, "mesh": config.mesh,
        "size": list(inputs.image.size) if inputs.image.size else None,
        "size_shown": bool(inputs.image.size) and policy.config.size_in_prompt,
        "exemplar": exemplar_shown(policy, inputs.image),
        "checkpoint": config.checkpoint, "select": config.select, "retrieve": config.retrieve,
        "syntax_guard": config.syntax_guard,
        "chosen": prediction.chosen, "valid": prediction.valid, "status": str(prediction.result.status),
        "out": out, "candidates": prediction.candidates(),
        "refine": prediction.refined.to_dict() if prediction.refined else None,
    }
    write_json(os.path.join(out, "candidates.json"), summary)
    return summary


def retrieval_index(policy, checkpoint: str, corpus_dir: str | None):
    """The index ``--retrieve`` looks in: the policy's own exemplar index, else one of the train split
    of ``--corpus_dir`` or the corpus the checkpoint was trained on (:func:`rl.eval.retrieval_index`)."""
    from rl.checkpoint import resolve_corpus
    from rl.eval import retrieval_index as corpus_index

    if policy.exemplars is not None:
        return policy.exemplars
    return corpus_index(resolve_corpus(checkpoint, corpus_dir), PROG)


def exemplar_shown(policy, part) -> str | None:
    """Id of the training part whose program the policy was shown with ``part`` (policy.exemplars)."""
    if policy.exemplars is None:
        return None
    return policy.exemplars.ids[policy.exemplars.nearest_row(part)]


def _refine(code: str, start, inputs: Inputs, config: PredictConfig, pool, target_id: str):
    """:func:`rl.refine.refine` of the kept program on ``pool``, or on a render pool of
    ``config.render_workers`` made for it."""
    from renderer.pool import RenderPool

    settings = RefineSettings(renders=config.refine, seconds=config.refine_seconds,
                              optimiser=config.refine_optimiser, seed=config.seed)
    if pool is not None:
        pool.add_target(target_id, inputs.pictures, inputs.mesh)
        return refine(code, pool, target_id, settings, start=start)
    with RenderPool(AgreementScorer(VIEW_SIZE), workers=config.render_workers,
                    ray_address=config.ray_address) as own_pool:
        own_pool.add_target(target_id, inputs.pictures, inputs.mesh)
        return refine(code, own_pool, target_id, settings, start=start)


def _write_prediction(out: str, code: str, result, picture: np.ndarray, views) -> None:
    """``prediction.scad``, ``.stl`` (a valid program only) and ``.png`` (the picture, then the views)."""
    from renderer.views import save_view_row

    with open(os.path.join(out, "prediction.scad"), "w", encoding="utf-8") as fh:
        fh.write(code)
    if views is not None:
        write_binary_stl(os.path.join(out, "prediction.stl"), result.vertices, result.faces)
    elif os.path.exists(os.path.join(out, "prediction.stl")):
        os.remove(os.path.join(out, "prediction.stl"))  # never leave an older run's mesh beside this code
    shown = views if views is not None else np.ones((4, VIEW_SIZE, VIEW_SIZE), np.float32)
    save_view_row(np.concatenate([picture[None], shown]), os.path.join(out, "prediction.png"))


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description="Predict the OpenSCAD program of a picture of a part.")
    parser.add_argument("image", nargs="?", default=None,
                        help="PNG or JPG picture of the part, taken as its iso view (any size, RGB or "
                             "grayscale); or give --views, --tile or --mesh instead")
    add_arguments(parser, PredictConfig)
    args = parser.parse_args(argv)
    try:
        summary = predict(args.image, from_args(PredictConfig, args))
    except (ConfigError, UsageError, RendererUnavailable) as error:
        fail(PROG, error)
    valid = sum(c["valid"] for c in summary["candidates"])
    if summary["valid"]:
        print(f"{PROG}: kept program {summary['chosen']} of {len(summary['candidates'])} "
              f"({valid} valid, --select {summary['select']}); "
              f"wrote prediction.scad, .stl and .png to {summary['out']}")
        if summary["refine"]:
            print(f"{PROG}: {describe(summary['refine'])}; the kept program before it: unrefined.scad")
    else:
        print(f"{PROG}: no valid program among {len(summary['candidates'])}: wrote the greedy attempt "
              f"(INVALID, status {summary['status']}) to {summary['out']}/prediction.scad")
    return 0


if __name__ == "__main__":
    sys.exit(main())
