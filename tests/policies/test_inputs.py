"""What a policy is shown: four views tiled, the size in the prompt, prompts of different lengths."""

import numpy as np
import pytest
import torch

from configs.policy import PolicyConfig
from policies import PartInput, SFTCollator, build_policy
from policies.inputs import format_mm, input_columns, parse_size, policy_image, prompt_text, size_text, tile
from policies.tiny import TinyPolicy
from tests.policies.conftest import favour_eos, four_views, tiny_config


@pytest.fixture
def tile_policy(tokenizer):
    return TinyPolicy.build(tiny_config(views="tile", size_in_prompt=True), tokenizer=tokenizer)


def test_size_text_writes_lengths_as_programs_do():
    assert size_text((135.0, 40.0, 7.5)) == "Size: 135 x 40 x 7.5 mm."
    assert [format_mm(v) for v in (0.7999992, 12.04, 2000.0)] == ["0.8", "12", "2000"]
    assert parse_size("40x30x12.5") == (40.0, 30.0, 12.5) == parse_size("40, 30, 12.5")


@pytest.mark.parametrize("bad", ["40x30", "40x30x0", "40x30x-2", "axbxc", "40x30x12x5", "40xnanx3"])
def test_a_size_that_is_not_three_positive_numbers_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="three positive numbers"):
        parse_size(bad)


def test_a_part_is_one_picture_or_four_views():
    with pytest.raises(ValueError, match="1 picture or 4 views"):
        PartInput(four_views(0)[:2])
    row = {"image": four_views(0)[0], "views": list(four_views(0)), "extents": [1.0, 2.0, 3.0]}
    assert PartInput.of(row).size == (1.0, 2.0, 3.0) and len(PartInput.of(row).views) == 4
    assert PartInput.of(four_views(0)[0]).size is None and len(PartInput.of(four_views(0)[0]).views) == 1


def test_the_tile_puts_iso_front_right_top_in_reading_order():
    shown = four_views(3)
    image = np.asarray(tile(shown).convert("L"))
    assert image.shape == (32, 32)
    for i, view in enumerate(shown):
        row, col = divmod(i, 2)
        assert np.array_equal(image[16 * row : 16 * row + 16, 16 * col : 16 * col + 16], view)
    alone = np.asarray(tile([shown[0]]).convert("L"))
    assert np.array_equal(alone[:16, :16], shown[0]), "one picture fills the iso cell"
    rest = np.concatenate([alone[:16, 16:].ravel(), alone[16:].ravel()])
    assert (rest == shown[0][0, 0]).all(), "the other cells are the picture's background"


def test_the_size_is_in_the_prompt_only_when_the_policy_reads_sizes():
    part = PartInput(four_views(0), (10, 20, 30))
    assert prompt_text(part, PolicyConfig()) == PolicyConfig().instruction
    assert prompt_text(part, PolicyConfig(size_in_prompt=True)).endswith("Size: 10 x 20 x 30 mm.")
    assert prompt_text(part.without_size(), PolicyConfig(size_in_prompt=True)) == PolicyConfig().instruction
    assert input_columns(PolicyConfig()) == ["image"]
    assert input_columns(PolicyConfig(views="tile", size_in_prompt=True)) == ["image", "views", "extents"]
    assert np.asarray(policy_image(part, PolicyConfig())).shape == (16, 16, 3)


def test_prompts_of_different_sizes_are_padded_on_the_left(tile_policy, parts):
    prompts = tile_policy.prompt_inputs(parts)
    lengths = prompts["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) == 3, "each size makes a prompt of its own length"
    assert (prompts["attention_mask"][:, -1] == 1).all(), "every prompt ends at the last column"
    for row, part in enumerate(parts):
        ids = prompts["input_ids"][row, -lengths[row] :]
        assert torch.equal(ids, tile_policy.prompt_ids_of(prompt_text(part, tile_policy.config)))
        text = tile_policy.tokenizer.decode(ids)
        assert ("Size:" in text) == (part.size is not None)


@pytest.mark.parametrize("kind", ["tiny", "pretrained"])
def test_padded_prompts_sample_what_each_prompt_samples_alone(kind, tokenizer, pretrained_dir, parts):
    # Left padding must not change a row: greedy programs in a batch equal those sampled one by
    # one, and sampled log-probs equal their recomputation (the PPO ratio is 1 before an update).
    if kind == "tiny":
        policy = TinyPolicy.build(tiny_config(views="tile", size_in_prompt=True), tokenizer=tokenizer)
    else:
        policy = build_policy(PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4,
                                           views="tile", size_in_prompt=True))
    hook = favour_eos(policy, 1.0)
    try:
        together = policy.sample(parts, max_new_tokens=12, greedy=True).texts
        alone = [policy.sample([part], max_new_tokens=12, greedy=True).texts[0] for part in parts]
        assert together == alone
        rollout = policy.sample(parts, n=2, max_new_tokens=12, temperature=0.9)
        rows = [part for part in parts for _ in range(2)]
        recomputed = policy.logprobs_of(rows, rollout.tokens, rollout.mask, temperature=0.9)
        assert torch.allclose(recomputed, rollout.logprobs, atol=1e-4)
    finally:
        hook.remove()


def test_sft_hides_the_size_from_about_the_dropout_share_of_rows(tile_policy):
    rows = [{"views": list(four_views(i)), "image": four_views(i)[0], "extents": [1, 2, 3], "code": "x;"}
            for i in range(4)]
    collator = SFTCollator(tile_policy, size_dropout=0.25, seed=0)
    hidden = [part.size is None for _ in range(200) for part in collator.parts(rows)]
    assert 0.19 < np.mean(hidden) < 0.31
    assert all(part.size is not None for part in SFTCollator(tile_policy).parts(rows))
    batch = collator(rows)
    assert batch["pixel_values"].shape == (4, 1, 3, 32, 32)
    with pytest.raises(ValueError, match="size_dropout"):
        SFTCollator(tile_policy, size_dropout=1.5)
