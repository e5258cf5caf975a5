"""``SFTConfig``: everything ``python -m rl.sft`` reads; defaults in ``configs/sft.yaml``.

::

    from configs.loader import load
    from configs.sft import SFTConfig
    config = load(SFTConfig, "configs/sft.yaml", ["max_steps=50", "policy.text_layers=2"])

The policy is a nested :class:`configs.policy.PolicyConfig` (``--policy.text_layers 2`` on the
command line, a ``policy:`` section in YAML). Every field has a help string (the docstring
under it); ``__post_init__`` checks each value once and names the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from configs.policy import PolicyConfig

BUILD_CORPUS = ("auto", "yes", "no")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
DEFAULT_CORPUS_DIR = "runs/corpus"


@dataclass
class SFTConfig:
    """Supervised fine-tuning of a policy on (image, program) pairs with ``transformers.Trainer``."""

    name: str = "sft"
    """Run name: checkpoints, the final policy and the summary go to ``runs_dir/name``."""
    runs_dir: str = "runs"
    """Folder that holds run folders."""
    corpus_dir: str = DEFAULT_CORPUS_DIR
    """Corpus folder written by ``python -m corpus.build`` (train and val splits are used)."""
    build_corpus: str = "auto"
    """auto: build a missing corpus only at the default corpus_dir; yes: build (or finish) it
    wherever it is missing; no: a missing corpus is an error."""
    corpus_n: int = 2000
    """Parts in a corpus that rl.sft builds itself."""
    corpus_seed: int = 0
    """Seed of a corpus that rl.sft builds itself."""
    corpus_workers: int | None = None
    """Render actors for a corpus build (0: in this process; None: one per CPU)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The policy to build; a re-run must give the same one (the run folder keeps it in initial/)."""

    max_steps: int = 300
    """Optimizer steps in total (a resumed run continues up to this step)."""
    per_device_batch_size: int = 8
    """Examples per forward pass on each device (or Ray worker)."""
    gradient_accumulation_steps: int = 1
    """Forward passes summed into one optimizer step."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 10
    """Linear warm-up steps of the learning rate."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule after warm-up: cosine, linear, constant or constant_with_warmup."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    seed: int = 0
    """Seed of data order and dropout."""
    group_by_length: bool = True
    """Batch programs of similar length together (less padding: about 2x the tokens/s on the corpus)."""
    image_aux_weight: float = 0.5
    """Weight of the auxiliary image objective: a linear head on the image tokens predicts the
    part's family (cross-entropy), so the vision tower learns to tell parts apart (rl.sft_aux).
    Used for the tiny policy when the train split has at least two families; 0 turns it off."""
    image_param_weight: float = 0.0
    """Weight of the parameter objective (with the image objective): a second head on the image
    tokens regresses the part's family parameters and log size, z-scored (rl.sft_aux.ParamTable);
    0 turns it off."""
    image_aux_extra: int = 8
    """Random train images added to each batch for the image objective only (length-grouped
    batches hold mostly one family; these keep the family head from chasing each batch's)."""
    size_dropout: float = 0.2
    """Fraction of examples shown without their size when the policy reads sizes
    (``policy.size_in_prompt``), so that it also writes programs for a picture alone."""
    exemplar_self: float = 0.0
    """Fraction of examples shown their own program as the exemplar when the policy reads exemplars
    (``policy.exemplars``; the rest see the nearest other training part's), so that it learns to
    copy what it is shown as well as to edit it."""
    picture_fraction: float = 0.2
    """Fraction of examples shown as one picture as users make them: the iso view in another
    viewer's colours, light and framing (OpenSCAD's yellow on cream among them), normalised as
    ``rl.predict`` normalises a user's picture (policies.pictures); 0 shows every example's views."""
    bf16: bool = False
    """Train in bfloat16 mixed precision (GPUs)."""

    logging_steps: int = 10
    """Steps between metrics lines."""
    save_steps: int = 100
    """Steps between checkpoints (``checkpoint-N`` in the run folder; re-running resumes from the last)."""
    save_total_limit: int = 2
    """Checkpoints kept; older ones are deleted."""
    eval_steps: int = 100
    """Steps between generation evaluations on val images (0: none); the last step is always evaluated."""
    eval_samples: int = 16
    """Val images greedily decoded, rendered and scored per evaluation."""
    eval_max_new_tokens: int = 512
    """Token budget of each evaluation program."""
    render_workers: int = 0
    """RenderPool actors for the evaluation (0: render in the training process)."""

    threads: int = 1
    """torch CPU threads per process (1 is fastest on a shared 2-core machine)."""
    dataloader_workers: int = 0
    """DataLoader worker processes (0: load batches in the training process)."""
    gpus: int = 0
    """Train data-parallel on this many GPUs through Ray Train (0: no Ray Train)."""
    ray_workers: int = 0
    """Train data-parallel on this many CPU processes through Ray Train, gloo backend (0: none)."""
    ray_address: str | None = None
    """Join this running Ray cluster (HOST:PORT) instead of starting a local one, for the evaluation's
    render actors and any Ray Train workers (also $RAY_ADDRESS; needs RAY_AUTH_MODE=token and its token)."""

    def __post_init__(self):
        def need(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")

        need(bool(self.name.strip()) and "/" not in self.name, "name", "must be a non-empty folder name")
        need(self.build_corpus in BUILD_CORPUS, "build_corpus", f"must be one of {', '.join(BUILD_CORPUS)}")
        need(self.lr_scheduler in SCHEDULERS, "lr_scheduler", f"must be one of {', '.join(SCHEDULERS)}")
        for name in ("corpus_n", "max_steps", "per_device_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "save_steps", "save_total_limit", "eval_samples",
                     "eval_max_new_tokens", "threads"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("warmup_steps", "eval_steps", "render_workers", "dataloader_workers", "gpus",
                     "ray_workers", "corpus_seed", "seed", "image_aux_extra"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.corpus_workers is None or self.corpus_workers >= 0, "corpus_workers", "must be >= 0")
        need(self.learning_rate > 0, "learning_rate", "must be > 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0")
        need(self.image_aux_weight >= 0, "image_aux_weight", "must be >= 0")
        need(self.image_param_weight >= 0, "image_param_weight", "must be >= 0")
        need(0.0 <= self.size_dropout <= 1.0, "size_dropout", "must be in [0, 1]")
        need(0.0 <= self.picture_fraction <= 1.0, "picture_fraction", "must be in [0, 1]")
        need(0.0 <= self.exemplar_self <= 1.0, "exemplar_self", "must be in [0, 1]")
        need(not (self.gpus and self.ray_workers), "ray_workers", "cannot be combined with gpus")

    @property
    def world_size(self) -> int:
        """Data-parallel processes: Ray Train workers, else 1."""
        return self.gpus or self.ray_workers or 1

    def to_dict(self) -> dict:
        """Plain JSON-able values (the policy as a nested dict)."""
        values = dataclasses.asdict(self)
        values["policy"] = self.policy.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SFTConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["policy"] = PolicyConfig.from_dict(values.get("policy", {}))
        return cls(**values)
