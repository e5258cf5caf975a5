"""Properties of configs.policy: presets load, every bad value is a ValueError naming its field."""

import pytest

from configs.loader import ConfigError
from configs.policy import PRESETS, PolicyConfig, load_policy_config


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name):
    config = load_policy_config(name)
    assert config.kind == "tiny"
    assert config.image_tokens >= 16


@pytest.mark.parametrize(
    "field, value",
    [
        ("kind", "gpt"),
        ("patch_size", 10),
        ("scale_factor", 3),
        ("text_heads", 5),
        ("text_kv_heads", 3),
        ("vision_heads", 7),
        ("vocab_size", 100),
        ("number_tokens", "roman"),
        ("lora_dropout", 1.5),
        ("dtype", "int8"),
        ("text_layers", 0),
        ("max_position", 16),
    ],
)
def test_bad_value_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} "):
        PolicyConfig(**{field: value})


def test_pretrained_needs_a_model():
    with pytest.raises(ValueError, match="model_name_or_path"):
        PolicyConfig(kind="pretrained")


def test_overrides_are_checked_and_coerced():
    config = load_policy_config("tiny", ["text_layers=2", "lora_target_modules=q_proj,v_proj"])
    assert config.text_layers == 2 and config.lora_target_modules == ("q_proj", "v_proj")
    with pytest.raises(ConfigError, match="text_heads"):
        load_policy_config("tiny", ["text_heads=5"])
    with pytest.raises(ConfigError, match="text_hiden"):
        load_policy_config("tiny", ["text_hiden=5"])


def test_dict_round_trip():
    config = PolicyConfig(lora_target_modules=("q_proj",))
    assert PolicyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="nope"):
        PolicyConfig.from_dict({"nope": 1})
