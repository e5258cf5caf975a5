"""The pretrained + LoRA backend on Qwen2-VL and Qwen2.5-VL, random weights, saved like hub checkpoints.

What this family adds over Idefics3: M-RoPE (3-D rotary positions computed by the model from
``input_ids``, ``mm_token_type_ids``, ``image_grid_thw`` and ``attention_mask``; ``generate``
and a plain forward each compute them), ``pixel_values`` packed as one row per patch of all
the batch's images (not one per prompt), and a variable number of image tokens per image size.
Every policy here reads the 2x2 tile and the size, so prompts differ in length (left padding).

transformers' Qwen2-VL processors take a video processor, which needs torchvision; these tests
save the image-only form :func:`policies.processors.image_only`, which the policy loads back
without it (as it loads a hub checkpoint's processor: :func:`policies.processors.load_processor`).
The text and image code it runs is the real processor's.
"""


import importlib.util
import os

import pytest
import torch

from configs.policy import PolicyConfig
from policies import build_policy, load_policy
from policies.pretrained import PretrainedPolicy
from tests.policies.conftest import favour_eos, response, sft_steps
from tests.policies.hub_models import save_qwen

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def qwen_dir(request, tmp_path_factory, tokenizer):
    """A random-weight Qwen2-VL / Qwen2.5-VL and its processor (our tokenizer + Qwen's vision tokens)."""
    return save_qwen(request.param, str(tmp_path_factory.mktemp(request.param)), tokenizer)


def make_policy(directory: str) -> PretrainedPolicy:
    torch.manual_seed(0)
    config = PolicyConfig(kind="pretrained", model_name_or_path=directory, lora_r=4, lora_alpha=8,
                          views="tile", size_in_prompt=True)
    return build_policy(config)


@pytest.fixture
def policy(qwen_dir):
    return make_policy(qwen_dir)


def test_prompts_carry_qwen_vision_inputs_left_padded(policy, parts):
    prompts = policy.prompt_inputs(parts)
    lengths = prompts["attention_mask"].sum(dim=1)
    assert len(set(lengths.tolist())) == 3 and (prompts["attention_mask"][:, -1] == 1).all()
    image = policy.processor.image_token_id
    assert prompts["image_grid_thw"].tolist() == [[1, 4, 4]] * 3, "a 32 px tile: 4 x 4 patches"
    assert ((prompts["input_ids"] == image).sum(dim=1) == 4).all(), "merged 2 x 2: 4 image tokens"
    assert prompts["pixel_values"].shape[0] == 3 * 16, "patches of all images, packed"
    assert torch.equal(prompts["mm_token_type_ids"].bool(), prompts["input_ids"] == image)
    assert {image, policy.processor.video_token_id} <= set(policy.suppressed_ids)
    assert policy.eos_ids == [policy.tokenizer.eos_token_id]


def test_sft_labels_only_code_and_eos_and_only_adapters_and_value_head_train(policy, parts, codes):
    batch, tokens, mask = response(policy, parts, codes)
    for row in range(len(codes)):
        expected, labels = tokens[row, mask[row]].tolist(), batch["labels"][row]
        end = int(batch["attention_mask"][row].sum())  # the row's real tokens come first
        assert labels[labels != -100].tolist() == expected == labels[end - len(expected) : end].tolist()
        assert batch["input_ids"][row, end - len(expected) : end].tolist() == expected
    assert (batch["mm_token_type_ids"][batch["labels"] != -100] == 0).all(), "response tokens are text"
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert not any("visual" in n for n in trainable), "lora_text_only keeps adapters out of the vision tower"
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    # SFT lowers the loss; a value step makes the value head move too
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = policy.model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.1, losses
    (policy(parts, tokens, mask).values - 1).pow(2).mean().backward()
    torch.optim.SGD([policy.value_head.weight, policy.value_head.bias], lr=0.5).step()
    for name, param in policy.named_parameters():
        assert torch.equal(param, before[name]) != (name in trainable), name


def test_sampled_logprobs_match_recomputed_and_batched_greedy_is_greedy_alone(policy, parts):
    # generate computes M-RoPE positions incrementally (rope deltas), forward from the whole
    # left-padded sequence: the PPO ratio is 1 before an update only if they agree
    together = policy.sample(parts, max_new_tokens=8, greedy=True)
    alone = [policy.sample([part], max_new_tokens=8, greedy=True) for part in parts]
    assert together.texts == [one.texts[0] for one in alone]
    assert len(set(together.texts)) == 3 and together.mask.all(), "three different 8-token programs"
    hook = favour_eos(policy, 4.0)  # some rows stop early: pad after eos in the batch
    try:
        rollout = policy.sample(parts, n=2, max_new_tokens=10, temperature=0.9)
        rows = [part for part in parts for _ in range(2)]
        with torch.no_grad():
            recomputed = policy.logprobs_of(rows, rollout.tokens, rollout.mask, temperature=0.9)
            prompts = policy.prompt_inputs(rows)
            flat = dict(prompts, mm_token_type_ids=torch.zeros_like(prompts["mm_token_type_ids"]))
            flat_logprobs = policy.logprobs_of(flat, rollout.tokens, rollout.mask, temperature=0.9)
    finally:
        hook.remove()
    lengths = rollout.mask.sum(dim=1)
    assert lengths.min() < 10 and lengths.max() > 2, "some rows stop early, some run on"
    torch.testing.assert_close(recomputed, rollout.logprobs, atol=1e-4, rtol=0)
    assert (flat_logprobs - rollout.logprobs).abs().max() > 1e-3, "1-D positions would not match"
    sampled = rollout.tokens[rollout.mask].tolist()
    assert not set(sampled) & set(policy.suppressed_ids), "no image / vision token is ever sampled"


def test_reference_is_the_policy_until_it_moves(policy, parts, codes):
    batch, tokens, mask = response(policy, parts, codes)
    sft_steps(policy, batch, steps=2)
    policy.freeze_reference()
    with torch.no_grad():
        before = policy.logprobs_of(parts, tokens, mask, temperature=0.8)
        with policy.reference():
            reference = policy.logprobs_of(parts, tokens, mask, temperature=0.8)
    assert torch.equal(reference, before), "KL to the reference must be exactly 0 at iteration 1"
    sft_steps(policy, batch)
    with torch.no_grad():
        after = policy.logprobs_of(parts, tokens, mask, temperature=0.8)
        with policy.reference():
            assert torch.equal(policy.logprobs_of(parts, tokens, mask, temperature=0.8), reference)
    assert (after - before).abs().max() > 1e-3, "the policy moves"


def test_save_load_gives_identical_logits_and_values(policy, parts, codes, tmp_path):
    batch, tokens, mask = response(policy, parts, codes)
    sft_steps(policy, batch, steps=2)
    torch.nn.init.normal_(policy.value_head.weight)
    with torch.no_grad():
        out = policy(parts, tokens, mask)
        loaded = load_policy(policy.save(str(tmp_path / "ckpt")))
        again = loaded(parts, tokens, mask)
        base = make_policy(policy.config.model_name_or_path)(parts, tokens, mask)
    assert isinstance(loaded, PretrainedPolicy)
    assert type(loaded.model.get_base_model()) is type(policy.model.get_base_model())
    assert torch.equal(out.logits, again.logits) and torch.equal(out.values, again.values)
    assert not torch.allclose(out.logits, base.logits, atol=1e-3), "the trained adapter is what loads"


def test_ppo_minibatch_rows_cut_patch_major_pixels_per_image(policy, parts, codes):
    # PPO scores and updates minibatches of rows out of one prompts dict; Qwen's pixel_values
    # are one row per patch of all images, so a row's patches must be cut by image_grid_thw.
    from policies.base import select_rows

    batch, tokens, mask = response(policy, parts, codes)
    prompts = policy.prompt_inputs(parts)
    assert prompts["pixel_values"].shape[0] != len(parts), "patch-major layout"
    index = torch.tensor([2, 0])
    with torch.no_grad():
        whole = policy(prompts, tokens, mask).logits[index]
        chosen = policy(select_rows(prompts, index, len(parts)), tokens[index], mask[index]).logits
        alone = policy([parts[2], parts[0]], tokens[index], mask[index]).logits
    assert torch.allclose(chosen, alone, atol=1e-5) and torch.allclose(chosen, whole, atol=1e-4)


def as_hub_checkpoint(directory: str, out) -> str:
    """A copy of ``directory`` as a hub checkpoint is saved: the stock processor class named, and a
    video processor configured (which needs torchvision to load)."""
    import json
    import shutil

    out = str(out / "hub")
    shutil.copytree(directory, out)
    path = os.path.join(out, "processor_config.json")
    with open(path) as fh:
        saved = json.load(fh)
    saved["processor_class"] = saved["processor_class"].removeprefix("ImageOnly")
    with open(path, "w") as fh:
        json.dump(saved, fh)
    with open(os.path.join(out, "video_preprocessor_config.json"), "w") as fh:
        json.dump({"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 8, "merge_size": 2,
                   "temporal_patch_size": 2, "processor_class": saved["processor_class"]}, fh)
    return out


def test_a_hub_checkpoint_loads_without_torchvision_as_its_image_only_processor(qwen_dir, parts, tmp_path):
    from transformers import AutoProcessor

    from policies.processors import load_processor

    hub = as_hub_checkpoint(qwen_dir, tmp_path)
    if importlib.util.find_spec("torchvision") is None:  # the stock processor cannot load here
        with pytest.raises(ImportError, match="(?i)torchvision"):
            AutoProcessor.from_pretrained(hub)
    processor = load_processor(hub)
    assert type(processor).__name__ == "ImageOnly" + json_class(hub)
    policy = make_policy(hub)
    assert policy.sample(parts, n=1, temperature=1.0, max_new_tokens=4).tokens.shape[0] == len(parts)
    policy.save(str(tmp_path / "saved"))
    assert load_policy(str(tmp_path / "saved")).processor.__class__ is processor.__class__


def json_class(directory: str) -> str:
    import json

    with open(os.path.join(directory, "processor_config.json")) as fh:
        return json.load(fh)["processor_class"]
