"""The embedded default policy: a small SmolVLM / Idefics3-shaped model built from config.

Owns :func:`build_model` (``Idefics3Config`` -> ``Idefics3ForConditionalGeneration``:
a SigLIP-style vision tower, pixel-shuffle connector, Llama text model), the image
preprocessing :func:`pixel_values`, and :class:`TinyPolicy`::

    from configs.policy import load_policy_config
    policy = TinyPolicy.build(load_policy_config("tiny"))   # trains the BPE tokenizer on corpus programs
    policy.save("runs/tiny0"); policy = TinyPolicy.load("runs/tiny0")

Image handling: ``Idefics3Processor`` would resize to 364 px tiles and split large
images; for a 128 px render we want neither, so :func:`pixel_values` does the whole job
with PIL and numpy (no torchvision): grayscale or RGB in, RGB out, bilinear resize to
``image_size``, scaled to [0, 1], normalised with mean 0.5 / std 0.5 like SigLIP. What the
image shows and what the prompt says come from :mod:`policies.inputs` (``views``: the iso
view, or the four views tiled 2x2; ``size_in_prompt``: the part's size after the
instruction). Note: Idefics3 drops images whose normalised pixels are all exactly 0 (a
uniform 50 % gray float image), as padding.

Prompt (SmolVLM layout, one image, no splitting; ``image_tokens`` image tokens; prompts of
different lengths are padded on the left)::

    <|im_start|>User:<fake_token_around_image><global-img><image>*k<fake_token_around_image>
    {instruction}[ Size: W x D x H mm.]<end_of_utterance>\nAssistant:{code}<end_of_utterance>
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, Idefics3Config, Idefics3ForConditionalGeneration

from configs.policy import PolicyConfig
from policies.base import Policy, only_token_ids, read_policy_json, require_safetensors
from policies.exemplars import load_index, shown
from policies.inputs import as_rgb, policy_image, prompt_text
from policies.tokenizer import GLOBAL_IMAGE, IMAGE, IMAGE_WRAP, corpus_texts, train_tokenizer

MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
"""The backbone's weights as ``save_pretrained`` writes them (one file or a sharded index)."""


def pixel_values(images: Sequence, size: int) -> torch.Tensor:
    """(B, 1, 3, size, size) float32 in [-1, 1] from B images (see :func:`as_rgb`), bilinear resize."""
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        image = as_rgb(image)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return torch.from_numpy((out - 0.5) / 0.5).unsqueeze(1)


def build_model(config: PolicyConfig, tokenizer) -> Idefics3ForConditionalGeneration:
    """A randomly initialised Idefics3 model sized by ``config``, vocabulary of ``tokenizer``."""
    ids = dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model_config = Idefics3Config(
        vision_config=dict(
            hidden_size=config.vision_hidden,
            intermediate_size=config.vision_intermediate,
            num_hidden_layers=config.vision_layers,
            num_attention_heads=config.vision_heads,
            image_size=config.image_size,
            patch_size=config.patch_size,
            num_channels=3,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=len(tokenizer),
            hidden_size=config.text_hidden,
            intermediate_size=config.text_intermediate,
            num_hidden_layers=config.text_layers,
            num_attention_heads=config.text_heads,
            num_key_value_heads=config.text_kv_heads,
            max_position_embeddings=config.max_position,
            rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            **ids,
        ),
        scale_factor=config.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        tie_word_embeddings=False,
        use_cache=True,
        **ids,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Idefics3ForConditionalGeneration(model_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


class TinyPolicy(Policy):
    """The from-config Idefics3-shaped policy; fully trainable (no adapters)."""

    kind = "tiny"

    def __init__(self, config: PolicyConfig, model: Idefics3ForConditionalGeneration, tokenizer):
        super().__init__(config, model, tokenizer, model.config.text_config.hidden_size)
        model.generation_config = only_token_ids(model.generation_config)
        # Plain CPU tensors, not buffers: collation in DataLoader workers (forked processes)
        # reads them, and a CUDA tensor there is a CUDA initialization error.
        self.prompt_ids = self._prompt_ids(config.instruction)
        self.__dict__["_prompt_cache"] = {config.instruction: self.prompt_ids}
        self.__dict__["_reference"] = None  # not a submodule: kept out of parameters() and state_dict()

    def _prompt_ids(self, text: str) -> torch.Tensor:
        """Token ids of the whole prompt (chat template, the image's placeholders, ``text``)."""
        image = IMAGE_WRAP + GLOBAL_IMAGE + IMAGE * self.config.image_tokens + IMAGE_WRAP
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        chat = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(chat.replace(IMAGE, image, 1), add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def prompt_ids_of(self, text: str) -> torch.Tensor:
        """:meth:`_prompt_ids`, remembered per text (a corpus has a few thousand sizes)."""
        cache = self._prompt_cache
        if text not in cache:
            if len(cache) > 100_000:
                cache.clear()
            cache[text] = self._prompt_ids(text)
        return cache[text]

    @classmethod
    def build(cls, config: PolicyConfig, texts: Sequence[str] | None = None, tokenizer=None) -> TinyPolicy:
        """A fresh policy; the tokenizer is ``tokenizer``, else loaded from ``config.tokenizer_path``,
        else trained on ``texts``, else on ``config.tokenizer_texts`` corpus programs."""
        if tokenizer is None and config.tokenizer_path:
            tokenizer = AutoTokenizer.from_pretrained(config.tokenizer_path)
        if tokenizer is None:
            texts = texts if texts is not None else corpus_texts(config.tokenizer_texts)
            tokenizer = train_tokenizer(texts, config.vocab_size, config.number_tokens, config.max_position)
        return cls(config, build_model(config, tokenizer), tokenizer)

    def prompt_inputs(
        self, images: Sequence, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """``input_ids (B, P)``, ``attention_mask (B, P)``, ``pixel_values (B, 1, 3, S, S)`` on
        ``device`` (default: the policy's), from B pictures, corpus rows or :class:`PartInput`;
        prompts of different lengths (sizes in the text) are padded on the left."""
        parts = shown(self, images)
        rows = [self.prompt_ids_of(prompt_text(part, self.config)) for part in parts]
        width = max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, width - len(ids) :] = ids
            attention[i, width - len(ids) :] = 1
        device = self.device if device is None else device
        pictures = [policy_image(part, self.config) for part in parts]
        return {
            "input_ids": input_ids.to(device),
            "attention_mask": attention.to(device),
            "pixel_values": pixel_values(pictures, self.config.image_size).to(device, self.model.dtype),
        }

    def _save_backbone(self, directory: str) -> None:
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def load(cls, directory: str) -> TinyPolicy:
        """The policy :meth:`save` wrote; weights from safetensors only (pickled ``.bin`` refused)."""
        _, config = read_policy_json(directory)
        require_safetensors(directory, MODEL_WEIGHTS)
        model = Idefics3ForConditionalGeneration.from_pretrained(
            directory, dtype=torch.float32, use_safetensors=True
        )
        policy = cls(config, model, AutoTokenizer.from_pretrained(directory))
        policy._load_value_head(directory)
        policy.exemplars = load_index(directory, config)
        return policy

    def freeze_reference(self) -> None:
        """Snapshot the current weights (a frozen deep copy) as the reference model."""
        self.__dict__["_reference"] = copy.deepcopy(self.model).eval().requires_grad_(False)

    @contextlib.contextmanager
    def reference(self):
        """Inside, ``self.model`` is the frozen snapshot of :meth:`freeze_reference`."""
        if self._reference is None:
            raise RuntimeError("call freeze_reference() before reference() on a tiny policy")
        live = self.model
        self.model = self._reference
        try:
            yield self
        finally:
            self.model = live

