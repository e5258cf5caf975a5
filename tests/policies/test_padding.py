"""Training passes put padding after each row's real tokens (policies.padding), with the same logits."""

import pytest
import torch

from policies.padding import left_padding, original_positions, right_aligned
from policies.tiny import TinyPolicy
from tests.policies.conftest import tiny_config


def no_pad_before_a_real_token(mask: torch.Tensor) -> bool:
    """Each row of ``mask`` is ones then zeros (a query is never fully masked)."""
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


def test_left_padding_moves_to_the_right_end_and_back():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0], [0, 1, 1, 0, 0]])
    ids = torch.tensor([[0, 0, 7, 8, 9], [1, 2, 3, 4, 0], [0, 5, 6, 0, 0]])
    pixels = torch.ones(3, 1, 3, 4, 4)
    moved, shift = right_aligned({"input_ids": ids, "attention_mask": mask, "pixel_values": pixels})
    assert shift.tolist() == [2, 0, 1] == left_padding(mask).tolist()
    assert moved["input_ids"].tolist() == [[7, 8, 9, 0, 0], [1, 2, 3, 4, 0], [5, 6, 0, 0, 0]]
    assert no_pad_before_a_real_token(moved["attention_mask"]) and not no_pad_before_a_real_token(mask)
    assert moved["pixel_values"] is pixels, "a tensor that is not per token is left alone"
    positions = torch.arange(2, 4)
    back = original_positions(moved["input_ids"].unsqueeze(-1), shift, positions).squeeze(-1)
    assert back.tolist() == ids[:, 2:4].tolist()
    kept = moved["input_ids"][:, 1:]  # an output that holds positions 1 onwards only
    later = torch.arange(3, 5)
    assert original_positions(kept, shift, later, offset=1).tolist() == ids[:, 3:5].tolist()
    with pytest.raises(ValueError, match="left padding"):
        original_positions(moved["input_ids"], shift, torch.arange(0, 2))
    unchanged, none = right_aligned({"input_ids": ids[1:2], "attention_mask": mask[1:2]})
    assert none.tolist() == [0] and torch.equal(unchanged["input_ids"], ids[1:2])


@pytest.fixture
def size_policy(tokenizer):
    return TinyPolicy.build(tiny_config(views="tile", size_in_prompt=True), tokenizer=tokenizer)


def test_an_sft_batch_of_prompts_of_three_lengths_has_no_pad_before_a_real_token(size_policy, parts, codes):
    batch = size_policy.collate(parts, codes)
    assert len(set(size_policy.prompt_inputs(parts)["attention_mask"].sum(dim=1).tolist())) == 3
    assert no_pad_before_a_real_token(batch["attention_mask"])
    # The loss is the one of each row alone (a batch of one has no padding): sum of token losses.
    batch_loss = size_policy.model(**batch).loss * (batch["labels"] != -100).sum()
    alone = 0.0
    for part, code in zip(parts, codes, strict=True):
        single = size_policy.collate([part], [code])
        alone = alone + size_policy.model(**single).loss * (single["labels"] != -100).sum()
    assert torch.allclose(batch_loss, alone, rtol=1e-4)
    batch_loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in size_policy.parameters() if p.grad is not None)


def test_the_ppo_forward_pass_has_no_pad_before_a_real_token(size_policy, parts):
    seen = []
    hook = size_policy.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append(kwargs["attention_mask"].clone()), with_kwargs=True)
    tokens = torch.randint(5, 50, (3, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=torch.bool)
    try:
        together = size_policy.forward(parts, tokens, mask)
    finally:
        hook.remove()
    assert len(seen) == 1 and no_pad_before_a_real_token(seen[0])
    for row, part in enumerate(parts):
        alone = size_policy.forward([part], tokens[row : row + 1], mask[row : row + 1])
        real = mask[row]
        assert torch.allclose(together.logits[row, real], alone.logits[0, real], atol=1e-4)
        assert torch.allclose(together.values[row, real], alone.values[0, real], atol=1e-4)
