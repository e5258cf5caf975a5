"""Decoding that never writes a token a prefix grammar refuses: a ``transformers`` logits processor.

A **prefix grammar** is any object with ``START`` (a hashable state), ``advance(state, text)``
(the state after ``text``, or None when no valid text begins so), ``may_end(state)`` (whether the
text may end here) and ``plain_allowed(state)`` (a promise: when True, every :data:`PLAIN_TOKEN`
is allowed); :class:`renderer.syntax.ScadPrefix` is the one for OpenSCAD. This module knows
nothing of what the grammar checks. :class:`PrefixConstraint` follows each row of a ``generate``
batch through the grammar:

- **greedy** (``greedy=True``): while the row's best token is refused, its score becomes
  ``-inf`` and the next best is tried, so ``argmax`` is the best token the grammar allows (eos
  only where the text may end). A handful of checks per step, whatever the vocabulary;
- **sampling**: every refused token's score is ``-inf``; what a state refuses is computed once
  and kept (plain tokens are skipped where the grammar promises them).

A row whose first choice has been refused more than ``patience`` times (:data:`PATIENCE`) is
ended there with eos: it has strayed, and would otherwise fill the token budget (and hold up its
batch) with text that does not parse.

::

    constraint = PrefixConstraint(ScadPrefix, token_texts(tokenizer), eos_ids, prompt_length, greedy=True)
    model.generate(**prompts, logits_processor=LogitsProcessorList([constraint]), ...)

The model's own logits (``output_logits``) are untouched: log-probs stay those of the model, so
a constrained sample is no PPO rollout (PPO never asks for one).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_]*\s*")
"""A piece of a name or number, then only whitespace: what ``plain_allowed`` promises to allow."""

PATIENCE = 32
"""Refusals after which a row is ended (eos): the model has strayed where nothing it wants parses,
and would write garbage to the token budget (rows that came right needed 1-30 on the main job's
``test`` split; one that did not, 180)."""

_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_texts(tokenizer) -> list[str]:
    """The text of every token id of ``tokenizer`` (special tokens as ""), computed once per tokenizer."""
    texts = _TEXTS.get(tokenizer)
    if texts is None:
        special = set(tokenizer.all_special_ids)
        texts = [
            "" if i in special else tokenizer.decode([i], clean_up_tokenization_spaces=False)
            for i in range(len(tokenizer))
        ]
        _TEXTS[tokenizer] = texts
    return texts


class PrefixConstraint(LogitsProcessor):
    """Refuses, row by row, every token after which ``grammar`` says no valid text can follow."""

    def __init__(self, grammar, texts: Sequence[str], eos_ids: Sequence[int], prompt_length: int,
                 greedy: bool = False, patience: int = PATIENCE):
        self.grammar, self.texts, self.greedy, self.patience = grammar, list(texts), greedy, patience
        self.eos_ids, self.prompt_length = set(eos_ids), prompt_length
        self.checked: list[int] = []
        self.states: list | None = None  # per row: a grammar state, or None once it ended or strayed
        self.refusals: list[int] = []  # per row: steps at which its first choice was refused
        self.refused: dict = {}
        self.allowed: dict = {}  # (state, token) -> bool

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.states is None:
            self.states = [self.grammar.START] * input_ids.shape[0]
            self.refusals = [0] * input_ids.shape[0]
            self.texts += [None] * (scores.shape[-1] - len(self.texts))  # the model's extra rows: refused
            self.checked = [i for i, text in enumerate(self.texts)
                            if text is None or not PLAIN_TOKEN.fullmatch(text)]
        elif input_ids.shape[1] > self.prompt_length:
            self._advance(input_ids[:, -1].tolist())
        firsts = scores.argmax(dim=-1).tolist()
        for row, state in enumerate(self.states):
            if state is None:
                continue
            refused = not self._allows(state, firsts[row])  # most steps: the model's first choice stands
            self.refusals[row] += refused
            if self.refusals[row] > self.patience:  # strayed: end it now (it would not parse either way)
                self.states[row] = None
                scores[row] = float("-inf")
                scores[row, min(self.eos_ids)] = 0.0
            elif not self.greedy:
                scores[row, self._refused(state, scores.device)] = float("-inf")
            elif refused:
                self._best_allowed(scores[row], state)
        return scores

    def _advance(self, tokens: list[int]) -> None:
        for row, token in enumerate(tokens):
            state = self.states[row]
            if state is not None and token not in self.eos_ids:
                self.states[row] = self.grammar.advance(state, self.texts[token])
            else:
                self.states[row] = None

    def _allows(self, state, token: int) -> bool:
        """:meth:`_check`, remembered (greedy asks of a few tokens per state)."""
        key = (state, token)
        allowed = self.allowed.get(key)
        if allowed is None:
            allowed = self.allowed[key] = self._check(state, token)
        return allowed

    def _check(self, state, token: int) -> bool:
        if token in self.eos_ids:
            return self.grammar.may_end(state)
        text = self.texts[token]
        return text is not None and self.grammar.advance(state, text) is not None

    def _best_allowed(self, scores: torch.Tensor, state) -> None:
        for _ in range(len(self.texts)):
            token = int(scores.argmax())
            if scores[token] == float("-inf") or self._allows(state, token):
                return
            scores[token] = float("-inf")

    def _refused(self, state, device: torch.device) -> torch.Tensor:
        refused = self.refused.get(state)
        if refused is None:
            candidates = self.checked if self.grammar.plain_allowed(state) else range(len(self.texts))
            ids = [i for i in candidates if i not in self.eos_ids and not self._check(state, i)]
            ids += [i for i in self.eos_ids if not self.grammar.may_end(state)]
            refused = self.refused[state] = torch.tensor(ids, dtype=torch.long, device=device)
        return refused
