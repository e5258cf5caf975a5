"""The SCAD tokenizer of the tiny policy: byte-level BPE trained on OpenSCAD programs.

Owns :func:`train_tokenizer` (``tokenizers`` BPE, wrapped as a
``transformers.PreTrainedTokenizerFast``), the special tokens of the chat-style
prompt, and :func:`corpus_texts`, the default training text::

    from policies.tokenizer import train_tokenizer, corpus_texts
    tok = train_tokenizer(corpus_texts(2000), vocab_size=2048)
    tok.save_pretrained("runs/tok"); tok = PreTrainedTokenizerFast.from_pretrained("runs/tok")
    assert tok.decode(tok.encode(code, add_special_tokens=False)) == code

Pre-tokenization splits text into **lines** (the newline stays on its line) and, with
``numbers="digits"`` (the default), every **digit** into its own piece, then maps bytes to the
byte-level alphabet. Merges can therefore span a whole statement (``translate([``, ``)
cylinder(d = ``) but never a number: dimensions are spelled digit by digit, as in Llama-family
tokenizers. On the corpus this gives ~5.4 bytes per token at vocab 2048 (GPT-2's word regex
gives ~2.7). With ``numbers="whole"`` each number (``140``, ``3.5``) is a piece of its own
instead, so merges join its digits and a common number is one token, spelled alike in the
prompt's size and in the program; rarer ones still split into known pieces.
Decoding is exact for any UTF-8 text (no normalizer, no prefix space, no clean-up).

Special tokens follow SmolVLM / Idefics3 names, so ``Idefics3Processor`` accepts the
tokenizer: ``<|pad|>``, ``<|im_start|>`` (bos), ``<end_of_utterance>`` (eos, ends the
response), ``<fake_token_around_image>``, ``<global-img>`` and ``<image>`` (one per
image feature). :data:`CHAT_TEMPLATE` is the SmolVLM-style template.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from configs.policy import NUMBER_MODES

PAD, BOS, EOS = "<|pad|>", "<|im_start|>", "<end_of_utterance>"
IMAGE, IMAGE_WRAP, GLOBAL_IMAGE = "<image>", "<fake_token_around_image>", "<global-img>"
SPECIAL_TOKENS = (PAD, BOS, EOS, IMAGE, IMAGE_WRAP, GLOBAL_IMAGE)
"""Ids 0..5, in this order, in every tokenizer this module trains."""

CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""SmolVLM-style: ``<|im_start|>User:<image>Text<end_of_utterance>\\nAssistant:``."""

_LINE = Regex(r"[^\n]*\n?")
_NUMBER = Regex(r"[0-9]+(?:\.[0-9]+)?")


def _pre_tokenizer(numbers: str) -> pre_tokenizers.PreTokenizer:
    steps = [pre_tokenizers.Split(_LINE, behavior="isolated")]
    if numbers == "digits":
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    elif numbers == "whole":
        steps.append(pre_tokenizers.Split(_NUMBER, behavior="isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2048, numbers: str = "digits", model_max_length: int = 4096
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` (OpenSCAD programs).

    ``vocab_size`` counts the 256 byte symbols and the 6 special tokens; the result may be
    smaller when the texts offer fewer merges. ``numbers`` is one of
    :data:`configs.policy.NUMBER_MODES` (see the module docstring). Training is deterministic for
    the same texts.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes + specials)")
    if numbers not in NUMBER_MODES:
        raise ValueError(f"numbers must be one of {NUMBER_MODES}, got {numbers!r}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer(numbers)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return wrap(tok, model_max_length)


def wrap(tok: Tokenizer, model_max_length: int = 4096) -> PreTrainedTokenizerFast:
    """A ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast`` with our specials and template."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=[IMAGE, IMAGE_WRAP, GLOBAL_IMAGE],
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        padding_side="right",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def encode_code(tokenizer: PreTrainedTokenizerFast, code: str) -> list[int]:
    """Token ids of ``code`` with no specials added; special-token text inside it stays text."""
    return tokenizer(code, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def corpus_texts(n: int = 2000, seed0: int = 0) -> list[str]:
    """``n`` programs from ``corpus.families``, families round-robin, seeds from ``seed0``."""
    from corpus.families import FAMILIES, generate

    families = sorted(FAMILIES)
    return [generate(families[i % len(families)], seed0 + i // len(families)).code for i in range(n)]
