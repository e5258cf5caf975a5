"""Programs handed over while ``generate`` is still running: each row as soon as it emits eos.

:class:`FinishedRows` is a ``transformers`` stopping criterion that never stops anything: at every
decoding step it looks for rows whose newest token is an eos, and calls ``on_finished(rows,
texts)`` once per row with the program that row spells (:meth:`policies.base.Policy.decode` of
its response, so the same text the finished rollout holds). PPO uses it to start OpenSCAD on a
program while the slowest programs of the batch are still being sampled; at GPU speed sampling
is latency-bound, and a batch waits for its longest program (``bench/ppo_overlap.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import StoppingCriteria

OnFinished = Callable[[list[int], list[str]], None]
"""``(rows, texts)``: batch rows (in ``generate``'s batch order) that just emitted eos, and their programs."""


class FinishedRows(StoppingCriteria):
    """Reports each row of a ``generate`` batch once, at the step it emits eos; stops nothing."""

    def __init__(self, eos_ids: Sequence[int], prompt_length: int, decode: Callable[[list[int]], str],
                 on_finished: OnFinished):
        self.eos_ids, self.prompt_length = list(eos_ids), prompt_length
        self.decode, self.on_finished = decode, on_finished
        self.reported = self.eos = self.never = None  # made on the device at the first step

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.reported is None:  # once, not at every decoding step
            self.never = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            self.reported = self.never.clone()
            self.eos = torch.tensor(self.eos_ids, device=input_ids.device)
        if input_ids.shape[1] > self.prompt_length:
            new = torch.isin(input_ids[:, -1], self.eos) & ~self.reported
            if bool(new.any()):
                self.reported |= new
                rows = new.nonzero().flatten().tolist()
                responses = input_ids[rows, self.prompt_length:].tolist()
                self.on_finished(rows, [self.decode(tokens) for tokens in responses])
        return self.never
