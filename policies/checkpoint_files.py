"""What a saved policy folder must hold, read without trusting it.

``policy.json`` (the backend's ``kind`` and its :class:`~configs.policy.PolicyConfig`) and the
weights as safetensors: :func:`read_policy_json` and :func:`require_safetensors` raise a
:class:`CheckpointError` whose message is one line naming the folder and what is wrong.
Pickled weights are refused, never read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from configs.policy import PolicyConfig

POLICY_JSON = "policy.json"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message is one line naming the folder and why."""


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
"""Weight files in torch's pickle format: never loaded (unpickling runs arbitrary code)."""


def first_line(error: BaseException) -> str:
    """``TypeName: first line of the message`` of ``error``, for one-line reports."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def read_policy_json(directory: str) -> tuple[str, PolicyConfig]:
    """``(kind, config)`` of a saved policy; :class:`CheckpointError` if ``policy.json`` is unusable."""
    where = f"checkpoint {directory!r}: {POLICY_JSON}"
    try:
        with open(os.path.join(directory, POLICY_JSON), encoding="utf-8") as fh:
            saved = json.load(fh)
    except OSError as error:
        raise CheckpointError(f"{where} cannot be read ({first_line(error)})") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{where} is not valid JSON ({first_line(error)})") from None
    kind = saved.get("kind") if isinstance(saved, dict) else None
    if not isinstance(kind, str) or not isinstance(saved.get("config"), dict):
        raise CheckpointError(f"{where} needs a 'kind' string and a 'config' object")
    try:
        return kind, PolicyConfig.from_dict(saved["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{where} has a bad config: {first_line(error)}") from None


def require_safetensors(directory: str, names: Sequence[str]) -> None:
    """Raise :class:`CheckpointError` unless ``directory`` holds one of the safetensors files ``names``.

    Pickled weights (``pytorch_model.bin``, ``adapter_model.bin``, ...) are refused, never read:
    loading them would unpickle, which can run any code.
    """
    if any(os.path.isfile(os.path.join(directory, name)) for name in names):
        return
    pickled = sorted(
        (n for n in os.listdir(directory) if n.lower().endswith(PICKLE_SUFFIXES)),
        key=lambda n: ("model" not in n, n),  # name the weights, not training_args.bin
    )
    if pickled:
        raise CheckpointError(
            f"checkpoint {directory!r} holds pickled weights ({pickled[0]}), which are never loaded "
            f"(unpickling can run code); re-save it as {names[0]}"
        )
    raise CheckpointError(f"checkpoint {directory!r} has no weights file {names[0]}")
