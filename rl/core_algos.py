"""PPO math as pure torch functions, in the shape of veRL's ``core_algos.py``.

Every function takes a batch of right-padded responses, ``bs`` sequences of ``response_length``
tokens, and a ``response_mask`` of the same shape (bool or 0/1 float) that is true on the sampled
tokens. Whatever sits under ``response_mask == 0`` (padding) never changes a result, even NaN:
per-token outputs are 0 there, and padding is replaced before any arithmetic so gradients stay
finite. Names follow CleanRL (``advantages``, ``returns``, ``pg_loss``, ``clipfrac``, ``approx_kl``)
and veRL (``token_level_rewards``, ``loss_agg_mode``).

The advantage estimators are one table, :data:`ESTIMATORS`, that ``configs.ppo`` validates against
and ``rl.ppo_loop`` branches on. The KL estimators and the two (stateful) KL controllers are in
:mod:`rl.kl`, re-exported here.
"""

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from rl.kl import (  # noqa: F401  (re-exported: PPO code imports its math from this module)
    K3_MAX,
    KL_KINDS,
    KL_LOSS_KINDS,
    AdaptiveKLController,
    FixedKLController,
    kl_penalty,
)

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _zero_outside(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with every entry outside ``mask`` replaced by 0 (NaN-safe, zero gradient there)."""
    return torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is set.

    ``x`` and ``mask`` have the same shape, e.g. (bs, response_length). With ``dim=None`` the
    result is a scalar; otherwise ``dim`` is reduced (dim=-1 gives shape (bs,)). A slice with no
    valid entry has mean 0.
    """
    weights = mask.to(x.dtype)
    weighted = _zero_outside(x, mask) * weights
    total, count = (weighted.sum(), weights.sum()) if dim is None else (weighted.sum(dim), weights.sum(dim))
    return total / count.clamp_min(1e-8)


def masked_var(
    x: torch.Tensor, mask: torch.Tensor, dim: int | None = None, unbiased: bool = True
) -> torch.Tensor:
    """Variance of ``x`` over the entries where ``mask`` is set; shapes as in :func:`masked_mean`.

    ``unbiased`` applies Bessel's correction n / (n - 1); with fewer than two valid entries the
    unbiased variance is taken as 0 (there is no spread to measure).
    """
    x = _zero_outside(x, mask)
    mean = masked_mean(x, mask, dim)
    if dim is not None:
        mean = mean.unsqueeze(dim)
    var = masked_mean((x - mean) ** 2, mask, dim)
    if unbiased:
        count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim)
        var = torch.where(count > 1, var * count / (count - 1).clamp_min(1.0), torch.zeros_like(var))
    return var


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Whiten ``x`` with the mean and (unbiased) variance of its valid entries only.

    ``x``, ``mask`` and the result have shape (bs, response_length). With ``shift_mean=False``
    the mean is added back (only the scale changes). Padding entries of the result are 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return _zero_outside(whitened, mask)


@torch.no_grad()
def compute_gae_advantage_return(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over each response.

    Args:
        token_level_rewards: shape is (bs, response_length); see :func:`terminal_rewards`.
        values: value-head predictions V(s_t), shape is (bs, response_length).
        response_mask: shape is (bs, response_length); true on the response's tokens.
        gamma: discount factor.
        lam: GAE lambda (lam=1: Monte-Carlo return minus value; lam=0: one-step TD error).

    Returns:
        ``(advantages, returns)``, each of shape (bs, response_length), 0 on padding;
        ``returns = advantages + values`` are the value-head targets. The episode ends after the
        last valid token (the value after it is 0); masked-out tokens are skipped, so responses
        of any length share one batch. Advantages are not whitened here: call
        :func:`masked_whiten` on them (veRL does that inside; CleanRL per minibatch).
    """
    mask = response_mask.bool()
    rewards, values = _zero_outside(token_level_rewards, mask), _zero_outside(values, mask)
    advantages = torch.zeros_like(values)
    next_value = values.new_zeros(values.shape[0])
    last_gae_lam = values.new_zeros(values.shape[0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae_lam
        next_value = torch.where(mask[:, t], values[:, t], next_value)
        last_gae_lam = torch.where(mask[:, t], gae, last_gae_lam)
        advantages[:, t] = _zero_outside(gae, mask[:, t])
    returns = _zero_outside(advantages + values, mask)
    return advantages, returns


@torch.no_grad()
def terminal_rewards(
    scores: torch.Tensor,
    response_mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """Per-token rewards: each program's scalar score on its last valid token, minus a KL penalty.

    Args:
        scores: one reward per sampled program, shape is (bs,).
        response_mask: shape is (bs, response_length).
        kl: per-token KL estimate against the reference policy (:func:`kl_penalty`), shape is
            (bs, response_length), or None for no penalty.
        kl_coef: weight of the penalty; every valid token gets ``-kl_coef * kl``.

    Returns:
        token_level_rewards, shape is (bs, response_length), 0 on padding. A row with no valid
        token has nowhere to put its score and gets all zeros.
    """
    mask = response_mask.bool()
    dtype = scores.dtype if scores.is_floating_point() else torch.float32
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, -1).amax(dim=-1)  # (bs,)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards = torch.zeros(mask.shape, dtype=dtype, device=scores.device)
    rewards[rows, last[rows]] = scores[rows].to(dtype)
    if kl is not None:
        rewards = rewards - kl_coef * _zero_outside(kl.to(dtype), mask)
    return rewards


@torch.no_grad()
def compute_grpo_outcome_advantage(
    scores: torch.Tensor,
    index: torch.Tensor | Sequence[Hashable],
    response_mask: torch.Tensor,
    norm_by_std: bool = True,
    eps: float = 1e-6,
    sample_mask: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
) -> torch.Tensor:
    """Group-relative advantages (GRPO; Dr. GRPO with ``norm_by_std=False``).

    Args:
        scores: one task score per sampled program, shape is (bs,). Pass the task score alone:
            a KL penalty folded in here would turn KL noise into full-size advantages in a group
            whose scores tie; put the KL in the loss instead (veRL's ``use_kl_loss``).
        index: the group (prompt/image) of each sample, shape is (bs,): an integer tensor or any
            sequence of hashable ids (e.g. uid strings).
        response_mask: shape is (bs, response_length).
        norm_by_std: divide by the group's (unbiased) standard deviation plus ``eps``.
        sample_mask: shape is (bs,), bool; samples set to False (e.g. infrastructure failures)
            get 0 and are left out of their group's mean and standard deviation. None: all count.
        baseline: shape is (bs,): what each score is measured against instead of its group's
            mean, e.g. the score of the image's greedy program (ReMax's baseline, Li et al.
            2023), so that only samples better than the greedy one are made likelier; NaN: the
            group mean for that sample. The standard deviation stays the group's spread.

    Returns:
        advantages, shape is (bs, response_length): ``score - group mean`` (over std) on every
        valid token, 0 on padding. They sum to zero within a group; a group of one counted
        sample gets 0, and so does every sample of a group whose counted scores all tie
        (exactly 0, not rounding divided by a near-zero std).
    """
    if len(index) != scores.shape[0]:
        raise ValueError(f"index has {len(index)} entries but scores has {scores.shape[0]}")
    if isinstance(index, torch.Tensor):
        group = torch.unique(index, return_inverse=True)[1].to(scores.device)
    else:
        ids: dict[Hashable, int] = {}
        group = torch.tensor([ids.setdefault(g, len(ids)) for g in index], device=scores.device)
    scores = scores.to(torch.float32) if not scores.is_floating_point() else scores
    counted = torch.ones_like(scores, dtype=torch.bool) if sample_mask is None else sample_mask.bool()
    counted = counted.to(scores.device)
    weight, scores = counted.to(scores.dtype), _zero_outside(scores, counted)
    n_groups = int(group.max()) + 1 if group.numel() else 0
    count = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device).index_add_(0, group, weight)
    total = torch.zeros_like(count).index_add_(0, group, scores)
    mean = (total / count.clamp_min(1.0))[group]
    spread = (scores - mean) * weight
    if baseline is not None:
        baseline = baseline.to(scores.device, scores.dtype)
        centred = (scores - torch.where(torch.isnan(baseline), mean, baseline)) * weight
    else:
        centred = spread
    inf = torch.full_like(scores, torch.inf)
    high = (-inf[:n_groups]).scatter_reduce(0, group, torch.where(counted, scores, -inf), "amax")
    low = inf[:n_groups].scatter_reduce(0, group, torch.where(counted, scores, inf), "amin")
    centred = torch.where((high <= low)[group], torch.zeros_like(centred), centred)  # a tie: exactly 0
    if norm_by_std:
        sq = torch.zeros_like(count).index_add_(0, group, spread**2)
        std = (sq / (count - 1).clamp_min(1.0)).sqrt()
        centred = centred / (std[group] + eps)
    return _zero_outside(centred.unsqueeze(-1).expand(response_mask.shape), response_mask)


class AdvantageSettings(Protocol):
    """What an estimator's ``compute`` reads (:class:`configs.ppo.PPOConfig` has it)."""

    gamma: float
    lam: float
    whiten_advantages: bool
    grpo_norm_by_std: bool


Tensor = torch.Tensor


@torch.no_grad()
def gae_advantages(scores: Tensor, mask: Tensor, index: Tensor, values: Tensor, kl: Tensor, kl_coef: float,
                   settings: AdvantageSettings, baseline: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The ``gae`` estimator: ``(advantages, returns)``, each (bs, response_length), 0 off ``mask``.

    ``scores (bs,)``; ``mask``, ``values``, ``kl`` (bs, response_length); ``index`` unused. The KL
    penalty goes into :func:`terminal_rewards`; advantages whitened if ``settings.whiten_advantages``.
    The critic is the baseline: a ``baseline`` is refused.
    """
    if baseline is not None:
        raise ValueError("gae's baseline is its critic; a per-sample baseline is for grpo")
    rewards = terminal_rewards(scores, mask, kl, kl_coef)
    advantages, returns = compute_gae_advantage_return(rewards, values, mask, settings.gamma, settings.lam)
    if settings.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    return advantages, returns


@torch.no_grad()
def grpo_advantages(scores: Tensor, mask: Tensor, index: Tensor, values: Tensor, kl: Tensor, kl_coef: float,
                    settings: AdvantageSettings, baseline: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The ``grpo`` estimator: ``(advantages, zeros)``, the group baseline of the scores alone.

    As :func:`gae_advantages`, ``index (bs,)`` the groups; no critic, and the KL is in the loss. A
    program with no token in ``mask`` is left out of its group's statistics. ``baseline (bs,)``: see
    :func:`compute_grpo_outcome_advantage` (the greedy programs' scores, ``grpo_baseline greedy``).
    """
    counted = mask.bool().any(dim=-1)
    advantages = compute_grpo_outcome_advantage(scores, index, mask, norm_by_std=settings.grpo_norm_by_std,
                                                sample_mask=counted, baseline=baseline)
    return advantages, torch.zeros_like(advantages)


@dataclass(frozen=True)
class Estimator:
    """One advantage estimator and what it implies for the rest of the PPO update."""

    name: str
    """Its key in :data:`ESTIMATORS` (the ``estimator`` setting)."""
    uses_critic: bool
    """Trains the value head: a value loss on ``returns``, and an explained variance to log."""
    kl_in_loss: bool
    """The KL is a term of the loss (veRL's ``use_kl_loss``); otherwise ``compute`` puts it in the reward."""
    default_kl_kind: str
    """The :func:`kl_penalty` kind when none is set (one of :data:`KL_LOSS_KINDS` if ``kl_in_loss``)."""
    min_group: int
    """Fewest programs per target image it works with (a group baseline needs two)."""
    compute: Callable[..., tuple[Tensor, Tensor]]
    """:func:`gae_advantages`' signature (``baseline`` optional): ``-> (advantages, returns)``."""


ESTIMATORS: dict[str, Estimator] = {
    "gae": Estimator("gae", uses_critic=True, kl_in_loss=False, default_kl_kind="k1", min_group=1,
                     compute=gae_advantages),
    "grpo": Estimator("grpo", uses_critic=False, kl_in_loss=True, default_kl_kind="k3", min_group=2,
                      compute=grpo_advantages),
}
"""Value head and GAE (PPO-RLHF: Ziegler et al., TRL, veRL's default), or GRPO's group baseline."""


def agg_loss(
    loss_mat: torch.Tensor,
    loss_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    max_response_length: int | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss to a scalar.

    ``loss_mat`` and ``loss_mask`` have shape (bs, response_length). Modes:
    ``"token-mean"``: mean over all valid tokens of the batch (PPO, DAPO).
    ``"seq-mean-token-mean"``: mean per sequence, then over sequences (original GRPO).
    ``"seq-mean-token-sum"``: sum per sequence, then mean over sequences.
    ``"seq-mean-token-sum-norm"``: as the last, divided by the constant ``max_response_length``
    (Dr. GRPO; default ``response_length``: pass the generation limit so that the loss scale does
    not depend on how much padding the batch has). Sequences without valid tokens are left out.
    """
    if loss_agg_mode not in LOSS_AGG_MODES:
        raise ValueError(f"loss_agg_mode must be one of {LOSS_AGG_MODES}, got {loss_agg_mode!r}")
    mask = loss_mask.bool()
    if loss_agg_mode == "token-mean":
        return masked_mean(loss_mat, mask)
    if loss_agg_mode == "seq-mean-token-mean":
        seq_losses = masked_mean(loss_mat, mask, dim=-1)
    else:
        seq_losses = _zero_outside(loss_mat, mask).sum(dim=-1)
    loss = masked_mean(seq_losses, mask.any(dim=-1))
    if loss_agg_mode == "seq-mean-token-sum-norm":
        loss = loss / (max_response_length or mask.shape[-1])
    return loss


def compute_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    clip_ratio: float = 0.2,
    loss_agg_mode: str = "token-mean",
    max_response_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate loss (Schulman et al. 2017), as in CleanRL and veRL.

    Args:
        old_log_prob: log-probs of the sampled tokens under the rollout policy, shape is
            (bs, response_length).
        log_prob: the same under the policy being trained, shape is (bs, response_length).
        advantages: shape is (bs, response_length).
        response_mask: shape is (bs, response_length).
        clip_ratio: the ratio is clipped to [1 - clip_ratio, 1 + clip_ratio].
        loss_agg_mode, max_response_length: see :func:`agg_loss`.

    Returns:
        ``(pg_loss, clipfrac, approx_kl)``, scalars. ``clipfrac`` is the fraction of valid tokens
        whose clipped term is the larger loss (clipping is active, the gradient is 0 there);
        ``approx_kl`` is CleanRL's estimate mean((ratio - 1) - log ratio) of KL(old || new).
        The log ratio is clamped to [-20, 20] for stability (veRL).
    """
    mask = response_mask.bool()
    log_ratio = _zero_outside(log_prob - old_log_prob, mask).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    advantages = _zero_outside(advantages, mask)
    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    pg_loss = agg_loss(torch.maximum(pg_losses1, pg_losses2), mask, loss_agg_mode, max_response_length)
    clipfrac = masked_mean((pg_losses2 > pg_losses1).to(ratio.dtype), mask)
    approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return pg_loss, clipfrac.detach(), approx_kl.detach()


def compute_value_loss(
    vpreds: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float | None = 0.2,
    loss_agg_mode: str = "token-mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss: 0.5 * max((vpred - R)^2, (clip(vpred, V_old +- c) - R)^2).

    Args:
        vpreds: value predictions of the model being trained, shape is (bs, response_length).
        values: value predictions at rollout time (V_old), shape is (bs, response_length).
        returns: targets from :func:`compute_gae_advantage_return`, shape is (bs, response_length).
        response_mask: shape is (bs, response_length).
        cliprange_value: half-width of the clip around ``values``; None disables clipping.
        loss_agg_mode: see :func:`agg_loss`.

    Returns:
        ``(vf_loss, vf_clipfrac)``, scalars; ``vf_clipfrac`` is the fraction of valid tokens where
        the clipped error is the larger one.
    """
    mask = response_mask.bool()
    vpreds, values, returns = (_zero_outside(x, mask) for x in (vpreds, values, returns))
    vf_losses1 = (vpreds - returns) ** 2
    if cliprange_value is None:
        return 0.5 * agg_loss(vf_losses1, mask, loss_agg_mode), vpreds.new_zeros(())
    vpredclipped = values + torch.clamp(vpreds - values, -cliprange_value, cliprange_value)
    vf_losses2 = (vpredclipped - returns) ** 2
    vf_loss = 0.5 * agg_loss(torch.maximum(vf_losses1, vf_losses2), mask, loss_agg_mode)
    vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).to(vpreds.dtype), mask)
    return vf_loss, vf_clipfrac.detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax distribution at each position; logits shape is
    (bs, response_length, vocab_size), result shape is (bs, response_length).

    Computed as logsumexp(z) - sum(softmax(z) * z), stable for large logits (they must be finite).
    """
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


@torch.no_grad()
def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over the valid tokens (CleanRL's ``explained_var``).

    ``values``, ``returns`` and ``mask`` have shape (bs, response_length). 1 is a perfect value
    head, 0 no better than a constant; NaN when the returns have no variance.
    """
    var_returns = masked_var(returns, mask, unbiased=False)
    if var_returns.item() == 0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask, unbiased=False) / var_returns)
