"""Tiny random-weight vision-language models saved like hub checkpoints, for tests: Idefics3
(SmolVLM's architecture) and Qwen2-VL / Qwen2.5-VL, each with its real processor around the
corpus-trained tokenizer. Nothing is downloaded."""

from __future__ import annotations

import copy

import torch

from policies.processors import image_only

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


def save_idefics3(directory: str, tokenizer) -> str:
    """A random-weight Idefics3 model + processor (our tokenizer) saved in ``directory``."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    ids = dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = Idefics3Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **ids,
        ),
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        **ids,
    )
    torch.manual_seed(1)
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    processor = Idefics3Processor(  # the processor edits its tokenizer's specials: give it a copy
        image_processor=image_processor,
        tokenizer=copy.deepcopy(tokenizer),
        image_seq_len=4,
        chat_template=tokenizer.chat_template,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def save_qwen(name: str, directory: str, tokenizer) -> str:
    """A random-weight Qwen2-VL (``qwen2_vl``) or Qwen2.5-VL (``qwen2_5_vl``) and its processor (our
    tokenizer + Qwen's vision tokens, saved in its image-only form) in ``directory``."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    config_class, model_class, processor_class = family(name)
    tok = copy.deepcopy(tokenizer)
    specials = {"additional_special_tokens": list(VISION_TOKENS)}
    tok.add_special_tokens(specials, replace_extra_special_tokens=False)  # keep ours special too
    start, image, end, video = tok.convert_tokens_to_ids(list(VISION_TOKENS))
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = config_class(
        vision_config=vision_config(name),
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
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
