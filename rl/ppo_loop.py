"""One PPO iteration: sample, score, KL to the reference, advantages, minibatch updates, metrics.

:func:`iterate` is the whole iteration; the math is :mod:`rl.core_algos`. The reward is a seam:
anything with ``invalid_penalty`` and ``score(codes, rows, views) -> [RewardBreakdown]`` works
(:class:`PoolRewarder` runs OpenSCAD on the :class:`renderer.pool.RenderPool`; tests inject a
toy reward so the policy math is checked without OpenSCAD)::

    learner = Learner(policy, optimizer, kl_ctl, config, PoolRewarder(pool, corpus_dir))
    metrics, records = iterate(learner, rows, iteration=1, records_dir=None)

Log-probs of the update, of the rollout policy (``old``, recomputed after sampling, as veRL
does) and of the reference all come from the same full forward pass at the sampling
temperature, so before the first update the KL to the reference is exactly 0.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from policies.base import token_logprobs
from reward.records import SampleRecord
from reward.score import RewardBreakdown
from rl import core_algos as algos

TRUNCATED = "truncated"


class PoolRewarder:
    """The real reward: OpenSCAD + :class:`reward.score.Scorer` on a RenderPool, targets from a corpus."""

    def __init__(self, pool, corpus_dir: str, invalid_penalty: float):
        self.pool = pool
        self.corpus_dir = corpus_dir
        self.invalid_penalty = invalid_penalty

    def score(
        self, codes: list[str], rows: list, views: list[tuple[str, str] | None]
    ) -> list[RewardBreakdown]:
        """One breakdown per program; ``views[i]`` = (prediction PNG, target PNG) paths or None."""
        from corpus.dataset import load_mesh
        from renderer.pool import ScoreRequest

        for row in rows:
            if row["id"] not in self.pool.targets:
                self.pool.add_target(row["id"], *load_mesh(self.corpus_dir, row))
        requests = [ScoreRequest(code, row["id"], *(paths or (None, None)))
                    for code, row, paths in zip(codes, rows, views, strict=True)]
        return self.pool.score(requests)


@dataclass
class Learner:
    """What persists across iterations."""

    policy: object
    optimizer: torch.optim.Optimizer
    kl_ctl: object
    config: object
    rewarder: object
    world: object = None
    """:class:`rl.ppo_dist.World` when this is one of several data-parallel learners."""


def truncation_breakdown(penalty: float) -> RewardBreakdown:
    """The length guard's verdict on a program that hit max_new_tokens without eos."""
    return RewardBreakdown(total=penalty, ssim=0.0, chamfer=0.0, iou=0.0, valid=0.0, status=TRUNCATED,
                           seconds=0.0, detail="hit max_new_tokens without eos (length guard)")


def duplicate_fraction(texts: list[str], target_ids: list[str]) -> float:
    """Fraction of programs whose exact text was also sampled for a different target."""
    targets: dict[str, set] = defaultdict(set)
    for text, target in zip(texts, target_ids, strict=True):
        targets[text].add(target)
    return sum(len(targets[t]) > 1 for t in texts) / max(len(texts), 1)


def _take(prompts: dict, index: torch.Tensor, rows: int) -> dict:
    return {k: v[index] if torch.is_tensor(v) and v.shape[:1] == (rows,) else v for k, v in prompts.items()}


def _trim(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the columns after the longest response (causal model: results are unchanged)."""
    width = max(int(mask.sum(dim=1).max()), 1)
    return tokens[:, :width], mask[:, :width]


def _scores_pass(policy, prompts, tokens, mask, temperature: float, chunk: int):
    """(logprobs, values) of ``tokens (N, T)``, no gradient, in chunks; 0 on padding."""
    rows, width = tokens.shape
    logprobs, values = torch.zeros(rows, width), torch.zeros(rows, width)
    with torch.no_grad():
        for start in range(0, rows, chunk):
            index = torch.arange(start, min(start + chunk, rows))
            t, m = _trim(tokens[index], mask[index])
            out = policy(_take(prompts, index, rows), t, m)
            lp = token_logprobs(out.logits, t.to(out.logits.device), temperature, policy.suppressed_ids)
            logprobs[index, : t.shape[1]] = lp.cpu().masked_fill(~m, 0.0)
            values[index, : t.shape[1]] = out.values.cpu().masked_fill(~m, 0.0)
    return logprobs, values


def _entropy(logits: torch.Tensor, temperature: float, suppressed: list[int]) -> torch.Tensor:
    logits = logits.float() / temperature
    if suppressed:
        index = torch.tensor(suppressed, device=logits.device)
        logits = logits.index_fill(-1, index, torch.finfo(logits.dtype).min)
    return algos.entropy_from_logits(logits)


def score_samples(learner: Learner, rollout, rows: list, k: int, iteration: int, records_dir: str | None):
    """Breakdowns of every program (length guard applied) and, with ``records_dir``, their records."""
    config = learner.config
    eos = torch.tensor(learner.policy.eos_ids)
    truncated = (~torch.isin(rollout.tokens.cpu(), eos).any(dim=1)).tolist()
    targets = [rows[i // k] for i in range(len(rollout.texts))]
    views = [None] * len(targets)
    if records_dir:
        folder = os.path.join(records_dir, "views")
        views = [(os.path.join(folder, f"{row['id']}_s{i}.png"),
                  os.path.join(folder, f"{row['id']}_target.png")) for i, row in enumerate(targets)]
    guarded = [config.length_guard and cut for cut in truncated]
    todo = [i for i, g in enumerate(guarded) if not g]
    scored = learner.rewarder.score([rollout.texts[i] for i in todo], [targets[i] for i in todo],
                                    [views[i] for i in todo]) if todo else []
    breakdowns = [truncation_breakdown(learner.rewarder.invalid_penalty)] * len(targets)
    for i, breakdown in zip(todo, scored, strict=True):
        breakdowns[i] = breakdown
    records = []
    if records_dir:
        for i, (row, breakdown) in enumerate(zip(targets, breakdowns, strict=True)):
            paths = {"target_views": f"views/{row['id']}_target.png",
                     "pred_views": None if guarded[i] else f"views/{row['id']}_s{i}.png"}
            extra = {"iteration": iteration, "batch_index": i // k, "sample": i % k,
                     "truncated": truncated[i], "tokens": int(rollout.mask[i].sum())}
            records.append(SampleRecord.from_breakdown(f"it{iteration}/{row['id']}/s{i}", row["id"],
                                                       rollout.texts[i], breakdown, **paths, extra=extra))
    return breakdowns, truncated, records


def advantages_of(config, scores, mask, kl, kl_coef, values, index):
    """(advantages, returns, explained_var) with the configured estimator; shapes (N, T)."""
    token_rewards = algos.terminal_rewards(scores, mask, kl, kl_coef)
    if config.estimator == "grpo":  # outcome = score minus the program's KL penalty, group baseline
        advantages = algos.compute_grpo_outcome_advantage(token_rewards.sum(dim=-1), index, mask,
                                                          norm_by_std=config.grpo_norm_by_std)
        return advantages, torch.zeros_like(advantages), float("nan")
    advantages, returns = algos.compute_gae_advantage_return(
        token_rewards, values, mask, config.gamma, config.lam
    )
    if config.whiten_advantages:
        advantages = algos.masked_whiten(advantages, mask)
    return advantages, returns, algos.explained_variance(values, returns, mask)


def update(
    learner: Learner, prompts, tokens, mask, old_logprobs, values, advantages, returns, max_len: int
) -> dict:
    """``ppo_epochs`` passes of minibatch steps; the mean of each loss figure over the steps."""
    policy, optimizer, config = learner.policy, learner.optimizer, learner.config
    rows = tokens.shape[0]
    params = [p for p in policy.parameters() if p.requires_grad]
    stats: dict[str, list[float]] = defaultdict(list)
    policy.train()
    for _ in range(config.ppo_epochs):
        order = torch.randperm(rows)
        for start in range(0, rows, config.minibatch_size):
            index = order[start : start + config.minibatch_size]
            t, m = _trim(tokens[index], mask[index])
            w = t.shape[1]
            out = policy(_take(prompts, index, rows), t, m)
            device = out.logits.device
            t, m = t.to(device), m.to(device)
            log_prob = token_logprobs(out.logits, t, config.temperature, policy.suppressed_ids)
            pg_loss, clipfrac, approx_kl = algos.compute_policy_loss(
                old_logprobs[index, :w].to(device), log_prob, advantages[index, :w].to(device), m,
                config.clip_ratio, config.loss_agg_mode, max_len)
            v_loss = torch.zeros((), device=device)
            if config.estimator == "gae":
                v_loss, _ = algos.compute_value_loss(
                    out.values, values[index, :w].to(device), returns[index, :w].to(device), m,
                    config.cliprange_value or None, config.loss_agg_mode)
            entropy = algos.masked_mean(_entropy(out.logits, config.temperature, policy.suppressed_ids), m)
            loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if learner.world is not None:
                learner.world.average_gradients(params)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            for key, value in (("pg_loss", pg_loss), ("v_loss", v_loss), ("approx_kl", approx_kl),
                               ("clipfrac", clipfrac), ("entropy", entropy)):
                stats[f"losses/{key}"].append(float(value.detach()))
    policy.eval()
    return {key: float(np.mean(values)) for key, values in stats.items()}


def iterate(learner: Learner, rows: list, iteration: int, records_dir: str | None = None):
    """One PPO iteration on target ``rows`` (dicts with ``id`` and ``image``); ``(metrics, records)``."""
    policy, config = learner.policy, learner.config
    k = config.k
    max_len = config.max_new_tokens or policy.config.max_new_tokens
    started = time.perf_counter()
    policy.eval()
    rollout = policy.sample([row["image"] for row in rows], n=k, max_new_tokens=max_len,
                            temperature=config.temperature, top_p=config.top_p)
    tokens, mask = rollout.tokens.cpu(), rollout.mask.cpu()
    generated = time.perf_counter()
    breakdowns, truncated, records = score_samples(learner, rollout, rows, k, iteration, records_dir)
    rendered = time.perf_counter()

    prompts = policy.prompt_inputs([row["image"] for row in rows for _ in range(k)])
    chunk = config.minibatch_size
    old_logprobs, values = _scores_pass(policy, prompts, tokens, mask, config.temperature, chunk)
    with policy.reference():
        ref_logprobs, _ = _scores_pass(policy, prompts, tokens, mask, config.temperature, chunk)
    kl = algos.kl_penalty(old_logprobs, ref_logprobs, config.kl_kind).masked_fill(~mask, 0.0)
    kl_per_program = kl.sum(dim=-1)
    kl_coef = learner.kl_ctl.value
    scores = torch.tensor([b.total for b in breakdowns], dtype=torch.float32)
    index = torch.arange(len(rows)).repeat_interleave(k)
    advantages, returns, explained_var = advantages_of(config, scores, mask, kl, kl_coef, values, index)
    losses = update(learner, prompts, tokens, mask, old_logprobs, values, advantages, returns, max_len)
    kl_mean = float(kl_per_program.mean())
    if learner.world is not None:  # every learner steers its coefficient by the same global mean
        kl_mean = learner.world.mean({"kl": kl_mean})["kl"]
    learner.kl_ctl.update(kl_mean, len(breakdowns) * (learner.world.size if learner.world else 1))
    done = time.perf_counter()

    def mean_of(name):
        return float(np.mean([getattr(b, name) for b in breakdowns]))

    metrics = {
        "reward/total/mean": mean_of("total"),
        "reward/ssim/mean": mean_of("ssim"),
        "reward/chamfer/mean": mean_of("chamfer"),
        "reward/iou/mean": mean_of("iou"),
        "reward/invalid_frac": float(np.mean([b.valid <= 0 for b in breakdowns])),
        "reward/truncated_frac": float(np.mean(truncated)),
        "reward/duplicate_frac": duplicate_fraction(rollout.texts, [r["id"] for r in rows for _ in range(k)]),
        **losses,
        "losses/explained_var": explained_var,
        "kl/ref_mean": float(kl_per_program.mean()),
        "kl/ref_token_mean": float(algos.masked_mean(kl, mask)),
        "kl/coef": float(kl_coef),
        "charts/response_tokens": float(mask.sum(dim=1).float().mean()),
        "charts/samples_per_s": len(breakdowns) / (done - started),
        "timing_s/generate": generated - started,
        "timing_s/render": rendered - generated,
        "timing_s/update": done - rendered,
    }
    return metrics, records
