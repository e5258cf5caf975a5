"""``AppConfig``: the settings of the web app, ``python -m rl.app``.

Every field has a help string (the docstring under it) and is a ``--field VALUE`` option;
``__post_init__`` checks each value once and names the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from configs.eval import OPTIMISERS, SELECT

LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""Hosts that only this machine can reach."""


def _need(config, ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{name} {why}, got {getattr(config, name)!r}")


@dataclass
class AppConfig:
    """Serve the policy in a browser: a picture, four views or a mesh in; the program, its 3-D preview
    and STL out."""

    checkpoint: str = "runs/demo/ppo/final"
    """Policy folder (Policy.save form); the main job (make demo) writes runs/demo/ppo/final."""
    host: str = "127.0.0.1"
    """Address to listen on; 127.0.0.1 (default) is reachable from this machine only, 0.0.0.0 from
    every network this machine is on."""
    port: int = 7860
    """Port to listen on (0: any free port)."""
    k: int = 4
    """Programs written per request by default (the greedy one plus k - 1 sampled); the page lets a
    user choose 1 to max_k."""
    max_k: int = 8
    """Most programs a user may ask for per request."""
    refine: int = 0
    """Renders of the refinement of the kept program by default (0: off); the page lets a user choose
    0 to max_refine."""
    max_refine: int = 200
    """Most refinement renders a user may ask for per request."""
    refine_seconds: float = 30.0
    """Wall-clock budget of one refinement, in seconds."""
    refine_optimiser: str = "cma"
    """Derivative-free optimiser of the refinement: cma or powell."""
    select: str = "input"
    """How to rank valid programs: input (agreement with the pictures or mesh) or consensus."""
    retrieve: int = 0
    """Also try the programs of the N training parts whose views look most like the upload
    (rl.predict --retrieve; indexed once at start from corpus_dir's train split, else the corpus
    the checkpoint was trained on); 0: off."""
    corpus_dir: str | None = None
    """Corpus whose train split retrieve looks in; None: the checkpoint's."""
    render_workers: int | None = None
    """Render pool actors of the refinement, made once at start (0: render in the app's process;
    None: one per CPU)."""
    ray_address: str | None = None
    """Join this running Ray cluster (HOST:PORT) for the render actors instead of starting a local one."""
    concurrency: int = 1
    """Requests sampled and rendered at the same time; the others wait in the queue."""
    queue_size: int = 16
    """Requests that may wait; one more is refused with a message."""
    max_upload_mb: float = 32.0
    """Largest uploaded file, in MiB (pictures and meshes)."""
    max_image_pixels: int = 4096 * 4096
    """Largest picture, width x height, checked from its header before it is decoded."""
    temperature: float = 1.0
    """Sampling temperature of the k - 1 sampled programs."""
    top_p: float = 1.0
    """Nucleus sampling (1: off)."""
    max_new_tokens: int | None = None
    """Token budget per program; None: the policy's max_new_tokens."""
    seed: int = 0
    """Seed of the sampling (the same input gives the same programs)."""
    threads: int = 1
    """torch CPU threads."""
    keep_results: int = 64
    """Request folders kept on disk (the oldest go first); gradio keeps its own copies for an hour."""

    def __post_init__(self):
        _need(self, bool(self.checkpoint), "checkpoint", "must name a policy folder")
        _need(self, bool(self.host.strip()), "host", "must name an address")
        _need(self, 0 <= self.port <= 65535, "port", "must be in 0..65535")
        _need(self, self.max_k >= 1, "max_k", "must be >= 1")
        _need(self, self.retrieve >= 0, "retrieve", "must be >= 0 (0: off)")
        _need(self, 1 <= self.k <= self.max_k, "k", "must be in 1..max_k")
        _need(self, self.max_refine >= 0, "max_refine", "must be >= 0")
        _need(self, 0 <= self.refine <= self.max_refine, "refine", "must be in 0..max_refine")
        _need(self, self.refine_seconds > 0, "refine_seconds", "must be > 0")
        _need(self, self.refine_optimiser in OPTIMISERS, "refine_optimiser",
              f"must be one of {', '.join(OPTIMISERS)}")
        _need(self, self.select in SELECT, "select", f"must be one of {', '.join(SELECT)}")
        _need(self, self.render_workers is None or self.render_workers >= 0, "render_workers", "must be >= 0")
        _need(self, self.concurrency >= 1, "concurrency", "must be >= 1")
        _need(self, self.queue_size >= 1, "queue_size", "must be >= 1")
        _need(self, self.max_upload_mb > 0, "max_upload_mb", "must be > 0")
        _need(self, self.max_image_pixels >= 64 * 64, "max_image_pixels", "must be >= 4096 (64x64)")
        _need(self, self.temperature > 0, "temperature", "must be > 0")
        _need(self, 0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        _need(self, self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _need(self, self.threads >= 1, "threads", "must be >= 1")
        _need(self, self.keep_results >= 1, "keep_results", "must be >= 1")
