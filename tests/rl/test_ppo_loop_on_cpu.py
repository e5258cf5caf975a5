"""rl.ppo_loop's wiring, checked against independent computations on a tiny from-config policy.

Each test pins one property the suite used to miss (the mutant it kills in brackets): the KL is
the rollout policy against the reference [``kl_penalty(ref, old)``]; GAE returns carry this
iteration's KL coefficient [coefficient 0 in the advantages]; GAE advantages are whitened
[whitening dropped]; the ratio uses the rollout log-probs [``old = log_prob.detach()``]; a tied
GRPO group gets exactly 0 and only the KL term moves the policy [KL in the reward, or its
coefficient 0]; programs the render pool failed on are out of the update; rendering overlaps
sampling without moving a score to another program or changing the batch.

The live policy is perturbed after ``freeze_reference`` so that its KL to the reference is not 0.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
import types

import numpy as np
import pytest
import torch

from configs.loader import load
from configs.ppo import PPOConfig
from reward.score import RewardBreakdown
from rl import core_algos as algos
from rl import ppo_loop
from rl.ppo_loop import _entropy, build_batch, iterate, minibatch_loss, score_samples, update
from rl.ppo_rollout import Scoring, chunk_bounds, sample_and_submit
from rl.ppo_run import build_learner
from tests.conftest import needs_openscad
from tests.rl.conftest import build_tiny_policy
from tests.rl.test_ppo_on_cpu import toy_rows

K = 4
BASE = {"batch_size": 2, "k": K, "minibatch_size": 8, "ppo_epochs": 1, "learning_rate": 1e-2,
        "temperature": 0.7, "length_guard": False, "adaptive_kl": False, "kl_coef": 0.5,
        "checkpoint": "unused", "threads": 1}


class FixedReward:
    """Scores ``totals[i]`` for the i-th program; indices in ``infrastructure`` are pool failures."""

    invalid_penalty = -1.0

    def __init__(self, totals, infrastructure=()):
        self.totals, self.infrastructure = list(totals), set(infrastructure)

    def score(self, codes, rows, views):
        return [RewardBreakdown(total=t, ssim=0.0, chamfer=0.0, iou=0.0, valid=float(t > -1),
                                status="ok" if t > -1 else "syntax_error", seconds=0.0,
                                infrastructure=i in self.infrastructure)
                for i, t in enumerate(self.totals[: len(codes)])]


@pytest.fixture(scope="module")
def base_policy():
    return build_tiny_policy(seed=0)


@pytest.fixture
def policy(base_policy):
    """A fresh copy whose live weights are moved away from its frozen reference."""
    policy = copy.deepcopy(base_policy)
    policy.freeze_reference()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return policy.eval()


def config_of(**overrides) -> PPOConfig:
    return load(PPOConfig, None, [f"{k}={v}" for k, v in {**BASE, **overrides}.items()])


def sampled_batch(policy, config, rewarder, seed=0):
    """(learner, batch) of one rollout of ``config.batch_size`` toy images."""
    torch.manual_seed(seed)
    rows = toy_rows()[: config.batch_size]
    learner = build_learner(config, policy, rewarder)
    rollout = policy.sample([r["image"] for r in rows], n=config.k, temperature=config.temperature)
    breakdowns, _, _ = score_samples(learner, rollout, rows, config.k, 1, None)
    return learner, build_batch(learner, rows, rollout, breakdowns)


def independent_logprobs(policy, batch, temperature):
    """(N, T) log-probs of the batch's tokens straight from the logits, float64, 0 off mask."""
    with torch.no_grad():
        logits = policy(batch.prompts, batch.tokens, batch.mask).logits.double() / temperature
    logits[..., policy.suppressed_ids] = -torch.inf
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, batch.tokens.unsqueeze(-1)).squeeze(-1)
    return logprobs.masked_fill(~batch.mask, 0.0)


def test_kl_is_the_rollout_policy_against_the_reference_from_an_independent_pass(policy):
    config = config_of(kl_kind="k1")
    _, batch = sampled_batch(policy, config, FixedReward([0.0] * 8))
    old = independent_logprobs(policy, batch, config.temperature)
    with policy.reference():
        ref = independent_logprobs(policy, batch, config.temperature)
    torch.testing.assert_close(batch.old_log_prob.double(), old, atol=1e-4, rtol=0)
    torch.testing.assert_close(batch.ref_log_prob.double(), ref, atol=1e-4, rtol=0)
    want = (old - ref).masked_fill(~batch.mask, 0.0)
    assert want.abs().sum(dim=-1).min() > 1e-2  # the perturbation makes every program's KL visible
    torch.testing.assert_close(batch.kl.double(), want, atol=1e-4, rtol=0)


def test_gae_returns_carry_the_kl_penalty_at_this_iterations_coefficient(policy):
    config = config_of(estimator="gae", whiten_advantages=False, gamma=1.0, lam=1.0, kl_coef=0.5)
    scores = [0.1 * i for i in range(8)]
    _, batch = sampled_batch(policy, config, FixedReward(scores))
    assert batch.kl_coef == 0.5
    # gamma = lam = 1: the return at the first token is the score minus 0.5 times the program's KL.
    want = torch.tensor(scores) - 0.5 * batch.kl.sum(dim=-1)
    assert (0.5 * batch.kl.sum(dim=-1)).abs().max() > 1e-2
    torch.testing.assert_close(batch.returns[:, 0], want, atol=1e-5, rtol=0)
    on_mask = (batch.returns - batch.values) * batch.mask
    torch.testing.assert_close(batch.advantages, on_mask, atol=1e-5, rtol=0)


def test_gae_advantages_are_whitened_over_the_loss_mask(policy):
    config = config_of(estimator="gae", whiten_advantages=True)
    _, batch = sampled_batch(policy, config, FixedReward([0.3, -1.0, 0.9, 0.2, -1.0, 0.5, 0.7, 0.1]))
    assert algos.masked_mean(batch.advantages, batch.loss_mask).item() == pytest.approx(0.0, abs=1e-5)
    assert algos.masked_var(batch.advantages, batch.loss_mask).item() == pytest.approx(1.0, abs=1e-4)


def test_ratio_compares_the_current_policy_with_the_rollout_log_probs(policy):
    config = config_of(estimator="grpo", kl_coef=0.0)
    _, batch = sampled_batch(policy, config, FixedReward([0.1 * i for i in range(8)]))
    with torch.no_grad():  # the policy moves on after the rollout, as it does after a minibatch step
        for p in policy.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    index = torch.arange(batch.tokens.shape[0])
    with torch.no_grad():
        _, parts = minibatch_loss(policy, config, batch, index, 16)
    log_ratio = independent_logprobs(policy, batch, config.temperature) - batch.old_log_prob.double()
    want = algos.masked_mean(log_ratio.exp() - 1 - log_ratio, batch.mask).item()
    assert want > 1e-3
    assert parts["losses/approx_kl"] == pytest.approx(want, rel=1e-3)
    assert parts["losses/clipfrac"] > 0


def test_a_tied_group_gets_zero_advantage_and_only_the_kl_loss_moves_the_policy(policy):
    config = config_of(estimator="grpo", kl_coef=1.0, ppo_epochs=3)  # grpo's default: k3, in the loss
    assert config.kl_in_loss and config.kl_estimator == "k3"
    learner, batch = sampled_batch(policy, config, FixedReward([-1.0] * 8))  # all 8 invalid: tied
    assert batch.kl_coef == 1.0 and batch.kl.sum(dim=-1).std() > 1e-3  # the KL differs in the group
    assert torch.all(batch.advantages == 0)
    before = [p.detach().clone() for p in policy.parameters()]
    batch.kl_coef = 0.0
    update(learner, batch, 16)  # no advantage and no KL term: nothing moves the policy
    assert all(torch.equal(a, p) for a, p in zip(before, policy.parameters(), strict=True))

    batch.kl_coef = 1.0
    kl_before = batch.kl.sum() / batch.mask.sum()
    stats = update(learner, batch, 16)
    assert stats["losses/kl_loss"] > 0 and stats["losses/pg_loss"] == 0.0
    old = independent_logprobs(policy, batch, config.temperature)
    with policy.reference():
        ref = independent_logprobs(policy, batch, config.temperature)
    kl_after = algos.masked_mean(algos.kl_penalty(old, ref, "k3"), batch.mask)
    assert kl_after < 0.9 * kl_before  # pulled towards the reference


@pytest.mark.parametrize("estimator", ["grpo", "gae"])
def test_infrastructure_failures_are_out_of_the_update(policy, estimator):
    config = config_of(estimator=estimator)
    totals = [0.9, 0.1, -1.0, 0.5, -1.0, -1.0, -1.0, -1.0]
    _, batch = sampled_batch(policy, config, FixedReward(totals, infrastructure={2, 4, 5}))
    counted = torch.tensor([i not in {2, 4, 5} for i in range(8)])
    assert torch.equal(batch.loss_mask, batch.mask & counted.unsqueeze(-1))
    assert torch.all(batch.advantages[~counted] == 0) and torch.all(batch.returns[~counted] == 0)
    if estimator == "grpo":
        # group 0 counts 0.9, 0.1, 0.5; group 1 counts two tied -1.0 (the pool failures left out)
        want = algos.compute_grpo_outcome_advantage(torch.tensor([0.9, 0.1, 0.5]), [0, 0, 0],
                                                    torch.ones(3, 1, dtype=torch.bool))[:, 0]
        torch.testing.assert_close(batch.advantages[[0, 1, 3], 0], want)
        assert torch.all(batch.advantages[4:] == 0)
    # whatever sits in a failed program's rows never reaches the loss
    index = torch.arange(8)
    with torch.no_grad():
        loss, _ = minibatch_loss(policy, config, batch, index, 16)
        for name in ("advantages", "returns", "values", "old_log_prob", "ref_log_prob"):
            getattr(batch, name)[~counted] = 1e3
        garbage, _ = minibatch_loss(policy, config, batch, index, 16)
    assert garbage.item() == pytest.approx(loss.item(), rel=1e-6, abs=1e-7)


def test_iteration_metrics_count_infrastructure_failures_apart(policy):
    config = config_of(estimator="grpo")
    totals = [0.5, -1.0, -1.0, 0.25, -1.0, -1.0, -1.0, -1.0]
    learner = build_learner(config, policy, FixedReward(totals, infrastructure={4, 5, 6, 7}))
    metrics, _ = iterate(learner, toy_rows()[:2], iteration=1)
    assert metrics["reward/infra_failed_frac"] == 0.5
    assert metrics["reward/total/mean"] == pytest.approx(np.mean([0.5, -1.0, -1.0, 0.25]))
    assert metrics["reward/invalid_frac"] == 0.5
    assert metrics["kl/coef"] == 0.5 and metrics["losses/kl_loss"] > 0


class TextReward:
    """Scores a program by its text (the same text always scores the same); remembers every call."""

    invalid_penalty = -1.0

    def __init__(self):
        self.calls: list[list[str]] = []

    @staticmethod
    def total(code: str) -> float:
        return (sum(map(ord, code)) % 97) / 97

    def score(self, codes, rows, views):
        self.calls.append(list(codes))
        return [RewardBreakdown(total=self.total(c), ssim=0.0, chamfer=0.0, iou=0.0, valid=1.0, status="ok",
                                seconds=0.0) for c in codes]


def test_a_greedy_baseline_decodes_and_scores_each_images_greedy_program(policy):
    config = config_of(estimator="grpo", grpo_baseline="greedy")
    rows, rewarder = toy_rows()[:2], TextReward()
    greedy_texts = policy.sample(rows, n=1, greedy=True).texts
    metrics, _ = iterate(build_learner(config, policy, rewarder), rows, iteration=1)
    greedy_call, samples = sorted(rewarder.calls, key=len)  # one greedy program per image, and k each
    assert greedy_call == greedy_texts and len(samples) == config.batch_size * K
    score = TextReward.total
    assert metrics["reward/greedy/mean"] == pytest.approx(np.mean([score(t) for t in greedy_texts]))
    above = [score(t) > score(greedy_texts[i // K]) for i, t in enumerate(samples)]
    assert metrics["reward/above_greedy_frac"] == pytest.approx(np.mean(above))
    plain, _ = iterate(build_learner(config_of(estimator="grpo"), policy, TextReward()), rows, iteration=1)
    assert "reward/greedy/mean" not in plain


def test_the_batchs_advantages_are_measured_against_the_greedy_scores(policy):
    config = config_of(estimator="grpo", grpo_baseline="greedy")
    rows = toy_rows()[: config.batch_size]
    totals = [0.1, 0.5, 0.3, 0.9, 0.2, 0.2, 0.6, 0.4]
    learner = build_learner(config, policy, FixedReward(totals))
    rollout = policy.sample(rows, n=K, temperature=config.temperature)
    breakdowns, _, _ = score_samples(learner, rollout, rows, K, 1, None)
    greedy = FixedReward([0.5, 0.0]).score(["g0", "g1"], rows, [None, None])
    batch = ppo_loop.finish_batch(learner, rows, ppo_loop.rollout_passes(learner, rows, rollout), breakdowns,
                                  greedy)
    first = torch.tensor([float(batch.advantages[i][batch.mask[i]][0]) for i in range(8)])
    std = [np.std(totals[:4], ddof=1), np.std(totals[4:], ddof=1)]
    want = [(t - [0.5, 0.0][i // K]) / (std[i // K] + 1e-6) for i, t in enumerate(totals)]
    assert first.tolist() == pytest.approx(want, rel=1e-4)
    assert (first[:4] > 0).tolist() == [False, False, False, True]  # only 0.9 beats the greedy 0.5


@pytest.mark.parametrize("estimator, critic, kl_in_loss", [("gae", True, False), ("grpo", False, True)])
def test_gae_trains_a_critic_and_grpo_puts_the_kl_in_the_loss_instead(policy, estimator, critic, kl_in_loss):
    config = config_of(estimator=estimator)
    spec = algos.ESTIMATORS[estimator]
    assert (spec.uses_critic, spec.kl_in_loss) == (critic, kl_in_loss)
    _, batch = sampled_batch(policy, config, FixedReward([0.1 * i for i in range(8)]))
    with torch.no_grad():
        _, parts = minibatch_loss(policy, config, batch, torch.arange(8), 16)
    assert (parts["losses/v_loss"] > 0) == critic and (parts["losses/kl_loss"] > 0) == kl_in_loss
    assert math.isnan(batch.explained_var) != critic and torch.any(batch.returns != 0) == critic


def test_the_loop_follows_the_table_not_the_estimators_name(policy, monkeypatch):
    """gae re-registered without a critic and with the KL in the loss: the loop must follow."""
    gae = algos.ESTIMATORS["gae"]
    changed = dataclasses.replace(gae, uses_critic=False, kl_in_loss=True, default_kl_kind="k3")
    monkeypatch.setitem(algos.ESTIMATORS, "gae", changed)
    config = config_of(estimator="gae")
    assert config.kl_in_loss and config.kl_estimator == "k3"
    _, batch = sampled_batch(policy, config, FixedReward([0.1 * i for i in range(8)]))
    with torch.no_grad():
        _, parts = minibatch_loss(policy, config, batch, torch.arange(8), 16)
    assert parts["losses/v_loss"] == 0 and parts["losses/kl_loss"] > 0 and math.isnan(batch.explained_var)


def test_the_entropy_bonus_leaves_suppressed_ids_out_of_the_distribution():
    logits = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(0)) * 3
    suppressed, kept = [0, 7], [i for i in range(10) if i not in (0, 7)]
    got = _entropy(logits, 0.7, suppressed)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, algos.entropy_from_logits(logits[..., kept] / 0.7))
    assert (_entropy(logits, 0.7, []) - got).abs().min() > 0  # the suppressed ids did count before


def toy_score(code: str, row_id: str) -> float:
    """A deterministic reward of a program and its target (a score on the wrong program shows)."""
    return (len(code) % 7) / 7 + (0.5 if row_id == "t1" else 0.0)


class RecordingReward:
    """``toy_score`` with ``submit``: each job is scored on a thread of its own after a short delay
    (a render pool in miniature); ``events`` logs when jobs are submitted and waited for."""

    invalid_penalty = -1.0

    def __init__(self, events: list):
        self.events = events

    def score(self, codes, rows, views):
        return self.submit(codes, rows, views).result()

    def submit(self, codes, rows, views):
        self.events.append(("submit", len(codes)))
        job = types.SimpleNamespace(finished_at=None, breakdowns=None)

        def work():
            time.sleep(0.05)
            job.breakdowns = [RewardBreakdown(total=toy_score(c, r["id"]), ssim=0.0, chamfer=0.0, iou=0.0,
                                              valid=1.0, status="ok", seconds=0.0)
                              for c, r in zip(codes, rows, strict=True)]
            job.finished_at = time.perf_counter()

        thread = threading.Thread(target=work)
        thread.start()

        def result():
            self.events.append(("result", len(codes)))
            thread.join()
            return job.breakdowns

        job.result = result
        return job


def test_iterate_sends_each_chunk_to_the_rewarder_before_sampling_the_next(policy, monkeypatch, tmp_path):
    events = []
    sample, passes = policy.sample, ppo_loop.rollout_passes
    monkeypatch.setattr(policy, "sample", lambda images, **kw: events.append(("sample", len(images)))
                        or sample(images, **kw))
    monkeypatch.setattr(ppo_loop, "rollout_passes", lambda *a: events.append(("passes",)) or passes(*a))
    config = config_of(estimator="grpo", rollout_chunks=2, stream_renders=False)
    learner = build_learner(config, policy, RecordingReward(events))
    metrics, records = iterate(learner, toy_rows()[:2], iteration=1, records_dir=str(tmp_path))
    # chunk 1 is with the rewarder while chunk 2 is sampled; scores are awaited after the log-prob passes
    assert events == [("sample", 1), ("submit", K), ("sample", 1), ("submit", K), ("passes",),
                      ("result", K), ("result", K)]
    assert [r.target_id for r in records] == ["t0"] * K + ["t1"] * K
    assert [r.total for r in records] == [toy_score(r.code, r.target_id) for r in records]
    assert len({r.id for r in records}) == 2 * K


def test_the_metrics_line_has_the_learners_wait_on_renders(policy):
    learner = build_learner(config_of(estimator="grpo", rollout_chunks=2), policy, RecordingReward([]))
    metrics, _ = iterate(learner, toy_rows()[:2], iteration=1)
    iteration_s = 2 * K / metrics["charts/samples_per_s"]
    phases = metrics["timing_s/generate"] + metrics["timing_s/render"] + metrics["timing_s/update"]
    assert phases == pytest.approx(iteration_s, rel=1e-6)  # the three phases split the iteration
    assert metrics["timing_s/learner_idle_frac"] == pytest.approx(metrics["timing_s/render"] / iteration_s)
    assert 0 < metrics["timing_s/render_span"] < iteration_s  # the pool worked, and began mid-iteration


def test_a_rollout_sampled_in_chunks_is_the_chunks_samples_in_order_with_matching_log_probs(policy):
    config = config_of(estimator="grpo", rollout_chunks=2, batch_size=3)
    rows = toy_rows()[:3]
    learner = build_learner(config, policy, FixedReward([0.1 * i for i in range(3 * K)]))
    torch.manual_seed(5)
    scoring = Scoring(learner.rewarder, policy.eos_ids, False, rows, K)
    rollout, _ = sample_and_submit(policy, config, rows, scoring)
    torch.manual_seed(5)
    texts = [text for start, stop in chunk_bounds(3, 2) for text in
             policy.sample([r["image"] for r in rows[start:stop]], n=K, temperature=config.temperature).texts]
    assert rollout.texts == texts
    batch = build_batch(learner, rows, rollout, scoring.collect())
    assert torch.equal(batch.mask, rollout.mask) and batch.tokens.shape[0] == 3 * K
    old = independent_logprobs(policy, batch, config.temperature)
    torch.testing.assert_close(batch.old_log_prob.double(), old, atol=1e-4, rtol=0)


@pytest.mark.parametrize("images, chunks", [(4, 2), (5, 2), (3, 8), (16, 3), (1, 1)])
def test_chunks_cover_every_image_once_in_order_and_evenly(images, chunks):
    bounds = chunk_bounds(images, chunks)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(images))
    sizes = [stop - start for start, stop in bounds]
    assert len(bounds) == min(images, chunks) and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@needs_openscad
def test_chunks_scored_on_a_ray_pool_get_the_scores_of_one_sequential_call():
    from renderer.openscad import run
    from renderer.pool import RenderPool
    from reward.score import Scorer
    from rl.ppo_loop import PoolRewarder

    eos, rows = 2, [{"id": "a"}, {"id": "b"}]
    targets = {"a": run("cube(10, center = true);"), "b": run("cylinder(r = 4, h = 9, $fn = 24);")}
    codes = ["cube(10, center = true);", "cube(4);", "cylinder(r = 4, h = 9, $fn = 24);", "cube(", "cube(6);"]
    ends = [[5, eos], [5, eos], [5, eos], [5, eos], [5, 6]]  # the last program never reached eos
    rollout = types.SimpleNamespace(tokens=torch.tensor(ends), texts=codes)
    chunks = [types.SimpleNamespace(tokens=torch.tensor(ends[:2]), texts=codes[:2]),
              types.SimpleNamespace(tokens=torch.tensor(ends[2:]), texts=codes[2:])]

    def scoring_on(pool):
        for row_id, mesh in targets.items():
            pool.add_target(row_id, mesh.vertices, mesh.faces)
        return Scoring(PoolRewarder(pool, None, -1.0), [eos], True, rows, 2)

    sequential = scoring_on(RenderPool(Scorer(threads=1), workers=0))
    sequential.submit(rollout)
    want = sequential.collect()
    with RenderPool(Scorer(threads=1), workers=2) as pool:
        overlapped = scoring_on(pool)
        for chunk in chunks:
            overlapped.submit(chunk)
        got = overlapped.collect()
    assert [b.status for b in got] == [b.status for b in want]  # totals to float rounding (actors vs here)
    assert [b.total for b in got] == pytest.approx([b.total for b in want], abs=1e-6)
    assert [b.status for b in got] == ["ok", "ok", "ok", "syntax_error", "truncated"]
    assert got[0].total > 0.99 and got[1].total < got[0].total and got[2].total > 0.99  # each on its target
    assert overlapped.truncated == sequential.truncated == [False, False, False, False, True]
