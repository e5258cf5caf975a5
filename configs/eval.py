"""``EvalConfig`` (``python -m rl.eval``) and ``PredictConfig`` (``python -m rl.predict``).

Every field has a help string (the docstring under it); ``__post_init__`` checks each value
once and names the field. Both commands take them as ``--field VALUE`` options.
"""

from __future__ import annotations

from dataclasses import dataclass

SELECT = ("input", "consensus")
AGAINST = ("image", "mesh")
OPTIMISERS = ("cma", "powell")
"""Refinement optimisers (:data:`rl.refine.OPTIMISERS`; configs import nothing from rl)."""


def _need(config, ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{name} {why}, got {getattr(config, name)!r}")


@dataclass
class EvalConfig:
    """Evaluate a policy checkpoint on a corpus split: greedy and best-of-k, reward and cadrille protocol."""

    checkpoint: str = "runs/sft/final"
    """Policy folder (Policy.save form), e.g. runs/sft/final."""
    split: str = "test"
    """Corpus split to evaluate: test, test_ood, val or train."""
    corpus_dir: str | None = None
    """Corpus folder; None: the one the checkpoint was trained on (its sft_config.json), else runs/corpus."""
    k: int = 4
    """Sampled programs per image, for best-of-k (the oracle: picked by reward against the target) and
    the selected program (picked by agreement with the input, see against); 0: greedy only."""
    limit: int | None = None
    """Evaluate only the first N images of the split."""
    out: str | None = None
    """Output folder; None: <checkpoint>/eval_<split>."""
    temperature: float = 1.0
    """Sampling temperature of the k programs."""
    top_p: float = 1.0
    """Nucleus sampling of the k programs (1: off)."""
    max_new_tokens: int | None = None
    """Token budget per program; None: the policy's max_new_tokens."""
    batch_size: int = 8
    """Images decoded together."""
    render_workers: int | None = None
    """RenderPool actors (0: render in this process; None: one per CPU)."""
    ray_address: str | None = None
    """Join this running Ray cluster (HOST:PORT) for the render actors instead of starting a local
    one (also $RAY_ADDRESS; needs RAY_AUTH_MODE=token and the cluster's token; unused with
    render_workers 0)."""
    protocol: bool = True
    """Also compute the cadrille protocol (unit cube, 8192 points, median CD x1e3, IoU, IR)."""
    reward_from: str | None = None
    """Reward settings to score with: a PPO run folder or checkpoint (its ppo_config.json), a YAML or
    JSON file of reward.score.RewardWeights fields (e.g. configs/reward.yaml), or default; None: the
    settings the checkpoint's PPO run trained with, else the defaults (configs/reward.py)."""
    no_size: bool = False
    """Hide the part's size from a policy that reads sizes (how it does with the pictures alone)."""
    fit: bool = True
    """Also score the greedy program fitted to the size the policy is shown (renderer.fit: each axis
    scaled so its render's bounding box is the size; records of mode fitted, figures under fitted,
    a candidate of the selected program). Only where a size is shown; never the target's shape."""
    dimension: bool = True
    """Also score the greedy program dimensioned to the size the policy is shown (renderer.dimensions:
    its own numbers solved so its render has that size, scaled for the rest only where an axis stays
    over 1 percent off; about 6 renders per program; records of mode dimensioned, figures under
    dimensioned, a candidate of the selected program). Only where a size is shown."""
    retrieve: int = 0
    """Also try the programs of the N training parts whose four views look most like the input's
    (pixels, policies.exemplars; the corpus's train split) as candidates of the selected program,
    each scaled to the part's size when the input gives one, chosen like the policy's by agreement
    with the input, never by the target; 0: off."""
    syntax_guard: bool = True
    """Decode with renderer.syntax's prefix check: a token after which no program could parse (a
    bracket closed by the wrong one, a semicolon inside brackets, '= ;', '0.6.4', a statement that is
    a number, an end with a bracket open) is never written, the best token it allows is; false: the
    model's own greedy and sampled programs. Log-probs stay the model's; PPO's rollouts never use it."""
    views: bool = True
    """Write each program's views and the target's as PNG next to the records (for the report)."""
    against: str = "image"
    """What inference checks programs against, for the selected program (k > 0) and --refine: image
    (the input picture only) or mesh (the target mesh given as input, as rl.predict --mesh). Never
    the hidden target otherwise; best_of_k stays the oracle pick by reward against the target."""
    refine: int = 0
    """Refine the selected program (greedy when k = 0): tune its numeric literals with at most N
    renders against the input (see against); 0: off. Writes refined records and before/after figures."""
    refine_seconds: float = 60.0
    """Wall-clock budget of the refinement of one image, in seconds."""
    refine_optimiser: str = "cma"
    """Derivative-free optimiser of the refinement: cma (CMA-ES, chosen by bench/refine.py) or
    powell (scipy)."""
    seed: int = 0
    """Seed of the sampling."""
    threads: int = 1
    """torch CPU threads."""

    def __post_init__(self):
        _need(self, bool(self.checkpoint), "checkpoint", "must name a policy folder")
        _need(self, bool(self.split), "split", "must name a split")
        _check_refine(self)
        _need(self, self.against in AGAINST, "against", f"must be one of {', '.join(AGAINST)}")
        _need(self, self.k >= 0, "k", "must be >= 0")
        _need(self, self.retrieve >= 0, "retrieve", "must be >= 0 (0: off)")
        _need(self, self.limit is None or self.limit >= 1, "limit", "must be >= 1")
        _need(self, self.temperature > 0, "temperature", "must be > 0")
        _need(self, 0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        _need(self, self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _need(self, self.batch_size >= 1, "batch_size", "must be >= 1")
        _need(self, self.render_workers is None or self.render_workers >= 0, "render_workers", "must be >= 0")
        _need(self, self.threads >= 1, "threads", "must be >= 1")
        _need(self, self.reward_from is None or bool(self.reward_from.strip()), "reward_from",
              "must name a run folder, a file or default")


def _check_refine(config) -> None:
    _need(config, config.refine >= 0, "refine", "must be >= 0 (0: off)")
    _need(config, config.refine_seconds > 0, "refine_seconds", "must be > 0")
    _need(config, config.refine_optimiser in OPTIMISERS, "refine_optimiser",
          f"must be one of {', '.join(OPTIMISERS)}")


@dataclass
class PredictConfig:
    """Predict the OpenSCAD program of one image: k programs, rendered, the best one kept."""

    checkpoint: str = "runs/sft/final"
    """Policy folder (Policy.save form)."""
    k: int = 4
    """Programs to try: the greedy one plus k - 1 sampled."""
    out: str | None = None
    """Output folder; None: runs/predict/<image file stem>."""
    retrieve: int = 0
    """Also try the programs of the N training parts whose views look most like the input (pixels,
    policies.exemplars; the train split of --corpus_dir, else of the corpus the checkpoint was
    trained on) beside the policy's k, each scaled to the part's size when known (--size, --mesh),
    chosen among them the same way; 0: off."""
    corpus_dir: str | None = None
    """Corpus whose train split --retrieve looks in; None: the checkpoint's (its sft_config.json)."""
    fit: bool = True
    """When the size is known (--size, --mesh), also try the greedy program fitted to it (renderer.fit:
    each axis scaled so its render's bounding box is the size), chosen among the others the same way."""
    dimension: bool = True
    """With --fit, also try the greedy program with its own numbers solved to the size
    (renderer.dimensions: a few renders), so it reads in true dimensions and is scaled only for
    what the numbers could not reach, beside the fitted one; false: only the fitted one."""
    syntax_guard: bool = True
    """Decode with renderer.syntax's prefix check: a token after which no program could parse (a
    bracket closed by the wrong one, a semicolon inside brackets, '= ;', '0.6.4', a statement that is
    a number, an end with a bracket open) is never written, the best token it allows is; false: the
    model's own greedy and sampled programs. Log-probs stay the model's; PPO's rollouts never use it."""
    select: str = "input"
    """How to rank valid programs: input (agreement of the render with the input: SSIM and silhouette
    IoU with the picture, and with --mesh the mesh's views, chamfer and IoU) or consensus (mean
    reward of the other valid programs measured against it)."""
    views: str | None = None
    """Four pictures of the part instead of one, comma-separated, in the order iso,front,right,top."""
    tile: str | None = None
    """One picture of the four views tiled 2x2 (iso, front / right, top) instead of one picture."""
    mesh: str | None = None
    """A mesh of the part (binary STL, .obj, .off, .ply, or .npz with vertices and faces): the policy
    is shown its four views and its size, and selection and --refine compare with it (its views in
    its own frame and in its frame, chamfer, IoU)."""
    size: str | None = None
    """The part's bounding-box size in mm, WxDxH (e.g. 40x30x12), for a policy that reads sizes
    (a mesh gives its own)."""
    refine: int = 0
    """Refine the kept program: tune its numeric literals with at most N renders against the input
    picture (or --mesh); 0: off. Writes the program before (unrefined.scad) and after, with scores."""
    refine_seconds: float = 60.0
    """Wall-clock budget of the refinement, in seconds."""
    refine_optimiser: str = "cma"
    """Derivative-free optimiser of the refinement: cma (CMA-ES, chosen by bench/refine.py) or
    powell (scipy)."""
    render_workers: int | None = None
    """Render pool actors of the refinement (0: this process; None: one per CPU)."""
    ray_address: str | None = None
    """Join this running Ray cluster (HOST:PORT) for the render actors instead of starting a local
    one (also $RAY_ADDRESS; needs RAY_AUTH_MODE=token and the cluster's token; unused with
    render_workers 0)."""
    temperature: float = 1.0
    """Sampling temperature of the k - 1 sampled programs."""
    top_p: float = 1.0
    """Nucleus sampling (1: off)."""
    max_new_tokens: int | None = None
    """Token budget per program; None: the policy's max_new_tokens."""
    seed: int = 0
    """Seed of the sampling."""
    threads: int = 1
    """torch CPU threads."""

    def __post_init__(self):
        _need(self, bool(self.checkpoint), "checkpoint", "must name a policy folder")
        _need(self, self.k >= 1, "k", "must be >= 1")
        _need(self, self.retrieve >= 0, "retrieve", "must be >= 0 (0: off)")
        _need(self, self.select in SELECT, "select", f"must be one of {', '.join(SELECT)}")
        _need(self, self.mesh is None or bool(self.mesh.strip()), "mesh", "must name a mesh file")
        _check_refine(self)
        _need(self, self.render_workers is None or self.render_workers >= 0, "render_workers", "must be >= 0")
        _need(self, self.temperature > 0, "temperature", "must be > 0")
        _need(self, 0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        _need(self, self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _need(self, self.threads >= 1, "threads", "must be >= 1")
