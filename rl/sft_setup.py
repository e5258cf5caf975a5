"""What ``rl.sft`` prepares before training: the corpus, its splits, and the run folder's initial policy.

The run folder (``runs_dir/name``) is what makes a killed run resumable::

    runs/sft/initial/        the policy as built (tokenizer trained on the train split's code),
                             saved once: a re-run loads it instead of building a new one
    runs/sft/checkpoint-N/   transformers.Trainer checkpoints (model, optimizer, scheduler, RNG)
    runs/sft/final/          the trained policy (Policy.save), plus sft_config.json
    runs/sft/sft_summary.json

Every problem with the input is a :class:`configs.cli.UsageError` naming it; what other
commands read back from these folders is :mod:`rl.checkpoint`.
"""

from __future__ import annotations

import os

from configs.cli import UsageError
from configs.policy import PolicyConfig
from configs.sft import DEFAULT_CORPUS_DIR, SFTConfig
from rl.checkpoint import SFT_CONFIG_JSON, has_corpus
from rl.files import write_json

INITIAL = "initial"
FINAL = "final"


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
    from corpus.build import BuildSettings, build

    workers = (os.cpu_count() or 1) if config.corpus_workers is None else config.corpus_workers
    print(f"rl.sft: building the corpus: {config.corpus_n} parts into {corpus_dir} ({workers} workers)")
    try:
        settings = BuildSettings(n=config.corpus_n, out=corpus_dir, seed=config.corpus_seed, workers=workers)
        info = build(settings, progress=progress)
    except UsageError as error:
        raise UsageError(f"cannot build the corpus: {error}") from None
    if not info.get("splits"):
        raise UsageError(f"the corpus build into {corpus_dir!r} did not finish")
    return corpus_dir


class TrainingDiverged(RuntimeError):
    """SFT logged a loss or gradient norm that is not finite: the weights are no longer usable
    (raised by :class:`rl.sft_callbacks.StopOnNonFinite`)."""


def load_splits(corpus_dir: str, policy: PolicyConfig):
    """``(train, val)`` datasets of the corpus: what ``policy`` is shown (:func:`input_columns`),
    code and family (val also id and mesh_path).

    Train also has ``length`` (characters of code), read by the Trainer's length-grouped sampler."""
    from corpus.dataset import load
    from policies.inputs import input_columns

    try:
        columns = input_columns(policy)
        wanted = [*columns, "code", "family", "params", "extents"]
        train = load(corpus_dir, "train").select_columns(list(dict.fromkeys(wanted)))
        train = train.add_column("length", [len(code) for code in train["code"]])
        val_columns = dict.fromkeys(["id", *columns, "code", "mesh_path"])
        val = load(corpus_dir, "val").select_columns(list(val_columns))
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if len(train) == 0:
        raise UsageError(f"the train split of {corpus_dir!r} is empty")
    return train, val


def _first_difference(saved: PolicyConfig, wanted: PolicyConfig) -> str | None:
    old, new = saved.to_dict(), wanted.to_dict()
    for key in old:
        if key != "tokenizer_path" and old[key] != new[key]:
            return f"policy.{key}={old[key]!r} (now {new[key]!r})"
    return None


def initial_policy(config: SFTConfig, run_dir: str, train):
    """The run's starting policy: loaded from ``run_dir/initial``, else built (tokenizer trained on
    ``train``'s code; with ``policy.exemplars``, the exemplar index of ``train``) and saved there.

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
    policy = build_policy(config.policy, texts=list(train["code"]))
    if config.policy.exemplars:
        from policies.exemplars import ExemplarIndex

        columns = [c for c in ("id", "views", "code", "extents") if c in train.column_names]
        policy.exemplars = ExemplarIndex.build(train.select_columns(columns))  # sizes: --retrieve scales
    policy.save(directory + ".tmp")
    os.replace(directory + ".tmp", directory)  # a kill mid-save leaves no half-written initial/
    return policy


def write_config(config: SFTConfig, directory: str) -> str:
    """Write the run's settings as ``sft_config.json`` in ``directory`` (read back by rl.eval)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, SFT_CONFIG_JSON)
    write_json(path, config.to_dict())
    return path


def save_final(policy, config: SFTConfig, run_dir: str) -> str:
    """Save the trained policy to ``run_dir/final`` with the run's ``sft_config.json``."""
    directory = os.path.join(run_dir, FINAL)
    policy.save(directory)
    write_config(config, directory)
    return directory
