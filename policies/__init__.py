"""The ``Policy`` interface, the tiny from-config image-to-code model and its SCAD
tokenizer, the pretrained-VLM + LoRA backend, and checkpoints.

Knows nothing about OpenSCAD.
"""

from __future__ import annotations

from collections.abc import Sequence

from configs.policy import PolicyConfig
from policies.base import Policy, PolicyOutput, Rollout, SFTCollator, read_policy_json

__all__ = ["Policy", "PolicyConfig", "PolicyOutput", "Rollout", "SFTCollator", "build_policy", "load_policy"]


def build_policy(config: PolicyConfig, texts: Sequence[str] | None = None) -> Policy:
    """A fresh policy of ``config.kind``; ``texts`` train the tiny policy's tokenizer (default: corpus)."""
    if config.kind == "tiny":
        from policies.tiny import TinyPolicy

        return TinyPolicy.build(config, texts=texts)
    from policies.pretrained import PretrainedPolicy

    return PretrainedPolicy.build(config)


def load_policy(directory: str) -> Policy:
    """The policy :meth:`Policy.save` wrote to ``directory``, whatever its kind."""
    kind, _ = read_policy_json(directory)
    if kind == "tiny":
        from policies.tiny import TinyPolicy

        return TinyPolicy.load(directory)
    if kind == "pretrained":
        from policies.pretrained import PretrainedPolicy

        return PretrainedPolicy.load(directory)
    raise ValueError(f"{directory}: unknown policy kind {kind!r} in policy.json")
