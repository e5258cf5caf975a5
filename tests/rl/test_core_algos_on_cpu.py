"""Properties of rl.core_algos: each vectorised function against a plain loop, plus hand cases.

Batches are right-padded (bs, T) tensors whose padding holds garbage (NaN and huge numbers), so
every comparison also checks that padding never leaks into a result.
"""

import math
import statistics
from types import SimpleNamespace

import pytest
import torch

from rl.core_algos import (
    ESTIMATORS,
    K3_MAX,
    KL_KINDS,
    KL_LOSS_KINDS,
    AdaptiveKLController,
    FixedKLController,
    agg_loss,
    compute_gae_advantage_return,
    compute_grpo_outcome_advantage,
    compute_policy_loss,
    compute_value_loss,
    entropy_from_logits,
    explained_variance,
    kl_penalty,
    masked_mean,
    masked_var,
    masked_whiten,
    terminal_rewards,
)

SEEDS = [0, 1, 2, 3]
AGG_MODES = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


def right_padded(seed: int, bs: int = 6, T: int = 9):
    """A generator, per-row lengths in [1, T] (one row full), and the (bs, T) bool mask."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (bs,), generator=gen)
    lengths[0] = T
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    return gen, lengths.tolist(), mask


def rand(gen, mask, scale=1.0, garbage=float("nan")):
    """Random (bs, T) float64 values on the mask, ``garbage`` on the padding."""
    x = torch.randn(mask.shape, generator=gen, dtype=torch.float64) * scale
    return torch.where(mask, x, torch.full_like(x, garbage))


def with_garbage(x, mask, extra=3, fill=1e6):
    """``x`` (bs, T) with its padding overwritten and ``extra`` garbage columns appended; new mask."""
    x = torch.where(mask, x, torch.full_like(x, fill))
    x = torch.cat([x, torch.full((x.shape[0], extra), -fill, dtype=x.dtype)], dim=1)
    return x, torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], dim=1)


# ---- plain-loop references (Python floats, one sequence at a time) ----


def loop_gae(rewards, values, lengths, gamma, lam):
    advantages, returns = [], []
    for r, v, n in zip(rewards.tolist(), values.tolist(), lengths, strict=True):
        adv, last = [0.0] * n, 0.0
        for t in reversed(range(n)):
            next_value = v[t + 1] if t + 1 < n else 0.0
            last = r[t] + gamma * next_value - v[t] + gamma * lam * last
            adv[t] = last
        advantages.append(adv)
        returns.append([a + b for a, b in zip(adv, v[:n], strict=True)])
    return advantages, returns


def loop_policy_loss(old, new, adv, lengths, clip, mode):
    per_seq, tokens, clipped, kls = [], [], 0, []
    for o, p, a, n in zip(old.tolist(), new.tolist(), adv.tolist(), lengths, strict=True):
        seq = []
        for t in range(n):
            ratio = math.exp(p[t] - o[t])
            unclipped, clipped_loss = -a[t] * ratio, -a[t] * min(max(ratio, 1 - clip), 1 + clip)
            seq.append(max(unclipped, clipped_loss))
            clipped += clipped_loss > unclipped
            kls.append((ratio - 1) - (p[t] - o[t]))
        per_seq.append(seq)
        tokens.extend(seq)
    return loop_agg(per_seq, mode, len(old[0])), clipped / len(tokens), sum(kls) / len(kls)


def loop_agg(per_seq, mode, T):
    if mode == "token-mean":
        flat = [x for seq in per_seq for x in seq]
        return sum(flat) / len(flat)
    if mode == "seq-mean-token-mean":
        return sum(sum(s) / len(s) for s in per_seq) / len(per_seq)
    loss = sum(sum(s) for s in per_seq) / len(per_seq)
    return loss / T if mode == "seq-mean-token-sum-norm" else loss


def assert_rows_close(tensor, rows, lengths, atol=1e-9):
    for i, n in enumerate(lengths):
        assert tensor[i, :n].tolist() == pytest.approx(rows[i], abs=atol)
        assert torch.all(tensor[i, n:] == 0)


# ---- masked statistics ----


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_mean_and_var_match_a_loop_over_valid_entries(seed):
    gen, lengths, mask = right_padded(seed)
    x = rand(gen, mask)
    valid = [v for row, n in zip(x.tolist(), lengths, strict=True) for v in row[:n]]
    mean = sum(valid) / len(valid)
    assert masked_mean(x, mask).item() == pytest.approx(mean)
    assert masked_var(x, mask).item() == pytest.approx(sum((v - mean) ** 2 for v in valid) / (len(valid) - 1))
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(
        sum((v - mean) ** 2 for v in valid) / len(valid)
    )
    row_means = [sum(row[:n]) / n for row, n in zip(x.tolist(), lengths, strict=True)]
    assert masked_mean(x, mask, dim=-1).tolist() == pytest.approx(row_means)


def test_masked_var_of_a_single_entry_is_zero_and_an_empty_mask_has_mean_zero():
    x = torch.tensor([[3.0, float("nan")]])
    assert masked_var(x, torch.tensor([[True, False]])).item() == 0.0
    assert masked_mean(x, torch.zeros(1, 2, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_whitening_gives_mean_zero_and_variance_one_over_the_mask(seed):
    gen, lengths, mask = right_padded(seed)
    x = rand(gen, mask, scale=5.0) + 3.0
    whitened = masked_whiten(x, mask)
    assert masked_mean(whitened, mask).item() == pytest.approx(0.0, abs=1e-9)
    assert masked_var(whitened, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.all(whitened[~mask] == 0)
    kept = masked_whiten(x, mask, shift_mean=False)
    assert masked_mean(kept, mask).item() == pytest.approx(masked_mean(x, mask).item())


# ---- GAE ----


@pytest.mark.parametrize("seed", SEEDS)
def test_gae_matches_a_loop_over_each_response(seed):
    gen, lengths, mask = right_padded(seed)
    rewards, values = rand(gen, mask), rand(gen, mask)
    gamma, lam = 0.5 + 0.5 * torch.rand((), generator=gen).item(), torch.rand((), generator=gen).item()
    advantages, returns = compute_gae_advantage_return(rewards, values, mask, gamma, lam)
    want_adv, want_ret = loop_gae(rewards, values, lengths, gamma, lam)
    assert_rows_close(advantages, want_adv, lengths)
    assert_rows_close(returns, want_ret, lengths)


def test_gae_with_gamma_one_lam_one_is_reward_to_go_minus_value():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    rewards = torch.tensor([[1.0, 2.0, 3.0, 9.0], [0.0, 0.0, 0.0, 4.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 9.0], [1.0, 2.0, 3.0, 4.0]])
    advantages, returns = compute_gae_advantage_return(rewards, values, mask, gamma=1.0, lam=1.0)
    assert advantages.tolist() == [[5.5, 4.5, 2.5, 0.0], [3.0, 2.0, 1.0, 0.0]]
    assert returns.tolist() == [[6.0, 5.0, 3.0, 0.0], [4.0, 4.0, 4.0, 4.0]]


def test_gae_with_lam_zero_is_the_one_step_td_error():
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    rewards = torch.tensor([[1.0, 0.0, 2.0, 7.0]])
    values = torch.tensor([[1.0, 2.0, 4.0, 7.0]])
    advantages, _ = compute_gae_advantage_return(rewards, values, mask, gamma=0.5, lam=0.0)
    # r_t + gamma * V_{t+1} - V_t, with the value after the last valid token taken as 0.
    assert advantages.tolist() == [[1.0 + 0.5 * 2.0 - 1.0, 0.0 + 0.5 * 4.0 - 2.0, 2.0 - 4.0, 0.0]]


@pytest.mark.parametrize("seed", SEEDS)
def test_gae_ignores_padding(seed):
    gen, lengths, mask = right_padded(seed)
    rewards, values = rand(gen, mask, garbage=0.0), rand(gen, mask, garbage=0.0)
    advantages, returns = compute_gae_advantage_return(rewards, values, mask, 0.9, 0.95)
    (rewards_g, mask_g), (values_g, _) = with_garbage(rewards, mask), with_garbage(values, mask)
    advantages_g, returns_g = compute_gae_advantage_return(rewards_g, values_g, mask_g, 0.9, 0.95)
    assert torch.equal(advantages_g[:, : mask.shape[1]], advantages)
    assert torch.equal(returns_g[:, : mask.shape[1]], returns)
    assert torch.all(advantages_g[~mask_g] == 0) and torch.all(returns_g[~mask_g] == 0)


# ---- rewards ----


def test_terminal_reward_lands_on_the_last_valid_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    rewards = terminal_rewards(torch.tensor([0.7, -1.0, 2.0, 5.0]), mask)
    want = torch.tensor([[0, 0, 0.7, 0], [-1.0, 0, 0, 0], [0, 0, 0, 2.0], [0, 0, 0, 0]])
    assert torch.equal(rewards, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_terminal_rewards_with_kl_match_a_loop_and_ignore_padding(seed):
    gen, lengths, mask = right_padded(seed)
    scores = torch.randn(mask.shape[0], generator=gen, dtype=torch.float64)
    kl = rand(gen, mask).abs()
    rewards = terminal_rewards(scores, mask, kl=kl, kl_coef=0.1)
    want = []
    for s, k, n in zip(scores.tolist(), kl.tolist(), lengths, strict=True):
        want.append([-0.1 * k[t] + (s if t == n - 1 else 0.0) for t in range(n)])
    assert_rows_close(rewards, want, lengths)
    kl_g, mask_g = with_garbage(kl, mask)
    assert torch.equal(terminal_rewards(scores, mask_g, kl=kl_g, kl_coef=0.1)[:, : mask.shape[1]], rewards)


# ---- GRPO ----


def loop_grpo(scores, groups, norm_by_std, eps, counted=None):
    counted = counted or [True] * len(scores)
    out = []
    for s, g, c in zip(scores, groups, counted, strict=True):
        members = [x for x, h, d in zip(scores, groups, counted, strict=True) if h == g and d]
        if not c or len(members) == 1 or len(set(members)) == 1:
            out.append(0.0)
            continue
        mean = sum(members) / len(members)
        std = math.sqrt(sum((x - mean) ** 2 for x in members) / (len(members) - 1))
        out.append((s - mean) / (std + eps) if norm_by_std else s - mean)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm_by_std", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_grpo_advantages_match_a_loop(seed, norm_by_std, masked):
    gen, lengths, mask = right_padded(seed, bs=10)
    scores = torch.randn(10, generator=gen, dtype=torch.float64)
    groups = torch.randint(0, 4, (10,), generator=gen) * 7
    counted = torch.rand(10, generator=gen) > 0.3 if masked else None
    if masked:
        scores[~counted] = float("nan")  # a sample left out may hold anything
    advantages = compute_grpo_outcome_advantage(scores, groups, mask, norm_by_std=norm_by_std,
                                                sample_mask=counted)
    flags = counted.tolist() if masked else None
    per_seq = loop_grpo(scores.tolist(), groups.tolist(), norm_by_std, 1e-6, flags)
    assert_rows_close(advantages, [[a] * n for a, n in zip(per_seq, lengths, strict=True)], lengths)


@pytest.mark.parametrize("value", [-1.0, 0.7, 0.1])
def test_a_tied_group_gets_exactly_zero_advantage(value):
    # float32 rounding leaves 8 * 0.7 / 8 a hair off 0.7; divided by the ~0 std that was 0.056.
    scores = torch.tensor([value] * 8 + [value, value, value, 5.0])
    groups = [0] * 8 + [1] * 4
    counted = torch.tensor([True] * 11 + [False])  # the 5.0 is left out: group 1 ties too
    mask = torch.ones(12, 3, dtype=torch.bool)
    advantages = compute_grpo_outcome_advantage(scores, groups, mask, sample_mask=counted)
    assert torch.all(advantages == 0)


def test_grpo_advantages_sum_to_zero_per_group_and_a_single_sample_group_gets_zero():
    scores = torch.tensor([1.0, 0.0, 0.5, 3.0, 2.0, 9.0])
    groups = ["a", "a", "a", "b", "b", "c"]
    mask = torch.ones(6, 3, dtype=torch.bool)
    advantages = compute_grpo_outcome_advantage(scores, groups, mask)[:, 0]
    assert advantages[:3].sum().item() == pytest.approx(0.0, abs=1e-6)
    assert advantages[3:5].sum().item() == pytest.approx(0.0, abs=1e-6)
    assert advantages[5].item() == 0.0
    dr_grpo = compute_grpo_outcome_advantage(scores, groups, mask, norm_by_std=False)[:, 0]
    assert dr_grpo.tolist() == pytest.approx([0.5, -0.5, 0.0, 0.5, -0.5, 0.0])


def test_a_greedy_baseline_replaces_the_group_mean_and_keeps_the_groups_spread():
    scores = torch.tensor([0.2, 0.4, 0.9, 0.5, 0.1, 0.3, 0.7, 0.7])
    groups = [0, 0, 0, 0, 1, 1, 2, 2]
    greedy = torch.tensor([0.5] * 4 + [math.nan] * 2 + [0.2] * 2)  # group 1: its greedy program failed
    mask = torch.ones(8, 2, dtype=torch.bool)
    got = compute_grpo_outcome_advantage(scores, groups, mask, baseline=greedy)[:, 0].tolist()
    spread = statistics.stdev([0.2, 0.4, 0.9, 0.5])
    want = [(s - 0.5) / (spread + 1e-6) for s in (0.2, 0.4, 0.9, 0.5)]
    want += [(s - 0.2) / (statistics.stdev([0.1, 0.3]) + 1e-6) for s in (0.1, 0.3)]  # NaN: the mean
    assert got[:6] == pytest.approx(want, rel=1e-5)
    assert got[6:] == [0.0, 0.0]  # a tie stays 0, whatever the greedy program scored
    assert got[3] == 0.0 and got[2] > 0 > got[0]  # only what beats the greedy program is made likelier
    unnormalised = compute_grpo_outcome_advantage(scores, groups, mask, norm_by_std=False, baseline=greedy)
    assert unnormalised[:4, 1].tolist() == pytest.approx([-0.3, -0.1, 0.4, 0.0], abs=1e-6)


def test_grpo_rejects_an_index_of_the_wrong_length():
    with pytest.raises(ValueError, match="index"):
        compute_grpo_outcome_advantage(torch.zeros(3), [0, 0], torch.ones(3, 2, dtype=torch.bool))


# ---- policy loss ----


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", AGG_MODES)
def test_policy_loss_matches_a_loop(seed, mode):
    gen, lengths, mask = right_padded(seed)
    old = rand(gen, mask, scale=0.3) - 2.0
    new = torch.where(mask, old + 0.3 * torch.randn(mask.shape, generator=gen, dtype=torch.float64), old)
    adv = rand(gen, mask)
    pg_loss, clipfrac, approx_kl = compute_policy_loss(old, new, adv, mask, 0.2, mode)
    want_loss, want_clipfrac, want_kl = loop_policy_loss(old, new, adv, lengths, 0.2, mode)
    assert pg_loss.item() == pytest.approx(want_loss)
    assert clipfrac.item() == pytest.approx(want_clipfrac)
    assert approx_kl.item() == pytest.approx(want_kl)


def test_policy_loss_at_ratio_one_is_the_unclipped_surrogate():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    log_prob = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.1, -3.0]])
    adv = torch.tensor([[1.0, -2.0, 100.0], [0.5, 3.0, -1.5]])
    pg_loss, clipfrac, approx_kl = compute_policy_loss(log_prob, log_prob, adv, mask)
    assert pg_loss.item() == pytest.approx(-(1.0 - 2.0 + 0.5 + 3.0 - 1.5) / 5)
    assert clipfrac.item() == 0.0 and approx_kl.item() == 0.0


def test_clipfrac_counts_exactly_the_clipped_tokens():
    # ratios 1.5, 1.5, 0.5, 0.5, 1.1 with advantages +, -, +, -, +: clipping is active only where the
    # ratio moved past the clip in the advantage's direction (tokens 0 and 3); token 5 is padding.
    ratio = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.1, 3.0]])
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    old = torch.zeros_like(ratio)
    pg_loss, clipfrac, _ = compute_policy_loss(old, ratio.log(), adv, mask, clip_ratio=0.2)
    assert clipfrac.item() == pytest.approx(2 / 5)
    assert pg_loss.item() == pytest.approx((-1.2 + 1.5 - 0.5 + 0.8 - 1.1) / 5)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_policy_loss_ignores_padding_and_gradients_stay_finite(mode):
    gen, lengths, mask = right_padded(7)
    old, adv = rand(gen, mask, garbage=0.0), rand(gen, mask, garbage=0.0)
    new = (old + 0.1).requires_grad_()
    want = compute_policy_loss(old, new, adv, mask, loss_agg_mode=mode, max_response_length=20)
    (old_g, mask_g), (adv_g, _) = with_garbage(old, mask, fill=float("nan")), with_garbage(adv, mask)
    new_g = with_garbage(new.detach(), mask, fill=float("inf"))[0].requires_grad_()
    got = compute_policy_loss(old_g, new_g, adv_g, mask_g, loss_agg_mode=mode, max_response_length=20)
    for a, b in zip(got, want, strict=True):
        assert a.item() == pytest.approx(b.item())
    got[0].backward()
    assert torch.all(torch.isfinite(new_g.grad)) and torch.all(new_g.grad[~mask_g] == 0)


def test_seq_mean_token_sum_norm_divides_by_the_given_constant():
    loss_mat, mask = torch.ones(2, 4), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert agg_loss(loss_mat, mask, "seq-mean-token-sum").item() == 3.0
    assert agg_loss(loss_mat, mask, "seq-mean-token-sum-norm", max_response_length=6).item() == 0.5
    with pytest.raises(ValueError, match="loss_agg_mode"):
        agg_loss(loss_mat, mask, "token-sum")


# ---- value loss ----


def test_value_loss_clipping_by_hand():
    values = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    vpreds = torch.tensor([[1.5, 1.5, 1.1, 9.0]])
    returns = torch.tensor([[2.0, 0.0, 3.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    vf_loss, vf_clipfrac = compute_value_loss(vpreds, values, returns, mask, cliprange_value=0.2)
    # token 0: clipped 1.2 -> (0.8^2=0.64) > 0.25: clipped; token 1: 1.2 -> 1.44 < 2.25; token 2: unclipped.
    assert vf_loss.item() == pytest.approx(0.5 * (0.64 + 2.25 + 1.9**2) / 3)
    assert vf_clipfrac.item() == pytest.approx(1 / 3)
    unclipped, _ = compute_value_loss(vpreds, values, returns, mask, cliprange_value=None)
    assert unclipped.item() == pytest.approx(0.5 * (0.25 + 2.25 + 1.9**2) / 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_value_loss_matches_a_loop(seed):
    gen, lengths, mask = right_padded(seed)
    values, returns = rand(gen, mask), rand(gen, mask)
    vpreds = values + 0.3 * rand(gen, mask)
    vf_loss, vf_clipfrac = compute_value_loss(vpreds, values, returns, mask, cliprange_value=0.2)
    losses, clipped = [], 0
    for p, v, r, n in zip(vpreds.tolist(), values.tolist(), returns.tolist(), lengths, strict=True):
        for t in range(n):
            clipped_pred = v[t] + min(max(p[t] - v[t], -0.2), 0.2)
            unclipped_err, clipped_err = (p[t] - r[t]) ** 2, (clipped_pred - r[t]) ** 2
            losses.append(0.5 * max(unclipped_err, clipped_err))
            clipped += clipped_err > unclipped_err
    assert vf_loss.item() == pytest.approx(sum(losses) / len(losses))
    assert vf_clipfrac.item() == pytest.approx(clipped / len(losses))


# ---- KL, entropy, explained variance ----


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_estimators_match_their_formulas_and_k3_is_never_negative(seed):
    gen = torch.Generator().manual_seed(seed)
    log_prob, ref = -torch.rand(5, 8, generator=gen) * 5, -torch.rand(5, 8, generator=gen) * 5
    got = {kind: kl_penalty(log_prob, ref, kind).flatten().tolist() for kind in ("k1", "abs", "mse", "k3")}
    assert min(got["k3"]) >= 0
    pairs = list(zip(log_prob.flatten().tolist(), ref.flatten().tolist(), strict=True))
    assert got["k1"] == pytest.approx([lp - rp for lp, rp in pairs], abs=1e-6)
    assert got["abs"] == pytest.approx([abs(lp - rp) for lp, rp in pairs], abs=1e-6)
    assert got["mse"] == pytest.approx([0.5 * (lp - rp) ** 2 for lp, rp in pairs], abs=1e-5)
    assert got["k3"] == pytest.approx(
        [min(math.exp(rp - lp) - (rp - lp) - 1, K3_MAX) for lp, rp in pairs], rel=1e-5, abs=1e-6
    )


def test_k3_is_capped_so_one_unlikely_token_cannot_take_a_minibatch_update():
    # one token the reference finds e^15 times likelier than the policy does, beside 99 agreeing ones
    log_prob = torch.zeros(1, 100, requires_grad=True)
    ref = torch.zeros(1, 100)
    ref[0, 0] = 15.0
    kl = kl_penalty(log_prob, ref, "k3")
    assert kl[0, 0].item() == K3_MAX
    assert kl[0, 1:].abs().max().item() == 0
    kl.mean().backward()
    assert log_prob.grad.abs().max().item() == 0  # above the cap: a constant, no gradient
    # just under the cap the estimate and its gradient are the formula's
    under = torch.tensor([[-2.0]], requires_grad=True)
    value = kl_penalty(under, torch.zeros(1, 1), "k3")
    assert value.item() == pytest.approx(math.exp(2.0) - 2.0 - 1.0, rel=1e-6) and value.item() < K3_MAX
    value.sum().backward()
    assert under.grad.item() == pytest.approx(1.0 - math.exp(2.0), rel=1e-5)  # d/dlogp of e^(r-lp)-(r-lp)-1


@pytest.mark.parametrize("kind", ["k1", "k3", "abs", "mse"])
def test_kl_is_zero_when_the_policies_agree(kind):
    log_prob = -torch.rand(3, 4) * 3
    assert torch.all(kl_penalty(log_prob, log_prob.clone(), kind) == 0)


def test_unknown_kl_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k4")


def test_entropy_of_uniform_logits_is_log_vocab_size():
    entropy = entropy_from_logits(torch.full((2, 3, 50), 7.0))
    assert entropy.shape == (2, 3)
    assert torch.allclose(entropy, torch.full((2, 3), math.log(50)))


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_matches_a_loop_and_is_stable_for_large_logits(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 11, generator=gen, dtype=torch.float64) * 3
    entropy = entropy_from_logits(logits)
    for b in range(2):
        for t in range(3):
            z = logits[b, t].tolist()
            top = max(z)
            norm = sum(math.exp(v - top) for v in z)
            probs = [math.exp(v - top) / norm for v in z]
            assert entropy[b, t].item() == pytest.approx(-sum(p * math.log(p) for p in probs))
    assert torch.allclose(entropy_from_logits((logits + 1e4).float()), entropy.float(), atol=1e-2)


def test_explained_variance():
    gen, _, mask = right_padded(0)
    returns = rand(gen, mask)
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.zeros_like(returns), returns, mask) == pytest.approx(0.0)
    assert math.isnan(explained_variance(returns, torch.ones_like(returns), mask))


# ---- the estimator table ----


def estimator_inputs(seed: int):
    """(scores (bs,), mask, index (bs,), values, kl) with garbage in the padding; groups of 3."""
    gen, _, mask = right_padded(seed)
    scores = torch.randn(mask.shape[0], generator=gen, dtype=torch.float64)
    index = torch.arange(mask.shape[0]) // 3
    return scores, mask, index, rand(gen, mask), rand(gen, mask).abs()


@pytest.mark.parametrize("whiten", [True, False])
def test_gae_estimator_is_kl_penalised_terminal_rewards_then_gae_then_whitening(whiten):
    scores, mask, index, values, kl = estimator_inputs(0)
    settings = SimpleNamespace(gamma=0.9, lam=0.8, whiten_advantages=whiten, grpo_norm_by_std=True)
    advantages, returns = ESTIMATORS["gae"].compute(scores, mask, index, values, kl, 0.3, settings)
    token_level_rewards = terminal_rewards(scores, mask, kl, 0.3)
    want_adv, want_ret = compute_gae_advantage_return(token_level_rewards, values, mask, 0.9, 0.8)
    torch.testing.assert_close(returns, want_ret)
    torch.testing.assert_close(advantages, masked_whiten(want_adv, mask) if whiten else want_adv)


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_estimator_is_the_group_baseline_of_the_scores_alone(norm_by_std):
    scores, mask, index, values, kl = estimator_inputs(1)
    mask[4] = False  # a program with no counted token: out of its group's statistics
    settings = SimpleNamespace(gamma=0.9, lam=0.8, whiten_advantages=True, grpo_norm_by_std=norm_by_std)
    advantages, returns = ESTIMATORS["grpo"].compute(scores, mask, index, values, kl, 0.3, settings)
    counted = mask.any(dim=-1)
    want = compute_grpo_outcome_advantage(scores, index, mask, norm_by_std=norm_by_std, sample_mask=counted)
    torch.testing.assert_close(advantages, want)
    assert torch.all(returns == 0)
    other, _ = ESTIMATORS["grpo"].compute(scores, mask, index, values * 7, kl * 7, 5.0, settings)
    assert torch.equal(other, advantages)  # neither the critic nor the KL reaches the advantages
    # the program with no token is out: its group (rows 3, 4, 5) is rows 3 and 5 alone
    alone = compute_grpo_outcome_advantage(scores[[3, 5]], [0, 0], mask[[3, 5]], norm_by_std=norm_by_std)
    torch.testing.assert_close(advantages[[3, 5]], alone)
    assert torch.all(advantages[4] == 0)


def test_the_estimator_table_says_what_each_estimator_implies():
    gae, grpo = ESTIMATORS["gae"], ESTIMATORS["grpo"]
    assert (gae.uses_critic, gae.kl_in_loss, gae.min_group) == (True, False, 1)
    assert (grpo.uses_critic, grpo.kl_in_loss, grpo.min_group) == (False, True, 2)
    for name, estimator in ESTIMATORS.items():
        assert estimator.name == name and estimator.default_kl_kind in KL_KINDS
        assert not estimator.kl_in_loss or estimator.default_kl_kind in KL_LOSS_KINDS
    assert set(KL_LOSS_KINDS) <= set(KL_KINDS)


# ---- KL controllers ----


def test_adaptive_kl_coefficient_grows_above_target_and_shrinks_below():
    controller = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10_000)
    controller.update(current_kl=12.0, n_steps=256)  # error clipped to +0.2
    assert controller.value == pytest.approx(0.1 * (1 + 0.2 * 256 / 10_000))
    before = controller.value
    controller.update(current_kl=5.4, n_steps=256)  # error -0.1
    assert controller.value == pytest.approx(before * (1 - 0.1 * 256 / 10_000))
    fixed = FixedKLController(0.05)
    fixed.update(current_kl=100.0, n_steps=256)
    assert fixed.value == 0.05


def test_adaptive_kl_with_a_horizon_sized_to_the_run_moves_the_coefficient_over_the_run():
    from configs.ppo import PPOConfig

    config = PPOConfig(iterations=20)  # the main job's length; horizon None -> 2 iterations
    assert config.kl_horizon == 2.0 and PPOConfig(iterations=5).kl_horizon == 1.0
    above = AdaptiveKLController(init_kl_coef=0.05, target=6.0, horizon=config.kl_horizon)
    below = AdaptiveKLController(init_kl_coef=0.05, target=6.0, horizon=config.kl_horizon)
    for _ in range(config.iterations):
        above.update(current_kl=12.0, n_steps=1)
        below.update(current_kl=0.5, n_steps=1)
    assert above.value == pytest.approx(0.05 * 1.1**20) and above.value > 6 * 0.05
    assert below.value == pytest.approx(0.05 * 0.9**20) and below.value < 0.05 / 8
