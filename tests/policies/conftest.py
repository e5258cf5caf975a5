"""Fixtures for policy tests: a corpus-trained tokenizer, tiny configs and a saved tiny pretrained VLM.

Every model here is built from config with random weights: nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.policy import PolicyConfig
from policies.tokenizer import corpus_texts, train_tokenizer


def tiny_config(**overrides) -> PolicyConfig:
    """A test-sized tiny policy: 32 px image, 4 image tokens, 2 text layers of width 32."""
    values = dict(
        image_size=32,
        patch_size=8,
        scale_factor=2,
        vision_hidden=32,
        vision_layers=1,
        vision_heads=2,
        vision_intermediate=64,
        text_hidden=32,
        text_layers=2,
        text_heads=4,
        text_kv_heads=2,
        text_intermediate=64,
        max_position=512,
        max_new_tokens=256,
        vocab_size=600,
    )
    values.update(overrides)
    return PolicyConfig(**values)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(corpus_texts(300), vocab_size=600)


@pytest.fixture
def tiny_policy(tokenizer):
    from policies.tiny import TinyPolicy

    return TinyPolicy.build(tiny_config(), tokenizer=tokenizer)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(32, 32), dtype=np.uint8) for _ in range(3)]


@pytest.fixture(scope="session")
def codes():
    """Three short real programs (the smallest of a few dozen) for SFT batches."""
    return sorted(corpus_texts(40, seed0=1000), key=len)[:3]


def favour_eos(policy, bonus: float = 3.0):
    """Add ``bonus`` to the eos logit (a hook on lm_head) so random models stop early."""
    head = policy.model.get_output_embeddings()
    eos = policy.eos_ids[0]

    def hook(_module, _inputs, logits):
        logits = logits.clone()
        logits[..., eos] += bonus
        return logits

    return head.register_forward_hook(hook)


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory, tokenizer):
    """A random-weight Idefics3 model + processor (our tokenizer) saved like a hub checkpoint."""
    from tests.policies.hub_models import save_idefics3

    return save_idefics3(str(tmp_path_factory.mktemp("tiny_idefics3")), tokenizer)


def response(policy, images, codes):
    """``(sft batch, response tokens (B, T), mask (B, T))`` of the programs ``codes`` (each code's
    tokens and eos, right-padded; the batch has each row's real tokens first, policies.padding)."""
    batch = policy.collate(images, codes)
    rows = [policy.encode_code(code) + policy.eos_ids[:1] for code in codes]
    tokens = torch.full((len(rows), max(map(len, rows))), policy.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    for i, ids in enumerate(rows):
        tokens[i, : len(ids)], mask[i, : len(ids)] = torch.tensor(ids), True
    return batch, tokens, mask


def sft_steps(policy, batch, steps: int = 1) -> None:
    """``steps`` SGD steps of the SFT loss on every parameter that requires grad."""
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        policy.model(**batch).loss.backward()
        optimizer.step()


def four_views(seed: int, side: int = 16) -> tuple:
    """Four random grayscale pictures standing in for a part's iso, front, right and top views."""
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, size=(side, side), dtype=np.uint8) for _ in range(4))


@pytest.fixture
def parts():
    """Three parts; their prompts have three lengths (two sizes and none), their tiles one size."""
    from policies.inputs import PartInput

    return [PartInput(four_views(0), (135, 40, 7.5)), PartInput(four_views(1)),
            PartInput(four_views(2), (0.8, 13, 1999.96))]
