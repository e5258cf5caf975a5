"""PPO hands each program to the render pool the moment it ends in eos (``stream_renders``).

A tiny from-config policy with its eos logit raised writes programs of many lengths, some hitting
the token budget; the rewarder is :class:`tests.rl.test_ppo_loop_on_cpu.RecordingReward` (each
job scored on its own thread). Checked: programs reach the rewarder while ``generate`` still
runs, each exactly once, with the text the finished rollout holds; a score never lands on
another program; the batch, the scores and the update's inputs are those of the run that
sends the whole batch after sampling.
"""

from __future__ import annotations

import copy

import pytest
import torch

from rl.ppo_loop import iterate
from rl.ppo_rollout import Scoring, sample_and_submit
from rl.ppo_run import build_learner
from tests.rl.test_ppo_loop_on_cpu import K, RecordingReward, config_of, toy_score
from tests.rl.test_ppo_on_cpu import toy_rows

EOS_BOOST = 1.0
"""Added to the eos logit: at temperature 0.7 about half the programs end before 40 tokens."""


@pytest.fixture
def stopping_policy(base_policy):
    policy = copy.deepcopy(base_policy)
    head = policy.model.get_output_embeddings()
    bias = torch.zeros(head.weight.shape[0])
    bias[policy.eos_ids[0]] = EOS_BOOST
    head.bias = torch.nn.Parameter(bias)
    policy.config.max_new_tokens = 40
    policy.freeze_reference()
    return policy.eval()


@pytest.fixture(scope="module")
def base_policy():
    from tests.rl.conftest import build_tiny_policy
    return build_tiny_policy(seed=0)


def sampled(policy, config, rows, rewarder, seed=3):
    torch.manual_seed(seed)
    scoring = Scoring(rewarder, policy.eos_ids, config.length_guard, rows, config.k)
    rollout, _ = sample_and_submit(policy, config, rows, scoring)
    return rollout, scoring, scoring.collect()


def test_programs_reach_the_rewarder_while_the_batch_is_sampled_each_once(stopping_policy, monkeypatch):
    events, rows = [], toy_rows()[:2]
    sample = stopping_policy.sample
    monkeypatch.setattr(stopping_policy, "sample", lambda images, **kw: (
        events.append(("sample",)), sample(images, **kw), events.append(("sampled",)))[1])
    config = config_of(estimator="grpo", rollout_chunks=1, length_guard=True)
    rollout, scoring, breakdowns = sampled(stopping_policy, config, rows, RecordingReward(events))
    ended = [bool((row == stopping_policy.eos_ids[0]).any()) for row in rollout.tokens]
    assert 0 < sum(ended) < len(ended)  # some programs end in eos, some hit the budget
    during = events[events.index(("sample",)) + 1: events.index(("sampled",))]
    after = events[events.index(("sampled",)) + 1:]
    assert during and all(name == "submit" for name, *_ in during)
    assert sum(n for name, n in during) == sum(ended)  # every eos-ended program, while sampling
    assert not any(name == "submit" for name, *_ in after)  # the rest are guarded, unrendered
    assert sorted(scoring.streamed) == [i for i, end in enumerate(ended) if end]
    assert all(scoring.streamed[i] == rollout.texts[i] for i in scoring.streamed)
    for i, breakdown in enumerate(breakdowns):
        expected = toy_score(rollout.texts[i], rows[i // K]["id"]) if ended[i] else -1.0
        assert breakdown.total == pytest.approx(expected)
        assert (breakdown.status == "truncated") == (not ended[i])


@pytest.mark.parametrize("length_guard", [True, False])
def test_streaming_changes_when_programs_are_sent_not_the_batch(stopping_policy, length_guard):
    rows = toy_rows()[:2]
    runs = {}
    for stream in (True, False):
        config = config_of(estimator="grpo", rollout_chunks=2, length_guard=length_guard,
                           stream_renders=stream)
        events = []
        rollout, scoring, breakdowns = sampled(stopping_policy, config, rows, RecordingReward(events))
        runs[stream] = rollout, [b.total for b in breakdowns], events, scoring
    (r1, totals1, events1, s1), (r0, totals0, events0, _) = runs[True], runs[False]
    assert r1.texts == r0.texts and torch.equal(r1.tokens, r0.tokens) and torch.equal(r1.mask, r0.mask)
    assert totals1 == totals0
    sent1, sent0 = ([n for name, n in events if name == "submit"] for events in (events1, events0))
    assert len(sent0) == 2 and len(sent1) > 2  # one job per chunk, against one per finishing step
    assert sum(sent1) == sum(sent0)  # no program scored twice
    if not length_guard:  # a program cut at the budget is rendered too, sent once its chunk is done
        assert sum(sent1) == 2 * K and len(s1.streamed) < 2 * K


def test_an_iteration_with_streaming_trains_on_the_right_scores(stopping_policy):
    config = config_of(estimator="grpo", rollout_chunks=1, length_guard=True)
    learner = build_learner(config, stopping_policy, RecordingReward([]))
    torch.manual_seed(4)
    metrics, records = iterate(learner, toy_rows()[:2], iteration=1, records_dir=None)
    for record in records:
        truncated = record.status == "truncated"
        assert record.total == pytest.approx(-1.0 if truncated else toy_score(record.code, record.target_id))
    assert 0 < metrics["timing_s/render_span"]


def test_a_streamed_text_that_differs_from_the_rollout_is_an_error(stopping_policy):
    config = config_of(estimator="grpo", rollout_chunks=1, length_guard=True)
    rows = toy_rows()[:2]
    scoring = Scoring(RecordingReward([]), stopping_policy.eos_ids, True, rows, K)
    torch.manual_seed(3)
    rollout = stopping_policy.sample([r["image"] for r in rows], n=K, temperature=config.temperature)
    scoring.streamed[0] = rollout.texts[0] + " "
    with pytest.raises(RuntimeError, match="streamed"):
        scoring.submit(rollout)
