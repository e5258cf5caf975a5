"""policies.constrained: decoding never writes a token the prefix grammar refuses, never ends where it
may not end, and leaves the model's own log-probs untouched (a real tiny policy's ``generate``)."""

import torch

from policies.constrained import PLAIN_TOKEN, PrefixConstraint


class Balanced:
    """A prefix grammar for the test: parentheses never close more than they opened, and close all."""

    START = 0

    @staticmethod
    def advance(depth, text):
        for char in text:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                return None
        return depth

    @staticmethod
    def may_end(depth):
        return depth == 0

    @staticmethod
    def plain_allowed(depth):
        return True


def without(char):
    """A prefix grammar for the test: ``char`` is never written."""

    class Without:
        START = 0

        @staticmethod
        def advance(state, text):
            return None if char in text else state

        @staticmethod
        def may_end(state):
            return True

        @staticmethod
        def plain_allowed(state):
            return True

    return Without


def test_greedy_never_writes_what_the_grammar_refuses_and_keeps_the_models_logprobs(tiny_policy, images):
    plain = tiny_policy.sample(images, greedy=True, max_new_tokens=40)
    char = next(c for text in plain.texts for c in text if not PLAIN_TOKEN.fullmatch(c))
    guarded = tiny_policy.sample(images, greedy=True, max_new_tokens=40, grammar=without(char))
    assert not any(char in text for text in guarded.texts)
    assert guarded.texts != plain.texts
    recomputed = tiny_policy.logprobs_of(images, guarded.tokens, guarded.mask)
    torch.testing.assert_close(recomputed, guarded.logprobs, atol=1e-4, rtol=1e-4)


def test_a_grammar_that_refuses_nothing_changes_nothing(tiny_policy, images):
    anything = without("\x00")
    plain = tiny_policy.sample(images, greedy=True, max_new_tokens=30)
    free = tiny_policy.sample(images, greedy=True, max_new_tokens=30, grammar=anything)
    assert free.texts == plain.texts


def test_eos_is_refused_until_the_text_may_end():
    texts = ["", "(", ")", "a"]
    constraint = PrefixConstraint(Balanced, texts, eos_ids=[0], prompt_length=2)
    prompt = torch.tensor([[3, 3], [3, 3]])
    scores = constraint(prompt, torch.zeros(2, 4))
    assert scores[0, 2] == float("-inf") and scores[0, 0] == 0  # ')' at depth 0; eos allowed
    scores = constraint(torch.tensor([[3, 3, 1], [3, 3, 3]]), torch.zeros(2, 4))
    assert scores[0, 0] == float("-inf") and scores[0, 2] == 0  # '(' open: no eos, ')' allowed
    assert scores[1, 0] == 0 and scores[1, 2] == float("-inf")
    scores = constraint(torch.tensor([[3, 3, 1, 0], [3, 3, 3, 3]]), torch.zeros(2, 4))
    assert scores[0, 0] == 0 and scores[0, 2] == 0  # a row that wrote eos is left alone


def test_the_pretrained_backend_follows_the_grammar_too(pretrained_dir, images):
    from configs.policy import PolicyConfig
    from policies import build_policy

    config = PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4, lora_alpha=8)
    policy = build_policy(config)
    plain = policy.sample(images, greedy=True, max_new_tokens=30)
    char = next(c for text in plain.texts for c in text if not PLAIN_TOKEN.fullmatch(c))
    guarded = policy.sample(images, greedy=True, max_new_tokens=30, grammar=without(char))
    assert not any(char in text for text in guarded.texts) and guarded.texts != plain.texts


def test_greedy_checks_pick_what_the_full_mask_picks_and_the_models_extra_rows_are_refused():
    texts = ["", "(", ")", "a", "))", "(a)", "a)"]
    generator = torch.Generator().manual_seed(0)
    greedy = PrefixConstraint(Balanced, texts, eos_ids=[0], prompt_length=1, greedy=True)
    full = PrefixConstraint(Balanced, texts, eos_ids=[0], prompt_length=1)
    ids = torch.tensor([[3], [3], [3]])
    for _ in range(12):
        scores = torch.randn(3, 9, generator=generator)  # 9 > 7: two rows of the model no token spells
        picked = greedy(ids, scores.clone()).argmax(-1)
        masked = full(ids, scores.clone())
        assert torch.equal(picked, masked.argmax(-1))
        active = [row for row, state in enumerate(full.states) if state is not None]  # eos: left alone
        assert torch.isinf(masked[active, 7:]).all() and (picked[active] < 7).all()
        ids = torch.cat([ids, picked[:, None]], dim=1)
    for row in ids.tolist():
        written = row[1:row.index(0, 1)] if 0 in row[1:] else row[1:]
        assert Balanced.advance(0, "".join(texts[t] for t in written)) is not None


def test_sampling_under_a_grammar_never_writes_what_it_refuses(tiny_policy, images):
    plain = tiny_policy.sample(images, n=2, max_new_tokens=30)
    char = next(c for text in plain.texts for c in text if not PLAIN_TOKEN.fullmatch(c))
    guarded = tiny_policy.sample(images, n=2, max_new_tokens=30, grammar=without(char))
    assert not any(char in text for text in guarded.texts)


def test_a_row_refused_past_its_patience_is_ended():
    texts = ["", "(", ")", "a"]
    constraint = PrefixConstraint(Balanced, texts, eos_ids=[0], prompt_length=1, greedy=True, patience=2)
    wants_close = torch.tensor([[0.0, 0.0, 5.0, 1.0]])  # ')' at depth 0, every step
    ids = torch.tensor([[3]])
    for step in range(3):
        scores = constraint(ids, wants_close.clone())
        if step < 2:
            assert scores.argmax(-1).item() == 3  # refused: the best allowed token instead
        ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], dim=1)
    assert ids[0, -1].item() == 0 and torch.isinf(scores[0, 1:]).all()  # the third refusal ends it
    assert constraint.states == [None]
