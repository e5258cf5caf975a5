"""``DemoConfig``: the main job (``python -m rl.demo``), corpus -> SFT -> PPO -> evaluation -> report.

The defaults are sized for a laptop with 2 CPU cores and no GPU (about 30 minutes, SFT in bf16
where the CPU has it); every stage's other settings come from its own YAML (``sft_config``,
``ppo_config``), so the demo only decides the sizes and where things go.
"""

from __future__ import annotations

from dataclasses import dataclass

from corpus.families import FAMILIES
from corpus.splits import fractions_ok

SPLITS = ("test", "test_ood", "val", "train")


@dataclass
class DemoConfig:
    """The main job on the embedded default: every stage, one output folder, SFT and PPO compared."""

    out: str = "runs/demo"
    """Output folder: corpus/, sft/, ppo/, eval/, comparison, curves and index.html."""
    fresh: bool = False
    """Delete ``out`` first and start over (otherwise finished stages are reused, stopped ones resume)."""
    corpus_n: int = 1600
    """Parts in the demo corpus (python -m corpus.build)."""
    split_fractions: tuple[float, ...] = (0.85, 0.05, 0.10)
    """Train, val and test shares of the corpus (corpus.build --fractions). A tenth for test gives
    114 test parts at seed 0: a paired interval over 40 was about +-0.04 wide, as wide as PPO's gain."""
    families: tuple[str, ...] = ("clip", "panel", "pipe_fitting", "plate", "profile", "washer")
    """Part families of the demo corpus: six of the 17 whose programs render in about 0.1 s, so the
    corpus takes minutes on 2 cores (empty: all 17)."""
    holdout_families: tuple[str, ...] = ("clip",)
    """Families kept out of training, for the test_ood split (must be among ``families``)."""
    seed: int = 0
    """Seed of the corpus, the SFT data order and PPO."""
    sft_config: str = "configs/sft.yaml"
    """YAML of the SFT stage (the demo sets corpus, run folder and steps)."""
    sft_steps: int = 2700
    """SFT optimizer steps. At 900 the tiny policy was undertrained (loss 1.1-1.3) and varied from
    run to run (greedy IR 0.1-0.675, protocol IoU 0.001-0.19 on one corpus); 2700 took the loss
    to 0.46, IR to 0 and protocol IoU to 0.175 (about 25 min on 2 cores in fp32, 15 in bf16)."""
    sft_threads: int | None = None
    """torch threads of the SFT stage (None: one per CPU; the stage runs alone, and on 2 cores
    2 threads trained 1.58x the tokens/s of 1)."""
    sft_bf16: bool | None = None
    """Train SFT under bf16 autocast (weights stay fp32; rl.sft --bf16). None: where the machine
    computes bf16 natively (a CUDA GPU that supports it, or a CPU with avx512_bf16 / amx_bf16;
    ``rl.runtime.bf16_native``), else fp32. On this project's 2-core AVX-512 machine it makes SFT
    steps 1.71x faster (``bench/sft_precision.py``) and the main job's SFT 913 s instead of 1569;
    elsewhere CPU bf16 is emulated and slower. Two of its three SFTs wrote more invalid greedy
    programs (IR 0.105 and 0.114, the third 0.009; 0.026 in two fp32 runs, same corpus), which PPO
    removes (0.018); protocol IoU stayed within the fp32 runs' spread (bench/results/main_job_bf16.json)."""
    ppo_config: str = "configs/ppo_demo.yaml"
    """YAML of the PPO stage (the demo sets checkpoint, run folder and iterations); the file says
    why its settings differ from configs/ppo.yaml."""
    ppo_iterations: int = 60
    """PPO iterations (about 8-9 min on 2 cores)."""
    eval_splits: tuple[str, ...] = ("test", "test_ood")
    """Splits on which both checkpoints are evaluated and compared."""
    eval_k: int = 0
    """Sampled programs per image in the evaluation, besides the greedy one (0: greedy only)."""
    eval_limit: int | None = 150
    """At most this many images per evaluated split (None: all)."""
    eval_refine: int = 0
    """Refinement renders per image in the evaluation (rl.eval --refine N: the greedy program's
    numbers tuned against the input picture, never the target; about 5 s per image on 2 cores at
    200). The summary and the printed lines then add the refined figures. 0: off."""
    eval_retrieve: int = 1
    """Programs of the nearest training parts tried beside each greedy one in the evaluation
    (rl.eval --retrieve N: scaled to the part's size, kept by agreement with the input, never the
    target). The summary and the printed lines then add the kept programs' figures. 0: off."""
    workers: int | None = None
    """Render actors of every stage (0: render in the stage's process; None: one per CPU)."""

    def __post_init__(self):
        def need(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")

        need(bool(self.out.strip()), "out", "must name a folder")
        for name in ("corpus_n", "sft_steps", "ppo_iterations"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(self.corpus_n >= 40, "corpus_n", "must be >= 40 (every split needs parts)")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.eval_k >= 0, "eval_k", "must be >= 0")
        need(self.eval_retrieve >= 0, "eval_retrieve", "must be >= 0 (0: off)")
        need(self.eval_refine >= 0, "eval_refine", "must be >= 0")
        chosen = self.families or tuple(FAMILIES)
        unknown = sorted(set(chosen) - set(FAMILIES))
        need(not unknown, "families", f"must be among {', '.join(sorted(FAMILIES))}")
        need(
            set(self.holdout_families) < set(chosen), "holdout_families", "must be some, not all, of families"
        )
        need(fractions_ok(self.split_fractions), "split_fractions",
             "must be three shares >= 0 (train, val, test) with a positive sum")
        need(self.eval_limit is None or self.eval_limit >= 1, "eval_limit", "must be >= 1")
        need(self.workers is None or self.workers >= 0, "workers", "must be >= 0")
        need(self.sft_threads is None or self.sft_threads >= 1, "sft_threads", "must be >= 1")
        need(
            bool(self.eval_splits) and all(s in SPLITS for s in self.eval_splits),
            "eval_splits",
            f"must be a comma-separated list of {', '.join(SPLITS)}",
        )
