"""The ``Policy`` interface shared by the tiny and the pretrained backends.

A policy wraps a Hugging Face image-text-to-text model (``self.model``), its tokenizer
and a value head (one ``Linear(hidden, 1)`` on the last hidden state). The prompt is one
image and the instruction, with the part's size when the policy reads sizes (what each part
shows is :mod:`policies.inputs`: ``images`` below are pictures, corpus rows or
:class:`~policies.inputs.PartInput`); the response is the program's tokens, then eos::

    rollout = policy.sample(images, n=4, max_new_tokens=512, temperature=1.0)
    out = policy(images_for_rows, rollout.tokens, rollout.mask)   # logits (B, T, V), values (B, T)
    lp = policy.logprobs_of(images_for_rows, rollout.tokens, rollout.mask)  # == rollout.logprobs
    batch = policy.collate(images, codes)      # input_ids, attention_mask, labels, pixel_values...
    loss = policy.model(**batch).loss          # SFT: loss on code tokens and eos only
    Trainer(model=policy.model, data_collator=SFTCollator(policy), ...)  # rows {"image", "code"}

Response-aligned convention: ``logits[:, t]`` predicts ``tokens[:, t]`` and
``values[:, t]`` is the value of the state *before* token ``t`` (veRL's layout).
``logprobs`` are ``log_softmax(logits / temperature)`` at the chosen token over the
vocabulary minus :attr:`Policy.suppressed_ids` (special tokens other than eos, image
placeholders included, are never sampled: a generated ``<image>`` would break the
recomputation); with ``top_p < 1`` the distribution is cut to the top-p nucleus and
renormalised, in :meth:`Policy.sample` and :meth:`Policy.logprobs_of` alike (PPO keeps
``top_p = 1``: its update recomputes full-softmax log-probs). Tokens are drawn from exactly
that distribution: no top-k (transformers' default of 50 is turned off), no repetition
penalty, minimum length or any other logits processor, whatever a checkpoint's
``generation_config.json`` asks for (see :func:`only_token_ids`), unless ``sample`` is given a
``grammar`` (inference only: :mod:`policies.constrained`). Greedy decoding reports
temperature-1 log-probabilities.

For PPO: call :meth:`freeze_reference` once, then compute reference log-probs inside
``with policy.reference():``. Sampling runs in eval mode; keep dropout at 0 (the
default everywhere) so that train-mode recomputation matches the sampled log-probs.

Subclasses provide :meth:`prompt_inputs` (images -> tokenised prompt and vision
tensors), :meth:`_save_backbone`, :meth:`load` and :meth:`reference`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from configs.policy import PolicyConfig
from policies.checkpoint_files import (  # noqa: F401 (CheckpointError, first_line: re-exported)
    POLICY_JSON,
    CheckpointError,
    first_line,
    read_policy_json,
    require_safetensors,
)
from policies.constrained import PrefixConstraint, token_texts
from policies.padding import original_positions, right_aligned
from policies.streaming import FinishedRows, OnFinished
from policies.tokenizer import encode_code

VALUE_HEAD = "value_head.safetensors"


@dataclass
class Rollout:
    """``B * n`` sampled responses; rows ``b * n .. b * n + n - 1`` belong to image ``b``."""

    tokens: torch.Tensor
    """(B*n, T) long: response tokens, pad after eos."""
    logprobs: torch.Tensor
    """(B*n, T) float32: log-prob of each token under the sampling temperature; 0 where ``mask`` is False."""
    mask: torch.Tensor
    """(B*n, T) bool: True for real generated tokens, the eos included."""
    texts: list[str]
    """B*n decoded programs (the tokens before eos)."""


@dataclass
class PolicyOutput:
    """Response-aligned outputs of :meth:`Policy.forward`."""

    logits: torch.Tensor
    """(B, T, V): ``logits[:, t]`` predicts ``tokens[:, t]``."""
    values: torch.Tensor
    """(B, T) float32: value of the state before token ``t``."""


class Policy(nn.Module):
    """An image -> OpenSCAD-program policy with a value head; see the module docstring."""

    kind = "base"

    def __init__(self, config: PolicyConfig, model: nn.Module, tokenizer, hidden_size: int):
        super().__init__()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.exemplars = None  # policies.exemplars.ExemplarIndex when config.exemplars is on
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    # --- to be provided by a backend -------------------------------------------------------------
    def prompt_inputs(
        self, images: Sequence, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Prompt of each image: ``input_ids (B, P)``, ``attention_mask (B, P)`` and vision tensors,
        on ``device`` (default: the policy's; collators ask for the CPU, the Trainer moves batches)."""
        raise NotImplementedError

    def _save_backbone(self, directory: str) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: str) -> Policy:
        """The policy saved by :meth:`save` in ``directory``."""
        raise NotImplementedError

    def freeze_reference(self) -> None:
        """Fix the reference model to the current weights (PPO calls this once, at its start, on the
        SFT policy), so that the KL to it is exactly 0 before the first update."""

    def reference(self) -> contextlib.AbstractContextManager:
        """Context in which ``self`` computes the frozen reference model (PPO's KL term)."""
        raise NotImplementedError

    # --- shared ----------------------------------------------------------------------------------
    @property
    def eos_ids(self) -> list[int]:
        """Tokens that end a response; the first is appended to SFT responses."""
        return [self.tokenizer.eos_token_id]

    @property
    def suppressed_ids(self) -> list[int]:
        """Tokens never sampled and excluded from log-probs: specials other than eos."""
        return sorted(set(self.tokenizer.all_special_ids) - set(self.eos_ids))

    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    def encode_code(self, code: str) -> list[int]:
        """Token ids of a program, no specials; special-token text inside it stays text."""
        return encode_code(self.tokenizer, code)

    def decode(self, tokens: Sequence[int]) -> str:
        """The program spelled by ``tokens`` up to the first eos (special tokens dropped)."""
        tokens = list(tokens)
        for i, token in enumerate(tokens):
            if token in self.eos_ids:
                tokens = tokens[:i]
                break
        return self.tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _prompts(self, images) -> dict[str, torch.Tensor]:
        prompts = images if isinstance(images, Mapping) else self.prompt_inputs(images)
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in prompts.items()}

    def forward(self, images, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> PolicyOutput:
        """Logits and values for response ``tokens (B, T)`` after the prompt of each image.

        ``images``: B images, or the dict :meth:`prompt_inputs` made from them (reuse it across
        PPO epochs). ``mask (B, T)`` marks real tokens (default all); pad after eos is masked.
        """
        prompts = self._prompts(images)
        tokens = tokens.to(self.device)
        mask = torch.ones_like(tokens, dtype=torch.bool) if mask is None else mask.to(self.device)
        inputs, shift = right_aligned(with_response(prompts, tokens, mask))  # policies.padding
        width, length = inputs["input_ids"].shape[1], tokens.shape[1]
        keep = length + 1 + int(shift.max())
        out = self.model(**inputs, output_hidden_states=True, use_cache=False, logits_to_keep=keep)
        positions = torch.arange(width - length - 1, width - 1)  # the prompt's last token onwards
        logits = original_positions(out.logits, shift, positions, offset=width - keep)
        hidden = original_positions(out.hidden_states[-1], shift, positions)
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()
        return PolicyOutput(logits=logits, values=values)

    def logprobs_of(
        self,
        images,
        tokens: torch.Tensor,
        mask: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> torch.Tensor:
        """(B, T) float32 log-probs of ``tokens`` as :meth:`sample` reports them; 0 where ``mask`` is off."""
        out = self.forward(images, tokens, mask)
        logprobs = token_logprobs(out.logits, tokens.to(self.device), temperature, self.suppressed_ids, top_p)
        return logprobs if mask is None else logprobs.masked_fill(~mask.to(self.device, torch.bool), 0.0)

    @torch.no_grad()
    def sample(
        self,
        images: Sequence,
        n: int = 1,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        greedy: bool = False,
        on_finished: OnFinished | None = None,
        grammar=None,
    ) -> Rollout:
        """``n`` programs per image, drawn with ``model.generate`` in eval mode (KV cache);
        ``on_finished(rows, texts)`` hears of each row's program as soon as it ends in eos.

        ``grammar`` (a prefix grammar, :mod:`policies.constrained`) refuses tokens no valid program
        could follow; the log-probs stay the model's, so a rollout for PPO never takes one."""
        if n < 1 or not temperature > 0 or not 0 < top_p <= 1:
            raise ValueError(f"need n >= 1, temperature > 0, 0 < top_p <= 1; got {n}, {temperature}, {top_p}")
        prompts = self._prompts([image for image in images for _ in range(n)])
        generation = self.generation_config(max_new_tokens, temperature, top_p, greedy)
        was_training = self.training
        self.eval()
        prompt_length = prompts["input_ids"].shape[1]
        stream = StoppingCriteriaList(
            [FinishedRows(self.eos_ids, prompt_length, self.decode, on_finished)]) if on_finished else None
        constraint = LogitsProcessorList([PrefixConstraint(
            grammar, token_texts(self.tokenizer), self.eos_ids, prompt_length, greedy)]) if grammar else None
        try:
            out = self.model.generate(**prompts, generation_config=generation, stopping_criteria=stream,
                                      logits_processor=constraint)
        finally:
            self.train(was_training)
        tokens = out.sequences[:, prompt_length:]
        logits = torch.stack(out.logits, dim=1)
        mask = response_mask(tokens, self.eos_ids)
        if greedy:
            temperature, top_p = 1.0, 1.0
        logprobs = token_logprobs(logits, tokens, temperature, self.suppressed_ids, top_p)
        logprobs = logprobs.masked_fill(~mask, 0.0)
        texts = [self.decode(row.tolist()) for row in tokens]
        return Rollout(tokens=tokens, logprobs=logprobs, mask=mask, texts=texts)

    def generation_config(
        self, max_new_tokens: int | None, temperature: float, top_p: float, greedy: bool
    ) -> GenerationConfig:
        """What :meth:`sample` asks ``generate`` for: the distribution of :func:`token_logprobs`, no more.

        Every logits processor transformers would add from a default is set to its no-op value
        (``top_k=0`` above all: left unset it becomes 50). Fields whose no-op is "unset" (min_p,
        bad words, forced tokens, ...) are kept unset by :func:`only_token_ids` on the model.
        """
        return GenerationConfig(
            max_new_tokens=max_new_tokens or self.config.max_new_tokens,
            do_sample=not greedy,
            num_beams=1,
            temperature=None if greedy else temperature,
            top_p=None if greedy else top_p,
            top_k=None if greedy else 0,
            typical_p=None if greedy else 1.0,
            epsilon_cutoff=None if greedy else 0.0,
            eta_cutoff=None if greedy else 0.0,
            repetition_penalty=1.0,
            encoder_repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            encoder_no_repeat_ngram_size=0,
            min_length=0,
            remove_invalid_values=False,
            renormalize_logits=False,
            suppress_tokens=self.suppressed_ids,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )

    def collate(self, images: Sequence, codes: Sequence[str]) -> dict[str, torch.Tensor]:
        """An SFT batch on the CPU: prompt + code + eos per row, right-padded, loss on code and eos only.

        Returns ``input_ids (B, L)``, ``attention_mask (B, L)``, ``labels (B, L)`` (-100 on
        the prompt and padding) and the vision tensors of :meth:`prompt_inputs`. A code longer
        than ``config.max_new_tokens`` tokens is cut there and gets no eos.
        """
        prompts = self.prompt_inputs(images, device="cpu")
        responses = [self.response_ids(code) for code in codes]
        width = max(len(r) for r in responses)
        pad = self.tokenizer.pad_token_id
        tokens = torch.full((len(responses), width), pad, dtype=torch.long)
        mask = torch.zeros((len(responses), width), dtype=torch.long)
        for i, ids in enumerate(responses):
            tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[i, : len(ids)] = 1
        batch = with_response(prompts, tokens, mask)
        prompt_labels = torch.full_like(prompts["input_ids"], -100)
        batch["labels"] = torch.cat([prompt_labels, tokens.masked_fill(mask == 0, -100)], dim=1)
        return right_aligned(batch)[0]  # no pad before a real token (policies.padding)

    def response_ids(self, code: str) -> list[int]:
        """SFT's tokens for ``code``: its tokens and eos, cut at ``max_new_tokens`` with no eos."""
        ids, limit = self.encode_code(code), self.config.max_new_tokens
        return ids[:limit] if len(ids) >= limit else ids + [self.eos_ids[0]]

    def encode_example(self, image, code: str) -> dict[str, torch.Tensor]:
        """:meth:`collate` of one (image, code) pair; tensors keep their batch dimension of 1."""
        return self.collate([image], [code])

    def save(self, directory: str) -> str:
        """Write ``policy.json``, ``value_head.safetensors``, the exemplar index when there is one, and
        the backbone (save_pretrained form)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, POLICY_JSON), "w", encoding="utf-8") as fh:
            json.dump({"kind": self.kind, "config": self.config.to_dict()}, fh, indent=2)
        state = {k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()}
        save_file(state, os.path.join(directory, VALUE_HEAD))
        if self.exemplars is not None:
            self.exemplars.save(directory)
        self._save_backbone(directory)
        return directory

    def _load_value_head(self, directory: str) -> None:
        require_safetensors(directory, (VALUE_HEAD,))
        self.value_head.load_state_dict(load_file(os.path.join(directory, VALUE_HEAD)))


def with_response(prompts: Mapping, tokens: torch.Tensor, mask: torch.Tensor) -> dict:
    """Model inputs for prompt + response: ``tokens (B, T)`` appended to ``input_ids (B, P)``,
    ``mask (B, T)`` to ``attention_mask``, zeros to other per-token tensors (token type ids)."""
    inputs = dict(prompts)
    shape = tuple(prompts["input_ids"].shape)
    for key, value in prompts.items():
        if key == "input_ids":
            inputs[key] = torch.cat([value, tokens.to(value.dtype)], dim=1)
        elif torch.is_tensor(value) and tuple(value.shape) == shape:
            tail = (
                mask.to(value.dtype)
                if key == "attention_mask"
                else torch.zeros_like(tokens, dtype=value.dtype)
            )
            inputs[key] = torch.cat([value, tail], dim=1)
    return inputs


def select_rows(prompts: Mapping, index: torch.Tensor, rows: int) -> dict:
    """The prompts of rows ``index`` out of ``rows``: per-row tensors indexed; a patch-major
    ``pixel_values`` (Qwen2-VL: one row per patch, ``image_grid_thw`` per image) cut per image."""
    out = {k: v[index] if torch.is_tensor(v) and v.shape[:1] == (rows,) else v for k, v in prompts.items()}
    grid = prompts.get("image_grid_thw")
    if grid is not None and grid.shape[0] == rows and prompts["pixel_values"].shape[0] != rows:
        patches = torch.split(prompts["pixel_values"], grid.prod(dim=-1).tolist())
        out["pixel_values"] = torch.cat([patches[i] for i in index.tolist()])
    return out


def token_logprobs(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    temperature: float = 1.0,
    suppressed: Sequence[int] = (),
    top_p: float = 1.0,
) -> torch.Tensor:
    """(B, T) float32 ``log_softmax(logits (B, T, V) / temperature)`` at ``tokens (B, T)``,
    with the ``suppressed`` token ids removed from the distribution (:func:`mask_suppressed`) and,
    for ``top_p < 1``, the distribution cut to its top-p nucleus (:func:`top_p_filter`) and
    renormalised."""
    logits = mask_suppressed(logits.float() / temperature, suppressed)
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def mask_suppressed(logits: torch.Tensor, suppressed: Sequence[int]) -> torch.Tensor:
    """``logits (..., V)`` with the ``suppressed`` token ids set to the dtype's lowest finite value.

    Their probability under any softmax is then exactly 0, as with -inf, but the logits stay
    finite, so an entropy ``sum(p * logit)`` gets 0 from them rather than ``0 * -inf = NaN``.
    :func:`token_logprobs` and PPO's entropy bonus both remove them here (``generate`` does the
    same through its ``suppress_tokens``).
    """
    if not len(suppressed):
        return logits
    index = torch.tensor(list(suppressed), device=logits.device)
    return logits.index_fill(-1, index, torch.finfo(logits.dtype).min)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits (..., V)`` with the tokens outside the top-p nucleus set to -inf.

    transformers' ``TopPLogitsWarper`` rule, so that :func:`token_logprobs` describes what
    ``generate`` drew: sorted ascending, a token goes when the probability mass up to and
    including it is at most ``1 - top_p``; the most likely token always stays.
    """
    ascending, order = torch.sort(logits, dim=-1)
    drop = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    drop[..., -1] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


TOKEN_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
"""The fields of a model's ``generation_config`` that :func:`only_token_ids` keeps."""


def only_token_ids(config: GenerationConfig) -> GenerationConfig:
    """A fresh ``GenerationConfig`` holding only the token ids of ``config``.

    ``generate`` fills every field :meth:`Policy.generation_config` leaves unset from the
    model's ``generation_config`` (a checkpoint's ``generation_config.json`` may ask for
    ``top_k=1``, ``repetition_penalty=1.05``, ``min_p``, bad words, ...); backends give their
    model this one so that sampling stays the distribution :func:`token_logprobs` computes.
    """
    ids = {name: getattr(config, name, None) for name in TOKEN_ID_FIELDS}
    return GenerationConfig(**{name: value for name, value in ids.items() if value is not None})


def response_mask(tokens: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """(B, T) bool: True up to and including the first eos of each row (all True if none)."""
    is_eos = torch.isin(tokens, torch.tensor(list(eos_ids), device=tokens.device))
    after = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # eos seen strictly before t
    return after == 0
