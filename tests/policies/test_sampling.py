"""Sampling draws from exactly the distribution the log-probs describe (issue 14, item 1).

``Policy.sample`` once left ``top_k`` unset, and transformers filled in 50: tokens came from a
top-50 truncation while every log-prob used the full softmax. These tests check the logits
processors ``generate`` really runs (both backends, under a checkpoint whose
``generation_config.json`` asks for top-k, repetition penalty, min-p, ...), and that empirical
token frequencies of a high-entropy tiny model match the probabilities of ``token_logprobs``.
"""

import shutil

import numpy as np
import pytest
import torch
from scipy.stats import chi2
from transformers import GenerationConfig
from transformers.generation.logits_process import TopPLogitsWarper

from configs.policy import PolicyConfig
from policies import build_policy
from policies.base import token_logprobs, top_p_filter
from policies.tiny import TinyPolicy, build_model
from tests.policies.conftest import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

HOSTILE = dict(
    do_sample=True,
    temperature=0.3,
    top_k=1,
    top_p=0.5,
    min_p=0.1,
    typical_p=0.9,
    epsilon_cutoff=1e-3,
    repetition_penalty=1.05,
    no_repeat_ngram_size=3,
    min_length=5,
    min_new_tokens=2,
    bad_words_ids=[[5]],
    begin_suppress_tokens=[7],
    exponential_decay_length_penalty=(2, 1.5),
    renormalize_logits=True,
)
"""Sampling defaults a checkpoint may ship (Qwen2-VL's asks for top_k=1, repetition_penalty=1.05)."""

SUPPRESS, TEMPERATURE, TOP_P = "SuppressTokensLogitsProcessor", "TemperatureLogitsWarper", "TopPLogitsWarper"


@pytest.fixture
def hostile_tiny(tokenizer):
    """A tiny policy whose model arrives with :data:`HOSTILE` generation defaults."""
    config = tiny_config()
    model = build_model(config, tokenizer)
    for key, value in HOSTILE.items():
        setattr(model.generation_config, key, value)
    return TinyPolicy(config, model, tokenizer)


@pytest.fixture
def hostile_pretrained(pretrained_dir, tmp_path):
    """A pretrained + LoRA policy built from a checkpoint whose generation_config.json is :data:`HOSTILE`."""
    directory = tmp_path / "hostile"
    shutil.copytree(pretrained_dir, directory)
    generation = GenerationConfig.from_pretrained(pretrained_dir)
    generation.update(**HOSTILE)
    generation.save_pretrained(directory)
    config = PolicyConfig(kind="pretrained", model_name_or_path=str(directory), lora_r=4, lora_alpha=8)
    return build_policy(config)


def effective_generation(policy, monkeypatch, **sample_args):
    """``(generation_config, processor class names)`` that ``generate`` really used in ``policy.sample``."""
    model = policy.model.get_base_model() if hasattr(policy.model, "get_base_model") else policy.model
    seen = {}
    original = model._get_logits_processor

    def spy(generation_config, *args, **kwargs):
        seen["config"] = generation_config
        seen["processors"] = original(generation_config, *args, **kwargs)
        return seen["processors"]

    monkeypatch.setattr(model, "_get_logits_processor", spy)
    images = [np.zeros((32, 32), np.uint8)]
    policy.sample(images, n=2, max_new_tokens=3, **sample_args)
    return seen["config"], [type(p).__name__ for p in seen["processors"]]


@pytest.mark.parametrize("backend", ["hostile_tiny", "hostile_pretrained"])
@pytest.mark.parametrize(
    "sample_args, expected",
    [
        (dict(temperature=1.0, top_p=1.0), [SUPPRESS]),
        (dict(temperature=0.7, top_p=0.9), [SUPPRESS, TEMPERATURE, TOP_P]),
        (dict(greedy=True), [SUPPRESS]),
    ],
)
def test_generate_runs_only_what_logprobs_model(backend, sample_args, expected, request, monkeypatch):
    policy = request.getfixturevalue(backend)
    config, processors = effective_generation(policy, monkeypatch, **sample_args)
    assert processors == expected
    assert sorted(config.suppress_tokens) == sorted(policy.suppressed_ids)
    if not sample_args.get("greedy"):
        assert config.do_sample and config.top_k == 0 and config.num_beams == 1
        assert config.temperature == sample_args["temperature"] and config.top_p == sample_args["top_p"]


def test_top_p_filter_is_transformers_rule():
    logits = torch.randn(4, 7, 300) * 3
    logits[0, 0, :10] = 2.0  # ties
    for top_p in (0.05, 0.5, 0.9, 0.999):
        expected = TopPLogitsWarper(top_p)(None, logits.reshape(-1, 300)).reshape(logits.shape)
        assert torch.equal(top_p_filter(logits, top_p), expected)


def full_distribution(policy, images, temperature: float, top_p: float) -> torch.Tensor:
    """(V,) probabilities of the first response token, through ``forward`` and ``token_logprobs``."""
    vocab = len(policy.tokenizer)
    with torch.no_grad():
        logits = policy(images, torch.tensor([[policy.eos_ids[0]]])).logits  # (1, 1, V): before token 0
        every, suppressed = torch.arange(vocab).unsqueeze(1), policy.suppressed_ids
        logprobs = token_logprobs(logits.expand(vocab, 1, -1), every, temperature, suppressed, top_p)
    return logprobs.squeeze(1).exp()


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor, bins: int = 10) -> float:
    """p-value of multinomial ``counts (V,)`` against ``probs (V,)`` over ``bins`` groups of
    tokens of about equal probability mass (most likely first)."""
    order = probs.argsort(descending=True)
    mass_before = probs[order].cumsum(0) - probs[order]
    group = (mass_before * bins).long().clamp(max=bins - 1)
    expected = torch.zeros(bins, dtype=torch.float64).index_add_(0, group, probs[order].double())
    observed = torch.zeros(bins, dtype=torch.float64).index_add_(0, group, counts[order].double())
    expected *= counts.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return float(chi2.sf(statistic, bins - 1))


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampled_token_frequencies_match_logprobs(tiny_policy, images, temperature, top_p):
    bias = torch.randn(len(tiny_policy.tokenizer), generator=torch.Generator().manual_seed(3))
    hook = tiny_policy.model.get_output_embeddings().register_forward_hook(lambda _m, _i, out: out + bias)
    probs = full_distribution(tiny_policy, images[:1], temperature, top_p)
    assert abs(float(probs.sum()) - 1) < 1e-4
    assert 1 - float(probs.sort(descending=True).values[:50].sum()) > 0.3, "needs mass beyond a top-50 cut"
    draws = 1500
    rollout = tiny_policy.sample(images[:1], n=draws, max_new_tokens=1, temperature=temperature, top_p=top_p)
    hook.remove()
    counts = torch.bincount(rollout.tokens[:, 0], minlength=len(probs))
    assert (probs[counts > 0] > 0).all(), "a token outside the described support was drawn"
    assert chi_square_p_value(counts, probs) > 1e-3
    drawn = rollout.tokens[:, 0]
    torch.testing.assert_close(rollout.logprobs[:, 0], probs[drawn].log(), atol=1e-4, rtol=0)
