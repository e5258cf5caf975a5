"""The pretrained + LoRA backend on Qwen2-VL and Qwen2.5-VL, random weights, saved like hub checkpoints.

What this family adds over Idefics3: M-RoPE (3-D rotary positions computed by the model from
``input_ids``, ``mm_token_type_ids``, ``image_grid_thw`` and ``attention_mask``; ``generate``
and a plain forward each compute them), ``pixel_values`` packed as one row per patch of all
the batch's images (not one per prompt), and a variable number of image tokens per image size.
Every policy here reads the 2x2 tile and the size, so prompts differ in length (left padding).

transformers' Qwen2-VL processors take a video processor, which needs torchvision; these tests
save an image-only subclass (:func:`image_only`), registered for ``AutoProcessor``, so they run
without it. The text and image code it runs is the real processor's.
"""

import copy

import pytest
import torch
from transformers import AutoProcessor

from configs.policy import PolicyConfig
from policies import build_policy, load_policy
from policies.pretrained import PretrainedPolicy
from tests.policies.conftest import favour_eos, response, sft_steps

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

VISION_TOKENS = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>")
CHAT_TEMPLATE = (  # ours (policies.tokenizer), with Qwen's image span
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def image_only(processor_class, config_class):
    """``processor_class`` without its video processor (which needs torchvision), registered for
    ``config_class`` so that ``AutoProcessor.from_pretrained`` finds it by the name it saves."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # no video_processor in this signature: ProcessorMixin then neither wants nor checks one
        kwargs["chat_template"] = chat_template
        processor_class.__init__(self, image_processor, tokenizer, None, **kwargs)

    cls = type(f"ImageOnly{processor_class.__name__}", (processor_class,), {"__init__": __init__})
    AutoProcessor.register(config_class, cls, exist_ok=True)
    return cls


def family(name: str):
    """``(config class, model class, processor class)`` of a Qwen VL family."""
    if name == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

        return Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    return Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor


def vision_config(name: str) -> dict:
    """8 px patches, merged 2x2: a 32 px tile is 16 patches and 4 image tokens."""
    common = dict(num_heads=2, patch_size=8, spatial_merge_size=2, temporal_patch_size=2)
    if name == "qwen2_vl":
        return dict(depth=1, embed_dim=32, hidden_size=32, mlp_ratio=2, **common)
    # two blocks: the first attends in 2x2-token windows, the second to the whole image
    return dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=32, window_size=32,
                fullatt_block_indexes=[1], **common)


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def qwen_dir(request, tmp_path_factory, tokenizer):
    """A random-weight Qwen2-VL / Qwen2.5-VL and its processor (our tokenizer + Qwen's vision tokens)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    config_class, model_class, processor_class = family(request.param)
    tok = copy.deepcopy(tokenizer)
    specials = {"additional_special_tokens": list(VISION_TOKENS)}
    tok.add_special_tokens(specials, replace_extra_special_tokens=False)  # keep ours special too
    start, image, end, video = tok.convert_tokens_to_ids(list(VISION_TOKENS))
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = config_class(
        vision_config=vision_config(request.param),
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,  # head_dim 16: 8 rotary frequencies, split t/h/w as 2/3/3
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            **ids,
        ),
        image_token_id=image,
        video_token_id=video,
        vision_start_token_id=start,
        vision_end_token_id=end,
        **ids,
    )
    torch.manual_seed(1)
    model = model_class(config)
    with torch.no_grad():  # sharp attention: at the default init it is near uniform, blind to positions
        for name, param in model.named_parameters():
            if "language_model" in name and name.endswith(("q_proj.weight", "k_proj.weight")):
                param.normal_(0.0, 0.3)
    image_processor = Qwen2VLImageProcessorPil(  # 16 to 32 x 32 px: 1 to 4 image tokens
        patch_size=8, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": 16 * 16, "longest_edge": 32 * 32},
    )
    processor_class = image_only(processor_class, config_class)
    processor = processor_class(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE)
    directory = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return str(directory)


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
    prompt = batch["input_ids"].shape[1] - tokens.shape[1]
    assert (batch["labels"][:, :prompt] == -100).all()
    for row, code in enumerate(codes):
        expected = policy.encode_code(code) + policy.eos_ids[:1]
        assert batch["labels"][row, prompt:][mask[row]].tolist() == expected
        assert (batch["labels"][row, prompt:][~mask[row]] == -100).all()
    assert (batch["mm_token_type_ids"][:, prompt:] == 0).all(), "response tokens are text"
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
