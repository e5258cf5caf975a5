"""Properties of the pretrained + LoRA backend, on a random-weight Idefics3 checkpoint saved to disk."""

import pytest
import torch

from configs.policy import PolicyConfig
from policies import build_policy, load_policy
from policies.pretrained import PretrainedPolicy
from tests.policies.conftest import favour_eos

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


@pytest.fixture
def policy(pretrained_dir):
    torch.manual_seed(0)
    return build_policy(
        PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4, lora_alpha=8)
    )


def response(policy, images, codes):
    batch = policy.collate(images, codes)
    prompt = policy.prompt_inputs(images)["input_ids"].shape[1]
    return batch, batch["input_ids"][:, prompt:], batch["attention_mask"][:, prompt:].bool()


def step(policy, batch, tokens, mask, images):
    """One SFT + value step on everything that requires grad."""
    params = [p for p in policy.parameters() if p.requires_grad]
    loss = policy.model(**batch).loss + (policy(images, tokens, mask).values - 1).pow(2).mean()
    loss.backward()
    torch.optim.SGD(params, lr=0.5).step()


def test_only_adapters_and_value_head_train(policy, images, codes):
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert any(n.startswith("value_head.") for n in trainable)
    assert not any("vision" in n for n in trainable), "lora_text_only keeps adapters out of the vision tower"
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    batch, tokens, mask = response(policy, images, codes)
    for _ in range(2):  # lora_A has no gradient while lora_B is still zero
        policy.zero_grad()
        step(policy, batch, tokens, mask, images)
    for name, param in policy.named_parameters():
        assert torch.equal(param, before[name]) != (name in trainable), name


def test_save_load_gives_identical_logits_and_values(policy, images, codes, tmp_path):
    batch, tokens, mask = response(policy, images, codes)
    step(policy, batch, tokens, mask, images)
    with torch.no_grad():
        out = policy(images, tokens, mask)
        loaded = load_policy(policy.save(str(tmp_path / "ckpt")))
        again = loaded(images, tokens, mask)
    assert isinstance(loaded, PretrainedPolicy)
    assert torch.equal(out.logits, again.logits) and torch.equal(out.values, again.values)
    assert not torch.equal(out.values, torch.zeros_like(out.values))


def test_sampled_logprobs_match_recomputed(policy, images):
    hook = favour_eos(policy)
    rollout = policy.sample(images, n=2, max_new_tokens=16, temperature=0.8)
    with torch.no_grad():
        rows = [image for image in images for _ in range(2)]
        recomputed = policy.logprobs_of(rows, rollout.tokens, rollout.mask, temperature=0.8)
    hook.remove()
    torch.testing.assert_close(recomputed, rollout.logprobs, atol=1e-4, rtol=0)
    image_token = policy.tokenizer.convert_tokens_to_ids("<image>")
    assert image_token in policy.suppressed_ids and image_token not in rollout.tokens[rollout.mask].tolist()


def test_greedy_is_deterministic(policy, images):
    first = policy.sample(images, max_new_tokens=8, greedy=True)
    assert torch.equal(first.tokens, policy.sample(images, max_new_tokens=8, greedy=True).tokens)


def test_lora_targets_can_include_vision(pretrained_dir):
    config = PolicyConfig(
        kind="pretrained",
        model_name_or_path=pretrained_dir,
        lora_text_only=False,
        lora_target_modules=("q_proj", "v_proj"),
    )
    names = [n for n, p in build_policy(config).named_parameters() if p.requires_grad and "lora_" in n]
    assert any("vision" in n for n in names) and any("text_model" in n for n in names)
    assert all(".q_proj." in n or ".v_proj." in n for n in names)


def test_exemplars_reach_the_processor_and_survive_save_load(pretrained_dir, tmp_path):
    from policies.exemplars import ExemplarIndex
    from tests.policies.test_exemplars import rows

    config = PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4, lora_alpha=8,
                          exemplars=True)
    policy = build_policy(config)
    policy.exemplars = ExemplarIndex.build(rows(), pixels=8)
    row = {**rows()[0], "image": rows()[0]["views"][0]}
    prompt = policy.tokenizer.decode(policy.prompt_inputs([row])["input_ids"][0])
    assert "cube(100);" in prompt and "cube(10);" not in prompt
    loaded = load_policy(policy.save(str(tmp_path / "ckpt")))
    assert loaded.exemplars.codes == policy.exemplars.codes
