"""``PolicyConfig``: which policy to build and its sizes; presets in ``configs/policy_*.yaml``.

::

    from configs.policy import PolicyConfig, load_policy_config
    config = load_policy_config("tiny")                         # configs/policy_tiny.yaml
    config = load_policy_config("my.yaml", ["text_layers=2"])   # a file plus overrides
    config = PolicyConfig(kind="pretrained", model_name_or_path="HuggingFaceTB/SmolVLM-256M-Instruct")

Every field has a help string (the docstring under it). ``__post_init__`` checks each
value once and raises ``ValueError`` naming the field and why.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass

PRESETS = ("tiny", "small", "base")
NUMBER_MODES = ("digits", "whole", "free")
"""How the tiny tokenizer cuts numbers before BPE (``policies.tokenizer``): each digit alone, each
number alone, or not at all."""
KINDS = ("tiny", "pretrained")
VIEW_MODES = ("iso", "tile")
DTYPES = ("float32", "bfloat16", "float16")
_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class PolicyConfig:
    """A policy: the tiny from-config Idefics3-shaped model, or a pretrained VLM with LoRA."""

    kind: str = "tiny"
    """``tiny`` (built from this config, tokenizer trained on the corpus) or ``pretrained`` (+ LoRA)."""
    instruction: str = "Write the OpenSCAD program for this part."
    """The fixed text of the prompt, after the image."""
    image_size: int = 128
    """Side of the square input image in pixels (tiny: the vision tower's size; others are resized)."""
    views: str = "iso"
    """What the image shows: ``iso`` (the iso view) or ``tile`` (iso, front / right, top in a 2x2 grid)."""
    size_in_prompt: bool = False
    """Put the part's bounding-box size in mm into the prompt (``Size: 40 x 30 x 12 mm.``) when known."""
    exemplars: bool = False
    """Also put the program of the training part whose views look most alike into the prompt
    (``policies/exemplars.py``; the index of the train split is saved with the checkpoint)."""
    max_new_tokens: int = 1024
    """Default response budget of ``sample``; SFT responses longer than this are cut (and get no eos)."""
    seed: int = 0
    """Seed of the tiny model's random initialisation."""

    vocab_size: int = 2048
    """Tiny: BPE vocabulary size, bytes and special tokens included."""
    tokenizer_texts: int = 2000
    """Tiny: corpus programs to train the tokenizer on when no tokenizer or texts are given."""
    tokenizer_path: str | None = None
    """Tiny: folder of a saved tokenizer to use instead of training one."""
    number_tokens: str = "digits"
    """Tiny: how the trained tokenizer cuts numbers: ``digits`` (one token per digit), ``whole`` (each
    number a piece of its own, so a common number is one token) or ``free`` (BPE merges across them)."""
    patch_size: int = 8
    """Tiny: vision patch side in pixels (image_size / patch_size patches per side)."""
    scale_factor: int = 4
    """Tiny: pixel-shuffle factor; image tokens = (image_size / patch_size / scale_factor) ** 2."""
    vision_hidden: int = 128
    """Tiny: vision tower width."""
    vision_layers: int = 2
    """Tiny: vision tower depth."""
    vision_heads: int = 4
    """Tiny: vision attention heads (must divide vision_hidden)."""
    vision_intermediate: int = 256
    """Tiny: vision MLP width."""
    text_hidden: int = 192
    """Tiny: language model width."""
    text_layers: int = 4
    """Tiny: language model depth (Llama blocks)."""
    text_heads: int = 4
    """Tiny: attention heads (must divide text_hidden)."""
    text_kv_heads: int = 2
    """Tiny: key/value heads, grouped-query attention (must divide text_heads)."""
    text_intermediate: int = 512
    """Tiny: SwiGLU MLP width."""
    max_position: int = 4096
    """Tiny: longest prompt + response in tokens."""
    rope_theta: float = 10000.0
    """Tiny: rotary embedding base."""

    model_name_or_path: str | None = None
    """Pretrained: a local folder or hub id of an image-text-to-text model (AutoModelForImageTextToText)."""
    dtype: str = "float32"
    """Pretrained: weight dtype, one of float32, bfloat16, float16."""
    lora_r: int = 16
    """Pretrained: LoRA rank."""
    lora_alpha: int = 32
    """Pretrained: LoRA scale numerator (scale = lora_alpha / lora_r)."""
    lora_dropout: float = 0.0
    """Pretrained: LoRA dropout; keep 0 so sampled and recomputed log-probs agree during PPO."""
    lora_target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    """Pretrained: names of the Linear layers that get adapters (Llama-style defaults)."""
    lora_text_only: bool = True
    """Pretrained: adapt only the language model (skip modules under vision/visual towers)."""
    eos_token: str | None = None
    """Pretrained: token that ends a response; default the model's generation eos, else the tokenizer's."""

    def __post_init__(self):
        def need(ok: bool, name: str, why: str):
            if not ok:
                raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")

        need(self.kind in KINDS, "kind", f"must be one of {', '.join(KINDS)}")
        need(self.views in VIEW_MODES, "views", f"must be one of {', '.join(VIEW_MODES)}")
        need(isinstance(self.size_in_prompt, bool), "size_in_prompt", "must be true or false")
        need(isinstance(self.exemplars, bool), "exemplars", "must be true or false")
        need(bool(self.instruction.strip()), "instruction", "must not be empty")
        for name in (
            "image_size",
            "max_new_tokens",
            "tokenizer_texts",
            "patch_size",
            "scale_factor",
            "vision_hidden",
            "vision_layers",
            "vision_heads",
            "vision_intermediate",
            "text_hidden",
            "text_layers",
            "text_heads",
            "text_kv_heads",
            "text_intermediate",
            "max_position",
            "lora_r",
            "lora_alpha",
        ):
            need(
                isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "must be an int >= 1"
            )
        need(self.vocab_size >= 262, "vocab_size", "must be >= 262 (256 bytes + 6 special tokens)")
        need(self.number_tokens in NUMBER_MODES, "number_tokens", f"must be one of {', '.join(NUMBER_MODES)}")
        need(
            self.image_size % self.patch_size == 0, "patch_size", f"must divide image_size {self.image_size}"
        )
        side = self.image_size // self.patch_size
        need(side % self.scale_factor == 0, "scale_factor", f"must divide the {side} patches per side")
        need(self.vision_hidden % self.vision_heads == 0, "vision_heads", "must divide vision_hidden")
        need(self.text_hidden % self.text_heads == 0, "text_heads", "must divide text_hidden")
        need(self.text_heads % self.text_kv_heads == 0, "text_kv_heads", "must divide text_heads")
        need(self.rope_theta > 0, "rope_theta", "must be > 0")
        need(self.max_position > self.max_new_tokens, "max_position", "must exceed max_new_tokens")
        need(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        need(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "must be in [0, 1)")
        need(len(self.lora_target_modules) > 0, "lora_target_modules", "must name at least one module")
        if self.kind == "pretrained":
            need(bool(self.model_name_or_path), "model_name_or_path", "is required when kind is pretrained")

    @property
    def image_tokens(self) -> int:
        """Image tokens per image in the tiny model's prompt."""
        return (self.image_size // self.patch_size // self.scale_factor) ** 2

    def to_dict(self) -> dict:
        """Plain JSON-able values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown PolicyConfig field {unknown[0]!r}")
        values = dict(values)
        if "lora_target_modules" in values:
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        return cls(**values)


def load_policy_config(name_or_path: str = "tiny", overrides: Iterable[str] = ()) -> PolicyConfig:
    """A preset name (``tiny``, ``small``, ``base``) or a YAML path, then ``key=value`` overrides."""
    from configs.loader import load

    path = os.path.join(_HERE, f"policy_{name_or_path}.yaml") if name_or_path in PRESETS else name_or_path
    return load(PolicyConfig, path, overrides)
