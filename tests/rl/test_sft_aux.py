"""rl.sft_aux: the family objective adds exactly its weighted cross-entropy, trains the vision
tower, is off for one-family corpora, and never reaches the saved policy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open

from configs.policy import PolicyConfig
from policies import SFTCollator
from rl.sft_aux import FamilyCollator, ImageAuxModel, corpus_families, image_features
from rl.sft_trainer import training_model
from tests.policies.conftest import tiny_config

FAMILIES = ("bracket", "plate", "washer")


@pytest.fixture
def policy():
    from policies.tiny import TinyPolicy
    from policies.tokenizer import corpus_texts, train_tokenizer

    torch.manual_seed(0)
    return TinyPolicy.build(tiny_config(), tokenizer=train_tokenizer(corpus_texts(100), vocab_size=400))


def rows(n: int = 4):
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.integers(0, 255, (32, 32), dtype=np.uint8),
            "code": f"cube({i + 1});",
            "family": FAMILIES[i % 3],
        }
        for i in range(n)
    ]


def test_collator_adds_each_rows_family_index(policy):
    batch = FamilyCollator(SFTCollator(policy), FAMILIES)(rows(5))
    assert batch["family"].tolist() == [0, 1, 2, 0, 1]
    assert {"input_ids", "labels", "pixel_values"} <= set(batch)


def test_loss_is_code_loss_plus_weighted_family_cross_entropy(policy):
    batch = FamilyCollator(SFTCollator(policy), FAMILIES)(rows())
    model = ImageAuxModel(policy.model, FAMILIES, weight=0.7)
    family = batch.pop("family")
    with torch.no_grad():
        plain = policy.model(**batch)
        combined = model(family=family, **batch)
        assert torch.allclose(model(**batch).loss, plain.loss)  # no family: the policy's own loss
        features = image_features(plain.image_hidden_states, len(family))
        expected = plain.loss + 0.7 * torch.nn.functional.cross_entropy(model.family_head(features), family)
    assert features.shape == (4, policy.model.config.text_config.hidden_size)
    assert torch.allclose(combined.loss, expected)
    stats = model.pop_stats()
    assert 0.0 <= stats["image/family_acc"] <= 1.0 and stats["image/family_loss"] > 0
    assert model.pop_stats() == {}  # reset by the first call


def test_extra_images_are_seeded_draws_that_join_the_family_loss(policy):
    from datasets import Dataset

    table = Dataset.from_list(rows(6))
    make = lambda seed: FamilyCollator(SFTCollator(policy), FAMILIES, table, extra=5, seed=seed)  # noqa: E731
    first, again, other = make(0)(rows(2)), make(0)(rows(2)), make(1)(rows(2))
    assert first["extra_pixel_values"].shape == (5, 1, 3, 32, 32)
    assert torch.equal(first["extra_family"], again["extra_family"])
    assert torch.equal(first["extra_pixel_values"], again["extra_pixel_values"])
    assert not torch.equal(first["extra_pixel_values"], other["extra_pixel_values"])
    model = ImageAuxModel(policy.model, FAMILIES, weight=1.0)
    with torch.no_grad():
        with_extra = model(**first).loss
        stats = model.pop_stats()
        first.pop("extra_pixel_values"), first.pop("extra_family")
        without = model(**first).loss
    assert not torch.allclose(with_extra, without)
    correct = stats["image/family_acc"] * 7  # 2 batch rows + 5 extra images: a whole number right
    assert 0 <= correct <= 7 and abs(correct - round(correct)) < 1e-9


def test_dataloader_workers_draw_different_extra_images(policy):
    from datasets import Dataset

    table = Dataset.from_list(rows(30))
    collator = FamilyCollator(SFTCollator(policy), FAMILIES, table, extra=6, seed=0)
    loader = torch.utils.data.DataLoader(rows(4), batch_size=2, num_workers=2, collate_fn=collator)
    first, second = list(loader)  # one batch from each worker
    assert not torch.equal(first["extra_pixel_values"], second["extra_pixel_values"])
    again = list(torch.utils.data.DataLoader(rows(4), batch_size=2, num_workers=2, collate_fn=collator))
    assert torch.equal(first["extra_pixel_values"], again[0]["extra_pixel_values"])  # still seeded


def test_family_objective_alone_moves_the_vision_tower(policy):
    batch = FamilyCollator(SFTCollator(policy), FAMILIES)(rows())
    family = batch.pop("family")
    grads = {}
    for weight in (0.0, 1.0):
        policy.model.zero_grad()
        model = ImageAuxModel(policy.model, FAMILIES, weight=weight)
        model(family=family, **batch).loss.backward()
        grads[weight] = [p.grad.clone() for p in policy.model.model.vision_model.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(grads[0.0], grads[1.0], strict=True))


def test_objective_is_off_for_one_family_or_zero_weight(policy, tiny_corpus):
    from datasets import Dataset

    from rl.sft_setup import load_splits
    from tests.rl.conftest import sft_config

    train, _ = load_splits(tiny_corpus, PolicyConfig())
    config = sft_config(tiny_corpus, "/tmp", "aux")
    assert len(corpus_families(train)) >= 2
    assert isinstance(training_model(config, policy, train)[0], ImageAuxModel)
    off = sft_config(tiny_corpus, "/tmp", "aux", image_aux_weight=0)
    assert training_model(off, policy, train)[0] is policy.model
    imported = Dataset.from_dict({"code": ["cube(1);"] * 3, "family": ["imported"] * 3})
    assert training_model(config, policy, imported)[0] is policy.model
    assert corpus_families(Dataset.from_dict({"code": ["cube(1);"]})) == ()


def test_sft_logs_the_objective_and_saves_a_policy_without_its_head(smoke_run):
    completed, run_dir = smoke_run
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "image/family_acc=" in completed.stdout + completed.stderr
    state = json.loads(open(os.path.join(run_dir, "checkpoint-4", "trainer_state.json")).read())
    assert all("image/family_loss" in entry for entry in state["log_history"] if "loss" in entry)
    with safe_open(os.path.join(run_dir, "checkpoint-4", "model.safetensors"), "pt") as checkpoint:
        assert any(key.startswith("family_head.") for key in checkpoint.keys())  # resumable with its head
    with safe_open(os.path.join(run_dir, "final", "model.safetensors"), "pt") as final:
        assert not any("family_head" in key for key in final.keys())


def param_rows(n: int = 4):
    """rows() with the corpus's params (JSON) and extents: plates of growing length, washers."""
    out = rows(n)
    for i, row in enumerate(out):
        params = {"plate": {"length": 10.0 * (i + 1), "fn": 32, "variant": "round"},
                  "washer": {"outer_d": 5.0 + i, "inner_d": 2.0}}.get(row["family"], {})
        row.update(params=json.dumps(params), extents=[10.0 * (i + 1), 5.0 + i % 2, 1.0 + i])
    return out


def test_param_table_z_scores_each_familys_numbers_and_the_log_size():
    from rl.sft_aux import EXTENTS, ParamTable

    table = ParamTable(param_rows(6))  # plates: rows 1 and 4; washers: 2 and 5; brackets: none
    assert "plate/length" in table.keys and "washer/outer_d" in table.keys and set(EXTENTS) <= set(table.keys)
    assert "plate/fn" not in table.keys and "washer/inner_d" not in table.keys, "constant: no signal"
    assert not any(key.endswith("variant") for key in table.keys), "strings are not regressed"
    values, mask = table.targets(param_rows(6))
    length = table.keys.index("plate/length")
    assert mask[:, length].tolist() == [0, 1, 0, 0, 1, 0]
    assert values[1, length] == pytest.approx(-1.0) and values[4, length] == pytest.approx(1.0)
    assert mask[:, table.keys.index("extent/z")].all(), "every part has a size"
    assert values[:, table.keys.index("extent/z")].mean() == pytest.approx(0.0, abs=1e-6)


def test_param_objective_adds_its_masked_error_and_reaches_the_vision_tower(policy):
    from rl.sft_aux import ParamTable, param_error

    table = ParamTable(param_rows())
    batch = FamilyCollator(SFTCollator(policy), FAMILIES, params=table)(param_rows())
    family, values, mask = batch.pop("family"), batch.pop("param_values"), batch.pop("param_mask")
    assert values.shape == mask.shape == (4, len(table.keys))
    torch.manual_seed(0)
    model = ImageAuxModel(policy.model, FAMILIES, weight=0.0, params=len(table.keys), param_weight=2.0)
    with torch.no_grad():
        plain = policy.model(**batch)
        features = image_features(plain.image_hidden_states, len(family))
        error = param_error(model.param_head(features), values, mask)
        combined = model(family=family, param_values=values, param_mask=mask, **batch).loss
    assert combined == pytest.approx(float(plain.loss + 2.0 * error), rel=1e-5) and error > 0
    policy.model.zero_grad()
    model(family=family, param_values=values, param_mask=mask, **batch).loss.backward()
    moved = [p.grad for p in policy.model.model.vision_model.parameters() if p.grad is not None]
    assert moved and any(g.abs().sum() > 0 for g in moved)
    assert "image/param_loss" in model.pop_stats()
