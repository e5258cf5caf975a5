"""``Policy.forward`` values and ``token_logprobs`` checked against independent computations (issue 14).

Sampled and recomputed log-probs go through the same function, so comparing them only checks
one against the other; here the log-probs are recomputed from raw logits in the test, and the
value at position t is shown to depend on the tokens before t and not on token t itself.
"""

import torch

from policies.base import mask_suppressed, token_logprobs


def independent_logprobs(logits, tokens, temperature, suppressed):
    """``log_softmax(logits / temperature)`` at ``tokens``, suppressed ids removed; float64, by hand."""
    scaled = logits.double() / temperature
    scaled[..., list(suppressed)] = float("-inf")
    chosen = scaled.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(scaled, dim=-1)


def response_tokens(policy, images, codes, length: int = 8):
    """(B, length) real program tokens (no eos, no pad) of ``codes``."""
    tokens = [policy.encode_code(code)[:length] for code in codes]
    assert all(len(t) == length for t in tokens)
    return torch.tensor(tokens)


def test_value_at_t_sees_the_tokens_before_t_and_not_token_t(tiny_policy, images, codes):
    torch.nn.init.normal_(tiny_policy.value_head.weight)
    tokens = response_tokens(tiny_policy, images, codes)
    t = 4
    a, b = tiny_policy.encode_code("x")[0], tiny_policy.encode_code("y")[0]
    changed = tokens.clone()
    changed[:, t] = torch.where(tokens[:, t] == a, b, a)  # a different ordinary token in every row
    with torch.no_grad():
        values = tiny_policy(images, tokens).values
        other = tiny_policy(images, changed).values
    torch.testing.assert_close(other[:, : t + 1], values[:, : t + 1], atol=1e-6, rtol=0)
    assert (other[:, t + 1 :] - values[:, t + 1 :]).abs().min() > 1e-4, "values after t see token t"


def test_token_logprobs_is_log_softmax_of_logits_over_temperature():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 40, generator=generator) * 2
    tokens = torch.randint(10, 40, (3, 5), generator=generator)
    for temperature in (0.5, 1.0, 1.7):
        got = token_logprobs(logits, tokens, temperature, suppressed=[1, 4, 7])
        expected = independent_logprobs(logits, tokens, temperature, [1, 4, 7])
        torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)


def test_sampled_logprobs_are_the_forward_logits_at_the_temperature(tiny_policy, images):
    temperature = 0.6
    rollout = tiny_policy.sample(images, n=2, max_new_tokens=10, temperature=temperature)
    rows = [image for image in images for _ in range(2)]
    with torch.no_grad():
        logits = tiny_policy(rows, rollout.tokens, rollout.mask).logits
    expected = independent_logprobs(logits, rollout.tokens, temperature, tiny_policy.suppressed_ids)
    mask = rollout.mask
    torch.testing.assert_close(rollout.logprobs[mask].double(), expected[mask], atol=1e-4, rtol=0)
    full = independent_logprobs(logits, rollout.tokens, 1.0, tiny_policy.suppressed_ids)
    assert (full[mask] - expected[mask]).abs().max() > 1e-2, "temperature 0.6 must change the log-probs"


def test_mask_suppressed_gives_suppressed_ids_zero_probability_and_stays_finite():
    logits = torch.randn(2, 3, 12, generator=torch.Generator().manual_seed(0)) * 4
    suppressed, kept = [2, 5, 11], [i for i in range(12) if i not in (2, 5, 11)]
    masked = mask_suppressed(logits, suppressed)
    assert torch.isfinite(masked).all()
    probs = masked.softmax(dim=-1)
    assert torch.all(probs[..., suppressed] == 0)
    torch.testing.assert_close(probs[..., kept], logits[..., kept].softmax(dim=-1))
    entropy = -(probs * masked.log_softmax(dim=-1)).sum(dim=-1)  # what a NaN from -inf would spoil
    assert torch.isfinite(entropy).all()
    assert mask_suppressed(logits, []) is logits
