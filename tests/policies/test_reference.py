"""PPO's KL reference is the policy as ``freeze_reference`` found it: the SFT weights (issue 14, item 2).

The pretrained backend once disabled its adapters for the reference, so after LoRA SFT the KL
pulled PPO back to the base model and was not 0 at the first iteration. Both backends are
checked here: KL exactly 0 before the first update, the reference fixed after a step.
"""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from configs.policy import PolicyConfig
from policies import build_policy, load_policy
from policies.pretrained import REFERENCE
from policies.tiny import TinyPolicy
from tests.policies.conftest import response, sft_steps, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def logprobs(policy, images, tokens, mask, reference: bool = False):
    """Sampling-temperature (0.8) log-probs of the policy, or of its reference."""
    with torch.no_grad():
        if not reference:
            return policy.logprobs_of(images, tokens, mask, temperature=0.8)
        with policy.reference():
            return policy.logprobs_of(images, tokens, mask, temperature=0.8)


@pytest.fixture(params=["tiny", "pretrained"])
def sft_policy(request, tokenizer, pretrained_dir, images, codes):
    """A policy after two SFT steps: the pretrained adapter has left zero and moved off the base."""
    torch.manual_seed(0)
    if request.param == "tiny":
        policy = TinyPolicy.build(tiny_config(), tokenizer=tokenizer)
    else:
        config = PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4, lora_alpha=8)
        policy = build_policy(config)
    sft_steps(policy, response(policy, images, codes)[0], steps=2)
    return policy


def test_kl_is_zero_before_the_first_update_and_the_reference_stays_put(sft_policy, images, codes):
    batch, tokens, mask = response(sft_policy, images, codes)
    sft_policy.freeze_reference()
    before = logprobs(sft_policy, images, tokens, mask)
    reference = logprobs(sft_policy, images, tokens, mask, reference=True)
    assert torch.equal(reference, before), "KL to the reference must be exactly 0 at iteration 1"
    sft_steps(sft_policy, batch)
    after = logprobs(sft_policy, images, tokens, mask)
    assert (after - before).abs().max() > 1e-3, "the policy moves"
    assert torch.equal(logprobs(sft_policy, images, tokens, mask, reference=True), reference)


def test_reference_leaves_trainable_parameters_as_they_were(sft_policy, images):
    sft_policy.freeze_reference()
    trainable = [n for n, p in sft_policy.named_parameters() if p.requires_grad]
    with sft_policy.reference():
        assert not any(p.requires_grad for n, p in sft_policy.named_parameters() if n not in trainable)
    assert [n for n, p in sft_policy.named_parameters() if p.requires_grad] == trainable
    assert not any(REFERENCE in n for n in trainable)


def test_pretrained_reference_is_the_sft_adapter_not_the_base(pretrained_dir, images, codes):
    config = PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4, lora_alpha=8)
    policy = build_policy(config)
    batch, tokens, mask = response(policy, images, codes)
    with pytest.raises(RuntimeError, match="freeze_reference"), policy.reference():
        pass
    sft_steps(policy, batch, steps=2)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    policy.freeze_reference()
    sft_steps(policy, batch)
    base = AutoModelForImageTextToText.from_pretrained(pretrained_dir).eval()
    with torch.no_grad(), policy.reference():
        reference = policy.model(**inputs).logits
    with torch.no_grad(), policy.model.disable_adapter():
        assert torch.equal(policy.model(**inputs).logits, base(**inputs).logits)
    assert not torch.allclose(reference, base(**inputs).logits, atol=1e-3)


def test_pretrained_reference_survives_save_load_and_resume(pretrained_dir, images, codes, tmp_path):
    config = PolicyConfig(kind="pretrained", model_name_or_path=pretrained_dir, lora_r=4, lora_alpha=8)
    policy = build_policy(config)
    batch, tokens, mask = response(policy, images, codes)
    sft_steps(policy, batch, steps=2)
    policy.freeze_reference()
    reference = logprobs(policy, images, tokens, mask, reference=True)
    sft_steps(policy, batch)
    loaded = load_policy(policy.save(str(tmp_path / "ppo-checkpoint")))
    assert torch.equal(logprobs(loaded, images, tokens, mask, reference=True), reference)
    assert torch.equal(logprobs(loaded, images, tokens, mask), logprobs(policy, images, tokens, mask))
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == trainable
    policy.load_state_dict(loaded.state_dict())  # how rl.ppo_state resumes: every key must fit
