"""One PPO iteration: sample, score, KL to the reference, advantages, minibatch updates, metrics.

:func:`iterate` is the whole iteration; the math is :mod:`rl.core_algos`. The reward is a seam:
anything with ``invalid_penalty`` and ``score(codes, rows, views) -> [RewardBreakdown]`` works
(:class:`PoolRewarder` runs OpenSCAD on the :class:`renderer.pool.RenderPool`; tests inject a
toy reward so the policy math is checked without OpenSCAD)::

    learner = Learner(policy, optimizer, kl_ctl, config, PoolRewarder(pool, corpus_dir))
    metrics, records = iterate(learner, rows, iteration=1, records_dir=None)

Rendering overlaps learning, and PPO stays exactly on-policy (:mod:`rl.ppo_rollout`): each
program goes to the render pool the moment it ends in eos (``stream_renders``), while the rest of
the batch is still sampled (or, without it, each of ``rollout_chunks`` chunks once sampled), and
the last renders run while the rollout and reference log-probs and values are computed. No parameter
changes in between, and the advantages and the update wait for every score: staleness 0.
``timing_s/render`` is what rendering still costs the learner, its wait on the pool
(``timing_s/learner_idle_frac`` of the iteration; ``timing_s/{generate,render,update}`` add up
to the iteration); ``timing_s/render_span`` is how long the pool worked on the batch, overlapped.

Log-probs of the update, of the rollout policy (``old``, recomputed after sampling, as veRL
does) and of the reference all come from the same full forward pass at the sampling
temperature, so before the first update the KL to the reference is exactly 0.

The advantage estimator is an entry of :data:`rl.core_algos.ESTIMATORS`; the loop branches on
its fields, not on its name. The KL to the reference is a penalty in the token rewards when the
estimator does not put it in the loss (``gae``: the critic learns the penalised return) and a term
of the loss when it does (``grpo``, whose group baseline sees the task scores alone; see
``estimator`` in :mod:`configs.ppo`). A program the render pool failed on (a worker
died or hung, or scoring raised: ``RewardBreakdown.infrastructure``) keeps its breakdown in the
records but is left out of the update: out of the loss mask, the advantages, the group
statistics and the reward means; ``reward/infra_failed_frac`` counts it. A program that fails
by itself (syntax, timeout, too large, forbidden, an OpenSCAD crash) keeps the penalty.
With ``ptx_coef > 0`` every minibatch step also takes the SFT loss of train programs
(:mod:`rl.ppo_ptx`, InstructGPT's PPO-ptx).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from configs.ppo import PPOConfig
from policies.base import Policy, mask_suppressed, select_rows, token_logprobs
from reward.score import RewardBreakdown
from rl import core_algos as algos
from rl.ppo_rollout import Scoring, sample_and_submit

if TYPE_CHECKING:  # only named in annotations
    from rl.ppo_ptx import SFTMix
    from rl.world import World


class Rewarder(Protocol):
    """What :func:`iterate` needs from a reward: the real one is :class:`PoolRewarder`.

    A rewarder may also offer ``submit(codes, rows, views)``, which returns at once a job whose
    ``result()`` waits for the breakdowns (and whose ``finished_at`` is when they were all in):
    then rendering overlaps sampling. With ``score`` alone, the batch is scored in one call once
    it is all sampled, on the learner's clock.
    """

    invalid_penalty: float
    """The total of a program the length guard stops unrendered."""

    def score(
        self, codes: list[str], rows: list[dict], views: list[tuple[str, str] | None]
    ) -> list[RewardBreakdown]:
        """One breakdown per program; ``views[i]`` = (prediction PNG, target PNG) paths or None."""
        ...


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
        return self.submit(codes, rows, views).result()

    def submit(self, codes: list[str], rows: list, views: list[tuple[str, str] | None]):
        """:meth:`score` without waiting: a :class:`renderer.pool.RenderJob` of the breakdowns."""
        from corpus.dataset import load_mesh
        from renderer.pool import ScoreRequest

        for row in rows:
            if row["id"] not in self.pool.targets:
                self.pool.add_target(row["id"], *load_mesh(self.corpus_dir, row))
        requests = [ScoreRequest(code, row["id"], *(paths or (None, None)))
                    for code, row, paths in zip(codes, rows, views, strict=True)]
        return self.pool.submit(requests)


@dataclass
class Learner:
    """What persists across iterations."""

    policy: Policy
    """The policy being trained; its frozen reference is ``policy.reference()``."""
    optimizer: torch.optim.Optimizer
    """Steps the policy's trainable parameters."""
    kl_ctl: algos.AdaptiveKLController | algos.FixedKLController
    """Holds this iteration's KL coefficient (``value``); ``update`` after each iteration."""
    config: PPOConfig
    """The run's settings."""
    rewarder: Rewarder
    """Scores the sampled programs."""
    world: World | None = None
    """:class:`rl.world.World` when this is one of several data-parallel learners."""
    ptx: SFTMix | None = None
    """PPO-ptx's train programs (:mod:`rl.ppo_ptx`) when ``config.ptx_coef > 0``."""


def duplicate_fraction(texts: list[str], target_ids: list[str]) -> float:
    """Fraction of programs whose exact text was also sampled for a different target."""
    targets: dict[str, set] = defaultdict(set)
    for text, target in zip(texts, target_ids, strict=True):
        targets[text].add(target)
    return sum(len(targets[t]) > 1 for t in texts) / max(len(texts), 1)


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
            out = policy(select_rows(prompts, index, rows), t, m)
            lp = token_logprobs(out.logits, t.to(out.logits.device), temperature, policy.suppressed_ids)
            logprobs[index, : t.shape[1]] = lp.cpu().masked_fill(~m, 0.0)
            values[index, : t.shape[1]] = out.values.cpu().masked_fill(~m, 0.0)
    return logprobs, values


def _entropy(logits: torch.Tensor, temperature: float, suppressed: list[int]) -> torch.Tensor:
    """(B, T) entropy of the sampling distribution: ``logits (B, T, V)`` over ``temperature``,
    suppressed ids removed as in :func:`token_logprobs`."""
    return algos.entropy_from_logits(mask_suppressed(logits.float() / temperature, suppressed))


def score_samples(learner: Learner, rollout, rows: list, k: int, iteration: int, records_dir: str | None):
    """Breakdowns of every program (length guard applied), truncation flags and, with
    ``records_dir``, their records: one :class:`rl.ppo_rollout.Scoring` of the whole rollout."""
    config = learner.config
    scoring = Scoring(learner.rewarder, learner.policy.eos_ids, config.length_guard, rows, k, records_dir)
    scoring.submit(rollout)
    breakdowns = scoring.collect()
    records = scoring.records(rollout, breakdowns, iteration) if records_dir else []
    return breakdowns, scoring.truncated, records


@dataclass
class Batch:
    """One iteration's ``N`` programs of at most ``T`` tokens, ready for :func:`update` (CPU tensors)."""

    prompts: dict
    """Prompt inputs of each program's image (:meth:`Policy.prompt_inputs`): tensors with ``N``
    rows (e.g. ``input_ids (N, P)``, ``pixel_values (N, ...)``), row ``i`` for program ``i``."""
    tokens: torch.Tensor
    """(N, T) long: the sampled tokens, padded after eos."""
    mask: torch.Tensor
    """(N, T) bool: the sampled tokens; the attention mask of every forward pass."""
    loss_mask: torch.Tensor
    """(N, T) bool: ``mask`` without the programs the render pool failed on (infrastructure):
    the tokens that the advantages, the group statistics, every loss and the KL term see."""
    old_log_prob: torch.Tensor
    """(N, T) float32: log-probs under the rollout policy, recomputed after sampling; 0 off mask."""
    ref_log_prob: torch.Tensor
    """(N, T) float32: the same under the frozen reference policy."""
    values: torch.Tensor
    """(N, T) float32: value-head predictions at rollout time (V_old)."""
    kl: torch.Tensor
    """(N, T) float32: per-token KL estimate (``config.kl_estimator``) of the rollout policy
    against the reference, ``kl_penalty(old_log_prob, ref_log_prob)``; 0 off mask."""
    kl_coef: float
    """This iteration's KL coefficient: in the token rewards (gae) or on the loss's KL term (grpo)."""
    advantages: torch.Tensor
    """(N, T) float32: 0 off ``loss_mask``."""
    returns: torch.Tensor
    """(N, T) float32: value-head targets (an estimator with a critic; zeros otherwise)."""
    explained_var: float
    """Of the value head before the update (NaN without a critic)."""


def advantages_of(config: PPOConfig, scores, mask, kl, kl_coef, values, index, baseline=None):
    """(advantages, returns, explained_var) with the configured estimator; shapes (N, T).

    ``scores (N,)`` are the task scores; ``mask (N, T)`` the loss mask (a program with no token
    in it is left out, of the group statistics too); ``index (N,)`` each program's image. What
    the estimator does with them is :data:`rl.core_algos.ESTIMATORS`' ``compute``; ``baseline (N,)``,
    with ``grpo_baseline greedy``, each program's image's greedy score (NaN: its group's mean).
    """
    estimator = config.advantage_estimator
    advantages, returns = estimator.compute(scores, mask, index, values, kl, kl_coef, config,
                                            baseline=baseline)
    explained_var = algos.explained_variance(values, returns, mask) if estimator.uses_critic else float("nan")
    return advantages, returns, explained_var


def build_batch(learner: Learner, rows: list, rollout, breakdowns: list[RewardBreakdown]) -> Batch:
    """Old, reference and value passes over ``rollout``, the KL, and the advantages of the scores."""
    return finish_batch(learner, rows, rollout_passes(learner, rows, rollout), breakdowns)


def rollout_passes(learner: Learner, rows: list, rollout) -> tuple:
    """What the batch needs before any score: ``(prompts, tokens, mask, old_log_prob,
    ref_log_prob, values)`` of ``rollout``'s ``N = len(rows) * k`` programs, (N, T) on the CPU."""
    policy, config = learner.policy, learner.config
    tokens, mask = rollout.tokens.cpu(), rollout.mask.cpu()
    prompts = policy.prompt_inputs([row for row in rows for _ in range(config.k)])
    chunk = config.minibatch_size
    old_log_prob, values = _scores_pass(policy, prompts, tokens, mask, config.temperature, chunk)
    with policy.reference():
        ref_log_prob, _ = _scores_pass(policy, prompts, tokens, mask, config.temperature, chunk)
    return prompts, tokens, mask, old_log_prob, ref_log_prob, values


def finish_batch(learner: Learner, rows: list, passes: tuple, breakdowns: list[RewardBreakdown],
                 greedy: list[RewardBreakdown] | None = None) -> Batch:
    """The :class:`Batch` of :func:`rollout_passes`' output: the KL, and the advantages of the scores
    (against ``greedy``, the breakdowns of each image's greedy program, when given)."""
    config = learner.config
    prompts, tokens, mask, old_log_prob, ref_log_prob, values = passes
    kl = algos.kl_penalty(old_log_prob, ref_log_prob, config.kl_estimator).masked_fill(~mask, 0.0)
    counted = torch.tensor([not b.infrastructure for b in breakdowns], dtype=torch.bool)
    loss_mask = mask & counted.unsqueeze(-1)
    scores = torch.tensor([b.total for b in breakdowns], dtype=torch.float32)
    index = torch.arange(len(rows)).repeat_interleave(config.k)
    kl_coef = float(learner.kl_ctl.value)
    baseline = None
    if greedy is not None:  # a greedy program the pool failed on: its group's mean instead
        baseline = torch.tensor([math.nan if b.infrastructure else b.total for b in greedy])[index]
    advantages, returns, explained_var = advantages_of(config, scores, loss_mask, kl, kl_coef, values, index,
                                                       baseline)
    return Batch(prompts, tokens, mask, loss_mask, old_log_prob, ref_log_prob, values, kl, kl_coef,
                 advantages, returns, explained_var)


def minibatch_loss(policy: Policy, config: PPOConfig, batch: Batch, index: torch.Tensor, max_len: int):
    """``(loss, parts)``: the PPO loss of programs ``index (n,)`` of ``batch``, and its parts.

    ``loss = pg_loss + vf_coef * v_loss + kl_coef * kl_loss - ent_coef * entropy``, each over
    ``batch.loss_mask``; ``v_loss`` is 0 unless the estimator ``uses_critic`` (gae), ``kl_loss``
    0 unless it has ``kl_in_loss`` (grpo). ``parts`` maps ``losses/<name>`` to detached scalars.
    """
    estimator = config.advantage_estimator
    t, m = _trim(batch.tokens[index], batch.mask[index])
    w = t.shape[1]
    out = policy(select_rows(batch.prompts, index, batch.tokens.shape[0]), t, m)
    device = out.logits.device

    def cut(x: torch.Tensor) -> torch.Tensor:
        return x[index, :w].to(device)

    loss_mask = cut(batch.loss_mask)
    log_prob = token_logprobs(out.logits, t.to(device), config.temperature, policy.suppressed_ids)
    pg_loss, clipfrac, approx_kl = algos.compute_policy_loss(
        cut(batch.old_log_prob), log_prob, cut(batch.advantages), loss_mask,
        config.clip_ratio, config.loss_agg_mode, max_len)
    v_loss = kl_loss = torch.zeros((), device=device)
    if estimator.uses_critic:
        v_loss, _ = algos.compute_value_loss(out.values, cut(batch.values), cut(batch.returns), loss_mask,
                                             config.cliprange_value or None, config.loss_agg_mode)
    if estimator.kl_in_loss:  # veRL's use_kl_loss: the current policy's KL, with its gradient
        kl_mat = algos.kl_penalty(log_prob, cut(batch.ref_log_prob), config.kl_estimator)
        kl_loss = algos.agg_loss(kl_mat, loss_mask, config.loss_agg_mode, max_len)
    entropy = algos.masked_mean(_entropy(out.logits, config.temperature, policy.suppressed_ids), loss_mask)
    loss = pg_loss + config.vf_coef * v_loss + batch.kl_coef * kl_loss - config.ent_coef * entropy
    parts = {"pg_loss": pg_loss, "v_loss": v_loss, "kl_loss": kl_loss, "approx_kl": approx_kl,
             "clipfrac": clipfrac, "entropy": entropy}
    return loss, {f"losses/{k}": float(v.detach()) for k, v in parts.items()}


def update(learner: Learner, batch: Batch, max_len: int, iteration: int = 0) -> dict:
    """``ppo_epochs`` passes of minibatch steps; the mean of each loss figure over the steps.
    With ``learner.ptx``, each step also takes ``ptx_coef`` times the SFT loss of train programs
    drawn for ``(iteration, step)``."""
    policy, optimizer, config = learner.policy, learner.optimizer, learner.config
    params = [p for p in policy.parameters() if p.requires_grad]
    stats: dict[str, list[float]] = defaultdict(list)
    policy.train()
    step = 0
    for _ in range(config.ppo_epochs):
        order = torch.randperm(batch.tokens.shape[0])
        for start in range(0, len(order), config.minibatch_size):
            loss, parts = minibatch_loss(policy, config, batch, order[start : start + config.minibatch_size],
                                         max_len)
            if learner.ptx is not None:
                ptx_loss = learner.ptx.loss(policy, iteration, step)
                loss = loss + config.ptx_coef * ptx_loss
                parts["losses/ptx_loss"] = float(ptx_loss.detach())
            step += 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if learner.world is not None:
                learner.world.average_gradients(params)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            for key, value in parts.items():
                stats[key].append(value)
    policy.eval()
    return {key: float(np.mean(values)) for key, values in stats.items()}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def iterate(learner: Learner, rows: list, iteration: int, records_dir: str | None = None):
    """One PPO iteration on target ``rows`` (dicts with ``id`` and ``image``); ``(metrics, records)``."""
    policy, config = learner.policy, learner.config
    k = config.k
    max_len = config.max_new_tokens or policy.config.max_new_tokens
    started = time.perf_counter()
    policy.eval()
    greedy_scoring, generate_s = None, 0.0
    if config.grpo_baseline == "greedy":  # rendered while the samples are drawn
        greedy_scoring = Scoring(learner.rewarder, policy.eos_ids, config.length_guard, rows, 1)
        greedy_scoring.submit(policy.sample(rows, n=1, max_new_tokens=max_len, greedy=True))
        generate_s = time.perf_counter() - started
    scoring = Scoring(learner.rewarder, policy.eos_ids, config.length_guard, rows, k, records_dir)
    rollout, sampling_s = sample_and_submit(policy, config, rows, scoring)
    generate_s += sampling_s
    passes = rollout_passes(learner, rows, rollout)  # needs no score: the last chunk renders meanwhile
    breakdowns = scoring.collect()
    greedy = greedy_scoring.collect() if greedy_scoring else None
    records = scoring.records(rollout, breakdowns, iteration) if records_dir else []
    batch = finish_batch(learner, rows, passes, breakdowns, greedy)
    losses = update(learner, batch, max_len, iteration)
    kl_per_program = batch.kl.sum(dim=-1)
    kl_mean = float(kl_per_program.mean())
    if learner.world is not None:  # every learner steers its coefficient by the same global mean
        kl_mean = learner.world.mean({"kl": kl_mean})["kl"]
    learner.kl_ctl.update(kl_mean, 1)  # the horizon is in iterations (configs.ppo)
    done = time.perf_counter()
    scored = [b for b in breakdowns if not b.infrastructure]  # the policy's programs, pool failures out

    metrics = {
        "reward/total/mean": _mean([b.total for b in scored]),
        "reward/ssim/mean": _mean([b.ssim for b in scored]),
        "reward/chamfer/mean": _mean([b.chamfer for b in scored]),
        "reward/iou/mean": _mean([b.iou for b in scored]),
        "reward/size/mean": _mean([b.size for b in scored]),  # the program's own box against the target's
        "reward/iou/valid_mean": _mean([b.iou for b in scored if b.valid > 0]),  # NaN: none valid
        "reward/invalid_frac": _mean([b.valid <= 0 for b in scored]),
        "reward/infra_failed_frac": _mean([b.infrastructure for b in breakdowns]),
        "reward/truncated_frac": _mean(scoring.truncated),
        "reward/duplicate_frac": duplicate_fraction(rollout.texts, [r["id"] for r in rows for _ in range(k)]),
        **losses,
        "losses/explained_var": batch.explained_var,
        "kl/ref_mean": float(kl_per_program.mean()),
        "kl/ref_token_mean": float(algos.masked_mean(batch.kl, batch.mask)),
        "kl/coef": batch.kl_coef,
        "charts/response_tokens": float(batch.mask.sum(dim=1).float().mean()),
        "charts/samples_per_s": len(breakdowns) / (done - started),
        "timing_s/generate": generate_s,
        "timing_s/render": scoring.wait_s,
        "timing_s/update": done - started - generate_s - scoring.wait_s,
        "timing_s/render_span": scoring.span_s(),
        "timing_s/learner_idle_frac": scoring.wait_s / (done - started),  # a share: with its timings
    }
    if greedy is not None:
        metrics.update(greedy_metrics(greedy, breakdowns, k))
    return metrics, records


def greedy_metrics(greedy: list[RewardBreakdown], breakdowns: list[RewardBreakdown], k: int) -> dict:
    """``reward/greedy/mean`` (each image's greedy program, pool failures out) and
    ``reward/above_greedy_frac``: the share of samples scoring above their image's greedy program."""
    pairs = [(b, greedy[i // k]) for i, b in enumerate(breakdowns)]
    counted = [(b, g) for b, g in pairs if not (b.infrastructure or g.infrastructure)]
    return {"reward/greedy/mean": _mean([g.total for g in greedy if not g.infrastructure]),
            "reward/above_greedy_frac": _mean([b.total > g.total for b, g in counted])}
