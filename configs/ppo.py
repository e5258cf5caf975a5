"""``PPOConfig``: everything ``python -m rl.ppo`` reads; defaults in ``configs/ppo.yaml``.

::

    from configs.loader import load
    from configs.ppo import PPOConfig
    config = load(PPOConfig, "configs/ppo.yaml", ["iterations=20", "estimator=grpo", "reward.iou=2"])

The reward weights are a nested :class:`reward.score.RewardWeights` (``--reward.iou 2`` on the
command line, a ``reward:`` section in YAML). Every field has a help string (the docstring under
it); ``__post_init__`` checks each value once and names the field. The names it accepts for the
estimator, the KL kinds and the loss aggregation are those of :mod:`rl.core_algos` (the table of
estimators lives there, next to the math; that module imports torch and nothing else of ours).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from reward.score import RewardWeights
from rl.core_algos import ESTIMATORS, KL_KINDS, KL_LOSS_KINDS, LOSS_AGG_MODES, Estimator

GRPO_BASELINES = ("group", "greedy")


@dataclass
class PPOConfig:
    """PPO refinement of an SFT policy with OpenSCAD rendering in the loop."""

    name: str = "ppo"
    """Run name: checkpoints, metrics, records and the final policy go to ``runs_dir/name``."""
    runs_dir: str = "runs"
    """Folder that holds run folders."""
    checkpoint: str = "runs/sft/final"
    """The SFT policy to start from (Policy.save form); also the frozen KL reference."""
    corpus_dir: str | None = None
    """Corpus folder; None: the one the checkpoint was trained on, else runs/corpus."""
    split: str = "train"
    """The corpus split whose images PPO trains on. ``train`` holds the parts SFT fitted (their
    greedy programs score far above unseen parts'); ``val`` holds parts SFT never trained on."""

    iterations: int = 100
    """PPO iterations in total (a resumed run continues up to this one)."""
    batch_size: int = 4
    """Target images per iteration."""
    k: int = 4
    """Programs sampled per target image (the group of the grpo estimator)."""
    max_new_tokens: int | None = None
    """Token budget of each program; None: the policy's max_new_tokens."""
    temperature: float = 1.0
    """Sampling temperature; log-probs of the update, the reference and the KL use the same one."""
    top_p: float = 1.0
    """Nucleus sampling; must stay 1 (off): every PPO log-prob (old, reference, update, KL) is over
    the full softmax, so a nucleus would sample from another distribution than the one updated."""

    estimator: str = "gae"
    """Advantages: gae (value head, GAE, whitened) or grpo (group baseline over the k programs, no
    critic). Where the KL to the reference goes follows the estimator. gae: into the per-token
    reward (-kl_coef * KL on every token, score on the last), as PPO-RLHF with a value head does
    (Ziegler et al., TRL, veRL's default): the critic learns the KL-penalised return, and whitening
    the batch keeps the scale. grpo: into the loss (veRL's use_kl_loss: + kl_coef * agg(KL) next to
    the clipped surrogate), and the group baseline sees the task scores alone; in the reward, a
    group whose scores tie (all 8 invalid) would get advantages of about +-1 from KL noise once
    divided by the group's std. A tied group gets exactly 0."""
    gamma: float = 1.0
    """GAE discount."""
    lam: float = 0.95
    """GAE lambda."""
    whiten_advantages: bool = True
    """gae: whiten the advantages over the batch's valid tokens."""
    grpo_norm_by_std: bool = True
    """grpo: divide by the group's standard deviation (false: Dr. GRPO)."""
    grpo_baseline: str = "group"
    """grpo: what a sample's score is measured against. group: its group's mean. greedy: the score
    of the image's greedy program, decoded and rendered each iteration beside the k samples
    (ReMax's baseline, Li et al. 2023): only samples better than the greedy program are made
    likelier, so the update moves the greedy program that rl.eval grades. With the group mean,
    PPO from the main job's SFT raised the sampled reward on its own training images (0.465 ->
    0.506) while their greedy reward stayed (0.585 -> 0.581): it removed bad samples, all below
    the greedy program. One more program rendered per image; the metrics add reward/greedy/mean."""

    ppo_epochs: int = 2
    """Passes over each iteration's samples."""
    minibatch_size: int = 8
    """Programs per optimizer step."""
    learning_rate: float = 1e-5
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    clip_ratio: float = 0.2
    """PPO ratio clip: [1 - clip_ratio, 1 + clip_ratio]."""
    cliprange_value: float = 0.2
    """Value clip around the rollout values (0 disables)."""
    vf_coef: float = 0.5
    """Weight of the value loss (gae only)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    ptx_coef: float = 0.0
    """PPO-ptx (InstructGPT): weight of the SFT loss on corpus train programs added to every
    minibatch step (:mod:`rl.ppo_ptx`), so that PPO keeps what SFT taught on parts it is not
    rewarded on. 0: off."""
    ptx_batch_size: int = 8
    """Train programs per minibatch step of the ``ptx_coef`` term."""
    loss_agg_mode: str = "token-mean"
    """How per-token losses become one: token-mean, seq-mean-token-sum, seq-mean-token-mean,
    seq-mean-token-sum-norm."""

    kl_kind: str | None = None
    """Per-token KL estimator against the reference: k1, abs, mse or k3 (None: k1 for gae, in the
    reward; k3 for grpo, in the loss). grpo takes only k3 or mse: as a loss, k1's gradient is
    0 in expectation and abs's is biased (veRL's low_var_kl is k3)."""
    kl_coef: float = 0.05
    """KL coefficient (the initial one when adaptive_kl): of the per-token penalty in the reward
    (gae) or of the KL term of the loss (grpo); logged per iteration as kl/coef."""
    adaptive_kl: bool = True
    """Steer the coefficient towards kl_target (Ziegler et al.); false keeps it fixed."""
    kl_target: float = 6.0
    """Adaptive KL: target of the mean per-program KL (summed over tokens)."""
    kl_horizon_iterations: float | None = None
    """Adaptive KL: horizon in iterations, >= 1; after each iteration the coefficient is multiplied
    by 1 + clip(KL / kl_target - 1, +-0.2) / horizon. None: iterations / 10 (at least 1), so over
    a whole run a KL far from target can move it up to e^2 ~ 7.4x either way."""

    reward: RewardWeights = field(default_factory=RewardWeights)
    """Reward weights (reward.score.RewardWeights)."""
    length_guard: bool = True
    """A program that hits max_new_tokens without eos gets the invalid penalty, unrendered."""
    workers: int | None = None
    """RenderPool actors (0: render in this process; None: one per CPU)."""
    render_timeout: float = 30.0
    """OpenSCAD wall-clock limit per program, seconds."""
    rollout_chunks: int = 1
    """Sample the batch's images in this many chunks (at most one per image), each chunk's programs
    sent to the render pool as soon as they are sampled: OpenSCAD renders chunk i while the policy
    samples chunk i+1, and the last chunk while the log-prob passes run. Staleness stays 0 (one
    policy for the whole batch; the update waits for every score). 1: one batched sampling call;
    without stream_renders, renders then overlap the log-prob passes only. More chunks hide more
    rendering, but each chunk is a smaller generate batch (on a GPU, nearly as slow as a full one),
    and with stream_renders one chunk already hides the renders: see bench/ppo_overlap.py."""
    stream_renders: bool = True
    """Send each program to the render pool the moment it ends in eos, while the rest of its
    generate batch is still sampled (a batch waits for its longest program), instead of when the
    whole chunk is sampled. Same programs, same staleness 0; only the start of rendering moves."""

    seed: int = 0
    """Seed of data order, sampling and minibatch order."""
    save_every: int = 10
    """Iterations between checkpoints (the last iteration is always saved); re-running resumes."""
    records_every: int = 10
    """Iterations between per-sample records (JSONL + view PNGs); the last one gets a report."""
    tensorboard: bool = True
    """Also write TensorBoard scalars when torch.utils.tensorboard imports."""
    threads: int = 1
    """torch CPU threads (1 is fastest on a 2-core machine shared with other jobs; the main job,
    alone on it, uses 2: configs/ppo_demo.yaml)."""
    gpus: int = 0
    """Data-parallel learners on this many GPUs through Ray Train, NCCL (0: no GPU learners)."""
    ray_workers: int = 0
    """Data-parallel learners on this many CPU processes through Ray Train, gloo (0: none)."""
    ray_address: str | None = None
    """Join this running Ray cluster (HOST:PORT) instead of starting a local one, for the render
    actors and any Ray Train learners (also $RAY_ADDRESS; needs RAY_AUTH_MODE=token and its token)."""

    def __post_init__(self):
        def need(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")

        need(bool(self.name.strip()) and "/" not in self.name, "name", "must be a non-empty folder name")
        need(bool(self.checkpoint), "checkpoint", "must name a policy folder")
        need(self.estimator in ESTIMATORS, "estimator", f"must be one of {', '.join(ESTIMATORS)}")
        estimator = self.advantage_estimator
        modes = ", ".join(LOSS_AGG_MODES)
        need(self.loss_agg_mode in LOSS_AGG_MODES, "loss_agg_mode", f"must be one of {modes}")
        for name in ("iterations", "batch_size", "k", "ppo_epochs", "minibatch_size", "save_every",
                     "records_every", "threads", "rollout_chunks", "ptx_batch_size"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("seed", "gpus", "ray_workers", "weight_decay", "max_grad_norm", "cliprange_value",
                     "vf_coef", "ent_coef", "kl_coef", "ptx_coef"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        need(self.workers is None or self.workers >= 0, "workers", "must be >= 0")
        need(self.temperature > 0, "temperature", "must be > 0")
        need(self.top_p == 1, "top_p", "must be 1: PPO's log-probs are over the full softmax")
        need(0 <= self.gamma <= 1, "gamma", "must be in [0, 1]")
        need(0 <= self.lam <= 1, "lam", "must be in [0, 1]")
        need(self.learning_rate > 0, "learning_rate", "must be > 0")
        need(self.clip_ratio > 0, "clip_ratio", "must be > 0")
        need(self.kl_target > 0, "kl_target", "must be > 0")
        horizon = self.kl_horizon_iterations
        need(horizon is None or horizon >= 1, "kl_horizon_iterations", "must be >= 1 (or unset)")
        kinds = ", ".join(KL_KINDS)
        need(self.kl_kind is None or self.kl_kind in KL_KINDS, "kl_kind", f"must be one of {kinds} or unset")
        need(not estimator.kl_in_loss or self.kl_estimator in KL_LOSS_KINDS, "kl_kind",
             f"must be {' or '.join(KL_LOSS_KINDS)} with estimator {self.estimator} "
             "(the KL is in the loss, where k1 and abs pull nowhere)")
        need(self.render_timeout > 0, "render_timeout", "must be > 0")
        baselines = ", ".join(GRPO_BASELINES)
        need(self.grpo_baseline in GRPO_BASELINES, "grpo_baseline", f"must be one of {baselines}")
        need(self.grpo_baseline == "group" or self.estimator == "grpo", "grpo_baseline",
             "must be group unless estimator is grpo (gae's baseline is its critic)")
        need(self.k >= estimator.min_group, "k",
             f"must be >= {estimator.min_group} for the {self.estimator} group baseline")
        need(not (self.gpus and self.ray_workers), "ray_workers", "cannot be combined with gpus")
        learners = self.world_size
        need(self.batch_size % learners == 0, "batch_size", f"must divide by the {learners} learners")

    @property
    def advantage_estimator(self) -> Estimator:
        """The :data:`rl.core_algos.ESTIMATORS` entry named by ``estimator``."""
        return ESTIMATORS[self.estimator]

    @property
    def kl_in_loss(self) -> bool:
        """The KL is a term of the loss (grpo), not a penalty in the reward (gae); see estimator."""
        return self.advantage_estimator.kl_in_loss

    @property
    def kl_estimator(self) -> str:
        """The per-token KL estimator in use: kl_kind, or the estimator's default when unset."""
        return self.kl_kind or self.advantage_estimator.default_kl_kind

    @property
    def kl_horizon(self) -> float:
        """The adaptive controller's horizon in iterations: kl_horizon_iterations or iterations / 10."""
        return self.kl_horizon_iterations or max(1.0, self.iterations / 10)

    @property
    def world_size(self) -> int:
        """Data-parallel learners: Ray Train workers, else 1."""
        return self.gpus or self.ray_workers or 1

    def to_dict(self) -> dict:
        """Plain JSON-able values (the reward weights as a nested dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PPOConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["reward"] = RewardWeights(**values.get("reward", {}))
        return cls(**values)
