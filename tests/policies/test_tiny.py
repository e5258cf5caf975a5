"""Properties of the tiny from-config policy: SFT batches, training, sampling, checkpoints."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from policies import SFTCollator, build_policy, load_policy
from policies.tiny import TinyPolicy, pixel_values
from tests.policies.conftest import favour_eos, tiny_config


def test_collate_puts_loss_on_code_and_eos_only(tiny_policy, images, codes):
    batch = tiny_policy.collate(images, codes)
    prompt = len(tiny_policy.prompt_ids)
    assert (batch["labels"][:, :prompt] == -100).all()
    assert batch["pixel_values"].shape == (3, 1, 3, 32, 32)
    for row, code in enumerate(codes):
        labels = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert labels[-1] == tiny_policy.eos_ids[0]
        assert tiny_policy.tokenizer.decode(labels[:-1]) == code
        assert batch["attention_mask"][row].sum() == prompt + len(labels)


def test_collate_stays_on_the_cpu_wherever_the_policy_is(tokenizer, images, codes):
    # The Trainer moves batches to the model's device. Seen on a GPU: a collator that built
    # them on the policy's device put prompts on cuda:0 and codes on the CPU, and collation in
    # DataLoader workers failed on the prompt ids moved to cuda:0 with the model.
    policy = TinyPolicy.build(tiny_config(), tokenizer=tokenizer).to("meta")  # stands in for cuda
    batch = policy.collate(images, codes)
    assert {value.device.type for value in batch.values()} == {"cpu"}
    assert policy.prompt_inputs(images)["pixel_values"].device.type == "meta"


def test_too_long_code_is_cut_without_eos(tokenizer, images, codes):
    policy = TinyPolicy.build(tiny_config(max_new_tokens=8), tokenizer=tokenizer)
    batch = policy.encode_example(images[0], codes[0])
    labels = batch["labels"][0][batch["labels"][0] != -100]
    assert len(labels) == 8 and policy.eos_ids[0] not in labels.tolist()


def test_steps_change_parameters_and_lower_loss(tiny_policy, images, codes):
    batch = tiny_policy.collate(images, codes)
    before = {name: p.detach().clone() for name, p in tiny_policy.model.named_parameters()}
    optimizer = torch.optim.AdamW(tiny_policy.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss = tiny_policy.model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert tiny_policy.model(**batch).loss.item() < losses[0] - 0.1
    changed = [name for name, p in tiny_policy.model.named_parameters() if not torch.equal(p, before[name])]
    assert any("vision_model" in n for n in changed) and any("text_model" in n for n in changed)
    assert len(changed) == len(before)


def test_save_load_gives_identical_logits_and_values(tiny_policy, images, codes, tmp_path):
    torch.nn.init.normal_(tiny_policy.value_head.weight)
    tokens = tiny_policy.collate(images, codes)["input_ids"][:, len(tiny_policy.prompt_ids) :]
    out = tiny_policy(images, tokens)
    loaded = load_policy(tiny_policy.save(str(tmp_path / "ckpt")))
    assert isinstance(loaded, TinyPolicy) and loaded.config == tiny_policy.config
    again = loaded(images, tokens)
    assert torch.equal(out.logits, again.logits) and torch.equal(out.values, again.values)
    assert out.values.shape == tokens.shape and out.logits.shape == (*tokens.shape, len(loaded.tokenizer))


def test_forward_is_response_aligned(tiny_policy, images, codes):
    batch = tiny_policy.collate(images, codes)
    prompt = len(tiny_policy.prompt_ids)
    tokens, mask = batch["input_ids"][:, prompt:], batch["attention_mask"][:, prompt:].bool()
    full = tiny_policy.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    out = tiny_policy(images, tokens, mask)
    torch.testing.assert_close(out.logits, full[:, prompt - 1 : -1])


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampled_logprobs_match_recomputed(tiny_policy, images, temperature, top_p):
    hook = favour_eos(tiny_policy)
    rollout = tiny_policy.sample(images, n=2, max_new_tokens=24, temperature=temperature, top_p=top_p)
    rows = [image for image in images for _ in range(2)]
    with torch.no_grad():
        recomputed = tiny_policy.logprobs_of(
            rows, rollout.tokens, rollout.mask, temperature=temperature, top_p=top_p
        )
    hook.remove()
    assert rollout.tokens.shape == rollout.logprobs.shape == rollout.mask.shape
    assert rollout.tokens.shape[0] == 6 and rollout.tokens.dtype == torch.long
    torch.testing.assert_close(recomputed, rollout.logprobs, atol=1e-4, rtol=0)
    assert (rollout.logprobs[rollout.mask] < 0).all() and (rollout.logprobs[~rollout.mask] == 0).all()


def test_mask_stops_after_eos(tiny_policy, images):
    hook = favour_eos(tiny_policy)
    rollout = tiny_policy.sample(images, n=4, max_new_tokens=24)
    hook.remove()
    eos, pad = tiny_policy.eos_ids[0], tiny_policy.tokenizer.pad_token_id
    ended = 0
    for tokens, mask, text in zip(rollout.tokens.tolist(), rollout.mask.tolist(), rollout.texts, strict=True):
        length = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        ended += eos in tokens
        assert mask == [True] * length + [False] * (len(tokens) - length)
        assert all(t == pad for t in tokens[length:])
        assert text == tiny_policy.tokenizer.decode(
            tokens[: length - (eos in tokens)], skip_special_tokens=True
        )
        assert not set(tokens[:length]) & set(tiny_policy.suppressed_ids)
    assert ended > 0


def test_greedy_is_deterministic(tiny_policy, images):
    first = tiny_policy.sample(images, n=2, max_new_tokens=12, greedy=True)
    second = tiny_policy.sample(images, n=2, max_new_tokens=12, greedy=True)
    assert torch.equal(first.tokens, second.tokens) and first.texts == second.texts
    assert torch.equal(first.tokens[0::2], first.tokens[1::2])


def test_reference_is_the_frozen_snapshot(tiny_policy, images, codes):
    batch = tiny_policy.collate(images, codes)
    tokens = batch["input_ids"][:, len(tiny_policy.prompt_ids) :]
    before = tiny_policy(images, tokens).logits.detach()
    with pytest.raises(RuntimeError, match="freeze_reference"), tiny_policy.reference():
        pass
    tiny_policy.freeze_reference()
    tiny_policy.model(**batch).loss.backward()
    torch.optim.SGD(tiny_policy.model.parameters(), lr=1.0).step()
    with torch.no_grad(), tiny_policy.reference():
        assert torch.equal(tiny_policy(images, tokens).logits, before)
    assert not torch.allclose(tiny_policy(images, tokens).logits, before)
    assert not any(p is q for p in tiny_policy.parameters() for q in tiny_policy._reference.parameters())


def test_pixel_values_accept_gray_rgb_float_and_pil():
    gray = np.full((64, 64), 255, dtype=np.uint8)
    forms = [gray, gray[..., None], np.ones((64, 64, 3), np.float32), Image.fromarray(gray).convert("RGB")]
    out = pixel_values(forms, 32)
    assert out.shape == (4, 1, 3, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out, torch.ones_like(out))


def test_build_policy_factory_uses_given_texts(images):
    policy = build_policy(tiny_config(vocab_size=300), texts=["cube(1);\n"] * 20)
    assert isinstance(policy, TinyPolicy) and len(policy.tokenizer) <= 300
    assert policy.sample(images[:1], max_new_tokens=4).tokens.shape == (1, 4)


def test_trainer_steps_on_collated_rows(tiny_policy, images, codes, tmp_path):
    from transformers import Trainer, TrainingArguments

    rows = [{"image": image, "code": code} for image, code in zip(images, codes, strict=True)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=3,
        learning_rate=1e-3,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    before = tiny_policy.model.lm_head.weight.detach().clone()
    collator = pickle.loads(pickle.dumps(SFTCollator(tiny_policy)))
    Trainer(model=tiny_policy.model, args=args, train_dataset=rows, data_collator=collator).train()
    assert not torch.equal(tiny_policy.model.lm_head.weight, before)
