"""PPO-ptx: the SFT loss on corpus programs, mixed into every PPO minibatch step.

InstructGPT's "PPO-ptx" (Ouyang et al., 2022) adds ``ptx_coef`` times the supervised loss on
the supervised data to the PPO objective, so that RL improves what it is rewarded on without
losing what SFT taught elsewhere. Why here: at the main job's budget PPO fits the images it is
rewarded on and loses on the others (README, "Not the memorised train set either": on its own
76 images the greedy reward rose +0.057, on `test` it fell -0.126).

Each step draws ``ptx_batch_size`` rows of the corpus's train split, chosen by a generator
seeded with ``(seed, iteration, step, rank)``, so a resumed run draws what an uninterrupted one
would. The rows are shown as PPO shows its targets (views and size, no size dropout or restyled
pictures), and ``policy.model(**batch).loss`` is the SFT loss (code tokens and eos only)::

    mix = load_sft_mix(config, policy, corpus_dir)         # None when ptx_coef is 0
    loss = ppo_loss + config.ptx_coef * mix.loss(policy, iteration, step)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from configs.cli import UsageError
from configs.ppo import PPOConfig
from policies.inputs import SFTCollator, input_columns
from rl.checkpoint import load_split_rows


@dataclass
class SFTMix:
    """Train rows (``code`` and the policy's input columns) and how to draw and score a batch."""

    rows: object
    """A ``datasets.Dataset`` (or list of dicts) of the train split."""
    collator: SFTCollator
    batch_size: int
    seed: int
    rank: int = 0

    def draw(self, iteration: int, step: int) -> list[dict]:
        """The rows of one step: ``batch_size`` distinct rows (all when fewer), same for same arguments."""
        rng = random.Random(f"ppo_ptx/{self.seed}/{iteration}/{step}/{self.rank}")
        picks = rng.sample(range(len(self.rows)), min(self.batch_size, len(self.rows)))
        return [self.rows[i] for i in picks]

    def loss(self, policy, iteration: int, step: int) -> torch.Tensor:
        """The SFT loss of one step's rows under ``policy`` (with its gradient)."""
        batch = self.collator(self.draw(iteration, step))
        device = policy.device
        return policy.model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}).loss


def load_sft_mix(config: PPOConfig, policy, corpus_dir: str | None, rank: int = 0) -> SFTMix | None:
    """The :class:`SFTMix` of ``corpus_dir``'s train split, or None when ``config.ptx_coef`` is 0."""
    if config.ptx_coef == 0:
        return None
    if corpus_dir is None:
        raise UsageError("ptx_coef needs a corpus with a train split (--corpus_dir)")
    rows = load_split_rows(corpus_dir, "train", ["code", *input_columns(policy.config)])
    return SFTMix(rows, SFTCollator(policy, seed=config.seed), config.ptx_batch_size, config.seed, rank)
