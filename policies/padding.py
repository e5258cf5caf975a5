"""Where the padding of a training batch goes: after the last real token of each row, never before.

Prompts of different lengths (a size in the text for some rows, none for others) are padded on the
left, which is what ``generate`` wants. In a pass with a backward, a left pad is a query that may
attend to no key at all (causal, and every key before it is padding). PyTorch's CUDA attention
kernels give such a fully masked row a NaN gradient, which reaches every weight: an SFT run with
``policy.size_in_prompt`` on an H200 had ``grad_norm nan`` from step 50 on and saved NaN weights
(on the CPU the same batches trained). :func:`right_aligned` moves each row's left padding to its
right end (a pad there attends to the real tokens before it), and :func:`original_positions`
reads an output of the moved batch at the positions of the original one. Attention between real
tokens is unchanged (rotary positions are relative), so the logits of real tokens are too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def left_padding(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` long: the pads before each row's first real token."""
    return (attention_mask.cumsum(dim=1) == 0).sum(dim=1)


def right_aligned(inputs: Mapping) -> tuple[dict, torch.Tensor]:
    """``inputs`` with every per-token tensor (``(B, L)``, like ``attention_mask``) rolled left per
    row by its left padding, and that padding ``(B,)``; unchanged when no row has any."""
    mask = inputs["attention_mask"]
    shift = left_padding(mask)
    if not bool(shift.any()):
        return dict(inputs), shift
    length = mask.shape[1]
    index = (torch.arange(length, device=mask.device)[None, :] + shift[:, None]) % length
    moved = {}
    for key, value in inputs.items():
        per_token = torch.is_tensor(value) and value.dim() == 2 and tuple(value.shape) == tuple(mask.shape)
        moved[key] = value.gather(1, index.to(value.device)) if per_token else value
    return moved, shift


def original_positions(output: torch.Tensor, shift: torch.Tensor, positions: torch.Tensor,
                       offset: int = 0) -> torch.Tensor:
    """``(B, len(positions), ...)``: ``output (B, K, ...)`` of a batch moved by
    :func:`right_aligned` (of which it holds positions ``offset`` onwards) read at ``positions``
    of the original batch, each at or after its row's left padding."""
    index = positions.to(output.device)[None, :] - shift.to(output.device)[:, None] - offset
    if bool((index < 0).any()):
        raise ValueError("a position before the kept output or inside a row's left padding")
    index = index.view(*index.shape, *([1] * (output.dim() - 2))).expand(-1, -1, *output.shape[2:])
    return output.gather(1, index)
