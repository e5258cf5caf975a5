"""Any Hugging Face image-text-to-text model behind the ``Policy`` interface, trained with LoRA.

Owns :class:`PretrainedPolicy`: ``AutoModelForImageTextToText`` + its processor
(:func:`policies.processors.load_processor`) from a local folder or a hub id, LoRA adapters
through peft (base weights frozen), a value head, and the reference model for PPO's KL: the base
with a frozen copy of the adapter as it was when :meth:`PretrainedPolicy.freeze_reference` ran
(the SFT policy, not the bare base)::

    config = PolicyConfig(kind="pretrained", model_name_or_path="HuggingFaceTB/SmolVLM-256M-Instruct")
    policy = PretrainedPolicy.build(config)
    policy.freeze_reference()                # adapter "default" copied to a frozen "reference"
    with policy.reference():                 # the "reference" adapter is the active one
        ref_logprobs = policy.logprobs_of(images, tokens, mask)
    policy.save("runs/smolvlm-lora")         # adapters + value head + processor + policy.json

The trained adapter is peft's ``default`` (saved at the top of the folder); the reference,
once frozen, is a second adapter ``reference`` (saved in ``reference/`` and loaded back by
:meth:`PretrainedPolicy.load`, so a resumed PPO run keeps its KL anchor). Its weights
never require grad, so an optimizer or DDP built after :meth:`freeze_reference` leaves them out.

The prompt is the processor's chat template with one user turn (the image, then
``config.instruction``) and the generation prompt; images go through the model's own
processor (as PIL RGB). All prompts have the same length when the images have the same
size (the usual case), and then :meth:`logprobs_of` reproduces :meth:`sample` exactly;
prompts of different lengths are left-padded and may shift rotary positions. A saved
policy holds the adapter, not the base weights: :meth:`load` reads the base again from
``config.model_name_or_path``.

LoRA targets ``config.lora_target_modules`` (Llama-style attention and MLP projections
by default); with ``lora_text_only`` modules whose path names a vision/visual/image
tower are skipped, so the language model alone is adapted.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Sequence

import torch
from peft import (
    LoraConfig,
    PeftModel,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from transformers import AutoModelForImageTextToText

from configs.policy import PolicyConfig
from policies.base import (
    CheckpointError,
    Policy,
    first_line,
    only_token_ids,
    read_policy_json,
    require_safetensors,
)
from policies.exemplars import load_index, shown
from policies.inputs import policy_image, prompt_text
from policies.processors import load_processor

ADAPTER_WEIGHTS = "adapter_model.safetensors"
"""The LoRA adapters as ``PeftModel.save_pretrained`` writes them."""
TRAINED = "default"
"""peft's name for the adapter that trains (the one ``get_peft_model`` creates)."""
REFERENCE = "reference"
"""The frozen copy of :data:`TRAINED` that :meth:`PretrainedPolicy.freeze_reference` makes."""
_VISION_WORDS = ("vision", "visual", "image", "img")
_PLACEHOLDER_ATTRS = (
    "image_token",
    "fake_image_token",
    "global_image_tag",
    "video_token",
    "boi_token",
    "eoi_token",
)


def lora_targets(config: PolicyConfig) -> str | list[str]:
    """peft ``target_modules``: the names as a list, or a regex that skips vision towers."""
    names = list(config.lora_target_modules)
    if not config.lora_text_only:
        return names
    avoid = "|".join(_VISION_WORDS)
    return rf"^(?!.*({avoid})).*\.({'|'.join(re.escape(n) for n in names)})$"


def _load_base(config: PolicyConfig):
    """The base model of ``config``, its weights from safetensors only (never a pickled ``.bin``)."""
    dtype = getattr(torch, config.dtype)
    return AutoModelForImageTextToText.from_pretrained(
        config.model_name_or_path, dtype=dtype, use_safetensors=True
    )


def _load_saved_base(config: PolicyConfig, directory: str):
    """:func:`_load_base` for a checkpoint; :class:`CheckpointError` naming the base if it cannot load."""
    try:
        return _load_base(config)
    except (OSError, ValueError) as error:  # not found, not a model, no safetensors, bad repo id
        raise CheckpointError(
            f"checkpoint {directory!r}: its base model {config.model_name_or_path!r} cannot be loaded "
            f"({first_line(error)})"
        ) from error


class PretrainedPolicy(Policy):
    """A pretrained VLM with LoRA adapters and a value head; only those two train."""

    kind = "pretrained"

    def __init__(self, config: PolicyConfig, model: PeftModel, processor):
        hidden = model.get_base_model().config.get_text_config().hidden_size
        super().__init__(config, model, processor.tokenizer, hidden)
        base = model.get_base_model()
        base.generation_config = only_token_ids(base.generation_config)
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"
        self._eos_ids = self._find_eos(config)
        self._suppressed = self._find_suppressed()

    @classmethod
    def build(cls, config: PolicyConfig) -> PretrainedPolicy:
        """Base model and processor from ``config.model_name_or_path``, fresh LoRA adapters."""
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_targets(config),
            bias="none",
        )
        model = get_peft_model(_load_base(config), lora)
        return cls(config, model, load_processor(config.model_name_or_path))

    def _find_eos(self, config: PolicyConfig) -> list[int]:
        if config.eos_token:
            token_id = self.tokenizer.convert_tokens_to_ids(config.eos_token)
            if token_id is None or token_id == self.tokenizer.unk_token_id:
                raise ValueError(f"eos_token {config.eos_token!r} is not a token of this model's tokenizer")
            return [token_id]
        found = self.model.get_base_model().generation_config.eos_token_id
        if found is None:
            found = self.tokenizer.eos_token_id
        ids = [found] if isinstance(found, int) else list(found)
        if not ids:
            raise ValueError("the model has no eos token; set eos_token in the policy config")
        return ids

    @property
    def eos_ids(self) -> list[int]:
        return self._eos_ids

    @property
    def suppressed_ids(self) -> list[int]:
        return self._suppressed

    def _find_suppressed(self) -> list[int]:
        """Specials other than eos, plus the processor's image/video placeholder tokens."""
        ids = set(super().suppressed_ids)
        vocab = self.tokenizer.get_vocab()
        for attr in _PLACEHOLDER_ATTRS:
            token = getattr(self.processor, attr, None)
            if isinstance(token, str) and token in vocab:
                ids.add(vocab[token])
        return sorted(ids - set(self.eos_ids))

    def chat_text(self, text: str) -> str:
        """The processor's chat template around one image and ``text``, ready for generation."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def prompt_inputs(
        self, images: Sequence, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """The processor's output for B prompts (pictures, corpus rows or :class:`PartInput`):
        ``input_ids (B, P)``, ``attention_mask (B, P)``, vision, on ``device`` (default: the
        policy's); prompts of different lengths are padded on the left."""
        parts = shown(self, images)
        batch = self.processor(
            text=[self.chat_text(prompt_text(part, self.config)) for part in parts],
            images=[[policy_image(part, self.config)] for part in parts],
            return_tensors="pt",
            padding=True,
        )
        dtype = self.model.get_base_model().dtype
        device = self.device if device is None else device
        return {
            k: v.to(device, dtype) if torch.is_floating_point(v) else v.to(device)
            for k, v in batch.items()
        }

    def freeze_reference(self) -> None:
        """Copy the trained adapter, as it is now, into the frozen :data:`REFERENCE` adapter.

        PPO calls this once, on the SFT policy: the KL then anchors to the SFT weights (base +
        SFT adapter), and is exactly 0 before the first update. Calling it again re-snapshots.
        """
        if REFERENCE in self.model.peft_config:
            self.model.delete_adapter(REFERENCE)
        frozen = copy.deepcopy(self.model.peft_config[TRAINED])
        frozen.inference_mode = True
        self.model.add_adapter(REFERENCE, frozen)
        weights = get_peft_model_state_dict(self.model, adapter_name=TRAINED)
        loaded = set_peft_model_state_dict(self.model, weights, adapter_name=REFERENCE)
        if loaded.unexpected_keys:
            raise RuntimeError(f"reference adapter does not fit: {loaded.unexpected_keys[:3]}")
        for name, param in self.model.named_parameters():
            if f".{REFERENCE}." in name:
                param.requires_grad_(False)

    @contextlib.contextmanager
    def reference(self):
        """Inside, the :data:`REFERENCE` adapter is the active one: the frozen SFT policy."""
        if REFERENCE not in self.model.peft_config:
            raise RuntimeError("call freeze_reference() before reference() on a pretrained policy")
        self._activate(REFERENCE)
        try:
            yield self
        finally:
            self._activate(TRAINED)

    def _activate(self, adapter: str) -> None:
        """Make ``adapter`` the one that runs; every requires_grad flag stays as it was
        (peft's ``set_adapter`` would make the active adapter trainable and the others not)."""
        trains = {name: p.requires_grad for name, p in self.model.named_parameters()}
        self.model.set_adapter(adapter)
        for name, param in self.model.named_parameters():
            param.requires_grad_(trains[name])

    def _save_backbone(self, directory: str) -> None:
        self.model.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    @classmethod
    def load(cls, directory: str) -> PretrainedPolicy:
        """Base from ``config.model_name_or_path``; adapters (the reference too, if saved), value head and
        processor from ``directory``.

        Weights load from safetensors only; a missing base or pickled weights are a :class:`CheckpointError`.
        """
        _, config = read_policy_json(directory)
        require_safetensors(directory, (ADAPTER_WEIGHTS,))
        model = PeftModel.from_pretrained(_load_saved_base(config, directory), directory, is_trainable=True)
        reference = os.path.join(directory, REFERENCE)
        if os.path.isdir(reference):  # saved after freeze_reference (a PPO checkpoint)
            require_safetensors(reference, (ADAPTER_WEIGHTS,))
            model.load_adapter(reference, adapter_name=REFERENCE, is_trainable=False)
        policy = cls(config, model, load_processor(directory, config.model_name_or_path))
        policy._load_value_head(directory)
        policy.exemplars = load_index(directory, config)
        return policy
