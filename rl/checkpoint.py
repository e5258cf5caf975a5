"""What a policy checkpoint folder tells the commands that use it.

A checkpoint is a folder written by ``Policy.save`` (``policy.json`` plus weights); ``rl.sft``
adds ``sft_config.json`` (its settings, among them the corpus it trained on) to the folder
and to the run folder above it. ``rl.ppo``, ``rl.eval`` and ``rl.predict`` read through this
module: the policy, the corpus to use with it, and whether that corpus's images fit it.
Every problem is a :class:`configs.cli.UsageError` with a one-line message.
"""

from __future__ import annotations

import json
import os

from configs.cli import UsageError
from configs.policy import PolicyConfig
from configs.sft import DEFAULT_CORPUS_DIR

SFT_CONFIG_JSON = "sft_config.json"
"""The SFT run's settings, in ``final/`` and in the run folder (written by :mod:`rl.sft_setup`)."""


def load_checkpoint(path: str):
    """The policy saved in ``path``; a folder without ``policy.json`` or a checkpoint that cannot load
    (bad ``policy.json``, unknown kind, missing base model, pickled weights) is a :class:`UsageError`."""
    from policies import CheckpointError, load_policy

    if not os.path.exists(os.path.join(path, "policy.json")):
        raise UsageError(
            f"checkpoint {path!r} holds no policy (no policy.json); train one with 'python -m rl.sft' "
            "or pass --checkpoint runs/<name>/final"
        )
    try:
        return load_policy(path)
    except CheckpointError as error:
        raise UsageError(str(error)) from error


def read_sft_config(directory: str) -> dict:
    """The ``sft_config.json`` in ``directory`` or its parent, as a dict ({} when absent)."""
    for folder in (directory, os.path.dirname(os.path.abspath(directory))):
        path = os.path.join(folder, SFT_CONFIG_JSON)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    return {}


def has_corpus(corpus_dir: str) -> bool:
    """Whether ``corpus_dir`` holds a finished corpus build (``build.json`` with splits)."""
    from corpus.dataset import read_build_info

    return bool(read_build_info(corpus_dir).get("splits"))


def resolve_corpus(checkpoint: str, corpus_dir: str | None) -> str:
    """``corpus_dir`` when given, else the corpus ``checkpoint`` was trained on, else the default."""
    corpus_dir = corpus_dir or read_sft_config(checkpoint).get("corpus_dir") or DEFAULT_CORPUS_DIR
    if not has_corpus(corpus_dir):
        raise UsageError(f"corpus_dir {corpus_dir!r} holds no corpus (no build.json); pass --corpus_dir")
    return corpus_dir


def load_split_rows(corpus_dir: str, split: str, columns: list[str]):
    """``columns`` (duplicates dropped, order kept) of ``split`` of ``corpus_dir`` as a
    ``datasets.Dataset``; a split the corpus lacks or one with no rows is a one-line error."""
    from corpus.dataset import load

    try:
        rows = load(corpus_dir, split).select_columns(list(dict.fromkeys(columns)))
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if len(rows) == 0:
        raise UsageError(f"the {split} split of {corpus_dir!r} has no rows")
    return rows


def check_image_size(dataset, policy: PolicyConfig, corpus_dir: str) -> None:
    """A tiny policy's vision tower is built for ``policy.image_size``: the corpus images must match
    (the views tiled 2x2 make an image twice their side)."""
    if policy.kind != "tiny":
        return  # a pretrained processor resizes whatever it gets
    width, height = dataset[0]["image"].size
    cells = 2 if policy.views == "tile" else 1
    if (width * cells, height * cells) != (policy.image_size, policy.image_size):
        raise UsageError(
            f"policy.image_size is {policy.image_size} but the {policy.views} images of {corpus_dir!r} "
            f"are {width * cells}x{height * cells} px; set --policy.image_size {width * cells} or build "
            f"the corpus with --size {policy.image_size // cells}"
        )
