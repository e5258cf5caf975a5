"""What ``rl.sft`` prepares before training: the corpus, its splits, and the run folder's initial policy.

The run folder (``runs_dir/name``) is what makes a killed run resumable::

    runs/sft/initial/        the policy as built (tokenizer trained on the train split's code),
                             saved once: a re-run loads it instead of building a new one
    runs/sft/checkpoint-N/   transformers.Trainer checkpoints (model, optimizer, scheduler, RNG)
    runs/sft/final/          the trained policy (Policy.save), plus sft_config.json
    runs/sft/sft_summary.json

Every problem with the input is a :class:`rl.cli.UsageError` naming it.
"""

from __future__ import annotations

import json
import os

from configs.policy import PolicyConfig
from configs.sft import DEFAULT_CORPUS_DIR, SFTConfig
from rl.cli import UsageError, write_json

INITIAL = "initial"
FINAL = "final"
CONFIG_JSON = "sft_config.json"


def has_corpus(corpus_dir: str) -> bool:
    """Whether ``corpus_dir`` holds a finished corpus build (``build.json`` with splits)."""
    from corpus.dataset import read_build_info

    return bool(read_build_info(corpus_dir).get("splits"))


def ensure_corpus(config: SFTConfig, progress: bool = True) -> str:
    """``config.corpus_dir``, built first when it holds no corpus and ``build_corpus`` allows it."""
    corpus_dir = config.corpus_dir
    if has_corpus(corpus_dir):
        return corpus_dir
    default = os.path.normpath(corpus_dir) == os.path.normpath(DEFAULT_CORPUS_DIR)
    if config.build_corpus == "no" or (config.build_corpus == "auto" and not default):
        raise UsageError(
            f"corpus_dir {corpus_dir!r} holds no corpus (no build.json); build one with "
            f"'python -m corpus.build --n {config.corpus_n} --out {corpus_dir}' or pass --build_corpus yes"
        )
    from corpus._cli import UsageError as CorpusUsageError
    from corpus.build import BuildSettings, build

    workers = (os.cpu_count() or 1) if config.corpus_workers is None else config.corpus_workers
    print(f"rl.sft: building the corpus: {config.corpus_n} parts into {corpus_dir} ({workers} workers)")
    try:
        settings = BuildSettings(n=config.corpus_n, out=corpus_dir, seed=config.corpus_seed, workers=workers)
        info = build(settings, progress=progress)
    except CorpusUsageError as error:
        raise UsageError(f"cannot build the corpus: {error}") from None
    if not info.get("splits"):
        raise UsageError(f"the corpus build into {corpus_dir!r} did not finish")
    return corpus_dir


def load_splits(corpus_dir: str):
    """``(train, val)`` datasets of the corpus: image, code and family (val also id and mesh_path).

    Train also has ``length`` (characters of code), read by the Trainer's length-grouped sampler."""
    from corpus.dataset import load

    try:
        train = load(corpus_dir, "train").select_columns(["image", "code", "family"])
        train = train.add_column("length", [len(code) for code in train["code"]])
        val = load(corpus_dir, "val").select_columns(["id", "image", "code", "mesh_path"])
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if len(train) == 0:
        raise UsageError(f"the train split of {corpus_dir!r} is empty")
    return train, val


def check_image_size(dataset, policy: PolicyConfig, corpus_dir: str) -> None:
    """A tiny policy's vision tower is built for ``policy.image_size``: the corpus images must match."""
    if policy.kind != "tiny":
        return  # a pretrained processor resizes whatever it gets
    width, height = dataset[0]["image"].size
    if (width, height) != (policy.image_size, policy.image_size):
        raise UsageError(
            f"policy.image_size is {policy.image_size} but the images of {corpus_dir!r} are "
            f"{width}x{height} px; set --policy.image_size {width} or build the corpus with --size "
            f"{policy.image_size}"
        )


def _first_difference(saved: PolicyConfig, wanted: PolicyConfig) -> str | None:
    old, new = saved.to_dict(), wanted.to_dict()
    for key in old:
        if key != "tokenizer_path" and old[key] != new[key]:
            return f"policy.{key}={old[key]!r} (now {new[key]!r})"
    return None


def initial_policy(config: SFTConfig, run_dir: str, train_codes):
    """The run's starting policy: loaded from ``run_dir/initial``, else built and saved there.

    Saving it once makes a resumed run rebuild exactly the same tokenizer and model before
    the Trainer loads the checkpoint's weights. A run folder started with another policy
    config is refused (the checkpoints would not fit the model).
    """
    from policies import build_policy, load_policy
    from policies.base import read_policy_json

    directory = os.path.join(run_dir, INITIAL)
    if os.path.exists(os.path.join(directory, "policy.json")):
        _, saved = read_policy_json(directory)
        difference = _first_difference(saved, config.policy)
        if difference:
            raise UsageError(
                f"{run_dir!r} was started with {difference}; use another --name or delete that folder"
            )
        return load_policy(directory)
    policy = build_policy(config.policy, texts=list(train_codes))
    policy.save(directory + ".tmp")
    os.replace(directory + ".tmp", directory)  # a kill mid-save leaves no half-written initial/
    return policy


def write_config(config: SFTConfig, directory: str) -> str:
    """Write the run's settings as ``sft_config.json`` in ``directory`` (read back by rl.eval)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CONFIG_JSON)
    write_json(path, config.to_dict())
    return path


def read_config(directory: str) -> dict:
    """The ``sft_config.json`` in ``directory`` or its parent, as a dict ({} when absent)."""
    for folder in (directory, os.path.dirname(os.path.abspath(directory))):
        path = os.path.join(folder, CONFIG_JSON)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    return {}
