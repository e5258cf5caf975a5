"""The ``Policy`` interface, the tiny from-config image-to-code model and its SCAD
tokenizer, the pretrained-VLM + LoRA backend, and checkpoints.

Knows nothing about OpenSCAD.
"""

from __future__ import annotations

from collections.abc import Sequence

from safetensors import SafetensorError

from configs.policy import PolicyConfig
from policies.base import (
    CheckpointError,
    Policy,
    PolicyOutput,
    Rollout,
    first_line,
    read_policy_json,
)
from policies.inputs import PartInput, SFTCollator

__all__ = [
    "CheckpointError",
    "Policy",
    "PolicyConfig",
    "PolicyOutput",
    "PartInput",
    "Rollout",
    "SFTCollator",
    "build_policy",
    "load_policy",
]


def build_policy(config: PolicyConfig, texts: Sequence[str] | None = None) -> Policy:
    """A fresh policy of ``config.kind``; ``texts`` train the tiny policy's tokenizer (default: corpus)."""
    if config.kind == "tiny":
        from policies.tiny import TinyPolicy

        return TinyPolicy.build(config, texts=texts)
    from policies.pretrained import PretrainedPolicy

    return PretrainedPolicy.build(config)


def _load_tiny(directory: str) -> Policy:
    from policies.tiny import TinyPolicy

    return TinyPolicy.load(directory)


def _load_pretrained(directory: str) -> Policy:
    from policies.pretrained import PretrainedPolicy

    return PretrainedPolicy.load(directory)


LOADERS = {"tiny": _load_tiny, "pretrained": _load_pretrained}
"""How a checkpoint of each ``kind`` in ``policy.json`` loads."""


def load_policy(directory: str) -> Policy:
    """The policy :meth:`Policy.save` wrote to ``directory``, whatever its kind.

    Raises :class:`CheckpointError` (one line naming the folder) for an unusable ``policy.json``,
    an unknown kind, a missing base model, pickled weights (never unpickled: safetensors only) or
    weights that do not load.
    """
    kind, _ = read_policy_json(directory)
    loader = LOADERS.get(kind)
    if loader is None:
        raise CheckpointError(
            f"checkpoint {directory!r}: unknown policy kind {kind!r} in policy.json "
            f"(expected one of {', '.join(LOADERS)})"
        )
    try:
        return loader(directory)
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"checkpoint {directory!r} cannot be loaded: {first_line(error)}") from error
