"""Fixtures for the rl entry points: a 40-part corpus of fast families and one tiny SFT run.

Both are built once per test session (about 20 s and 35 s on a busy 2-core machine). The
tiny policy (128 px image, 32 px patches -> 4 image tokens, 2 text layers of width 32,
vocabulary 400) is given as ``--field value`` overrides, the way a user would. The PPO tests
build theirs in process with :func:`build_tiny_policy`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST_FAMILIES = ("panel", "pipe_fitting", "plate", "profile", "washer")
"""Families whose programs render in about 0.1 s."""

TINY = {
    "policy.patch_size": 32,
    "policy.scale_factor": 2,
    "policy.vision_hidden": 32,
    "policy.vision_layers": 1,
    "policy.vision_heads": 2,
    "policy.vision_intermediate": 64,
    "policy.text_hidden": 32,
    "policy.text_layers": 2,
    "policy.text_intermediate": 64,
    "policy.vocab_size": 400,
    "policy.max_new_tokens": 128,
    "policy.max_position": 512,
    "per_device_batch_size": 4,
    "logging_steps": 1,
    "eval_samples": 2,
    "eval_max_new_tokens": 24,
    "threads": 1,
}


TINY_POLICY = [
    "views=tile", "image_size=256", "patch_size=64", "scale_factor=2", "vision_hidden=32", "vision_layers=1",
    "vision_heads=2", "vision_intermediate=64", "text_hidden=32", "text_layers=2", "text_heads=4",
    "text_kv_heads=2", "text_intermediate=64", "max_position=256", "max_new_tokens=16", "vocab_size=400",
]
"""The PPO tests' tiny policy (``configs.policy`` overrides of the ``tiny`` preset)."""


def build_tiny_policy(seed: int | None = None):
    """A fresh :data:`TINY_POLICY` built from config, its tokenizer trained on 60 corpus programs;
    ``seed`` (if given) seeds torch first, so that the initial weights are reproducible."""
    import torch

    from configs.policy import load_policy_config
    from policies import build_policy
    from policies.tokenizer import corpus_texts

    if seed is not None:
        torch.manual_seed(seed)
    return build_policy(load_policy_config("tiny", TINY_POLICY), texts=corpus_texts(60))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes a minute or more here (deselect with -m 'not slow')")


def sft_args(corpus_dir: str, runs_dir: str, name: str, **overrides) -> list[str]:
    """``--field value`` options of a tiny rl.sft run (``overrides`` use dotted keys as ``policy__x``)."""
    values = {"corpus_dir": corpus_dir, "runs_dir": runs_dir, "name": name, **TINY}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


def sft_config(corpus_dir: str, runs_dir: str, name: str, **overrides):
    """The :class:`configs.sft.SFTConfig` of :func:`sft_args`."""
    from configs.loader import load
    from configs.sft import SFTConfig

    values = {"corpus_dir": corpus_dir, "runs_dir": runs_dir, "name": name, **TINY}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load(SFTConfig, None, [f"{k}={v}" for k, v in values.items()])


def run_module(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m module args`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    """A 40-part corpus of fast families; splits 60/20/20 so val and test have a few rows."""
    if shutil.which("openscad") is None:
        pytest.skip("OpenSCAD CLI not installed (apt-get install openscad)")
    from corpus.build import BuildSettings, build

    out = str(tmp_path_factory.mktemp("rl") / "corpus")
    settings = BuildSettings(
        n=40, out=out, workers=0, families=FAST_FAMILIES, holdout=("panel",), fractions=(0.6, 0.2, 0.2)
    )
    info = build(settings, progress=False)
    assert info["splits"]["train"] >= 8 and info["splits"]["val"] >= 2 and info["splits"]["test"] >= 2
    return out


@pytest.fixture(scope="session")
def smoke_run(tiny_corpus, tmp_path_factory):
    """``python -m rl.sft`` for 4 steps of the tiny policy, as a subprocess: (completed process, run dir)."""
    runs = str(tmp_path_factory.mktemp("runs"))
    args = sft_args(tiny_corpus, runs, "smoke", max_steps=4, save_steps=2, eval_steps=2)
    return run_module("rl.sft", *args), os.path.join(runs, "smoke")
