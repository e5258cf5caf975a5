"""bench/greedy_divergence.py with hand-made next-token distributions: it finds the first token of a
program that goes against a choice SFT was sure of, and reports both policies' probabilities."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.greedy_divergence import divergence
from policies.tokenizer import corpus_texts, encode_code, train_tokenizer

CODE = "cube([10, 20, 30]);\nsphere(r = 5);\n"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(corpus_texts(60), vocab_size=400)


def policy(tokenizer, sure_of: dict[int, int], p: float = 0.96):
    """Puts ``p`` on the program's own token at every position, except where ``sure_of`` names
    another token id for a position."""
    ids = encode_code(tokenizer, CODE)
    logits = torch.full((1, len(ids), len(tokenizer)), -30.0)
    for t, token in enumerate(ids):
        favourite = sure_of.get(t, token)
        logits[0, t] = torch.log(torch.full((len(tokenizer),), (1 - p) / (len(tokenizer) - 1)))
        logits[0, t, favourite] = torch.log(torch.tensor(p))
    return SimpleNamespace(tokenizer=tokenizer, forward=lambda rows, tokens: SimpleNamespace(logits=logits))


def test_the_first_token_against_a_sure_sft_choice_is_reported(tokenizer):
    ids = encode_code(tokenizer, CODE)
    other = next(i for i in range(10, len(tokenizer)) if i not in ids)
    sft = policy(tokenizer, {2: other, 5: other})
    ppo = policy(tokenizer, {})
    found = divergence(sft, ppo, {}, CODE, sure=0.9, unlikely=0.05)
    assert found["token_index"] == 2 and found["line"] == 1
    assert found["sft_token"] == tokenizer.decode([other])
    assert found["program_token"] == tokenizer.decode([ids[2]])
    assert found["sft_token_p"]["sft"] == pytest.approx(0.96)
    assert found["program_token_p"]["ppo"] == pytest.approx(0.96)
    assert found["program_token_p"]["sft"] < 0.01 and found["sft_token_p"]["ppo"] < 0.01
    assert found["line_so_far"] == tokenizer.decode(ids[:2])


def test_no_divergence_where_sft_agrees_or_was_not_sure(tokenizer):
    ids = encode_code(tokenizer, CODE)
    other = next(i for i in range(10, len(tokenizer)) if i not in ids)
    assert divergence(policy(tokenizer, {}), policy(tokenizer, {}), {}, CODE, 0.9, 0.05) is None
    unsure = policy(tokenizer, {2: other}, p=0.6)  # SFT's other token at 0.6: not sure
    assert divergence(unsure, policy(tokenizer, {}), {}, CODE, 0.9, 0.05) is None
