"""configs.loader: defaults < YAML < overrides, one-line errors naming the key, help from docstrings."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from configs.loader import ConfigError, add_arguments, field_help, from_args, load, reference_markdown
from reward.score import RewardWeights


@dataclass
class Inner:
    rate: float = 0.1
    """Learning rate."""
    names: tuple[str, ...] = ("a",)
    """Some names."""


@dataclass
class Outer:
    steps: int = 10
    """How many steps."""
    fast: bool = False
    """Go fast."""
    inner: Inner = field(default_factory=Inner)
    """Nested settings."""

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\ninner:\n  rate: 0.5\n")
    config = load(Outer, str(path), ["inner.rate=0.25", "fast=true", "inner.names=x,y"])
    assert config == Outer(steps=5, fast=True, inner=Inner(rate=0.25, names=("x", "y")))


def test_unknown_key_names_the_key_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'inner.rat' \(known: names, rate\)"):
        load(Outer, None, ["inner.rat=1"])


def test_wrong_type_and_out_of_range_are_one_line_errors():
    with pytest.raises(ConfigError, match="steps: expected int, got 'many'"):
        load(Outer, None, ["steps=many"])
    with pytest.raises(ConfigError, match="steps must be >= 1") as error:
        load(Outer, None, ["steps=0"])
    assert "\n" not in str(error.value)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(Outer, str(bad))
    with pytest.raises(ConfigError, match="cannot read config"):
        load(Outer, str(tmp_path / "missing.yaml"))


def test_help_comes_from_field_docstrings():
    assert field_help(Outer)["steps"] == "How many steps."
    assert "SSIM" in field_help(RewardWeights)["ssim"]
    assert "| `inner.rate` | `0.1` | Learning rate. |" in reference_markdown(Outer)


def test_command_line_options(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    assert from_args(Outer, parser.parse_args(["--inner.rate", "0.3"])).inner.rate == 0.3
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "How many steps. (default: 10)" in capsys.readouterr().out


def test_a_bool_option_alone_means_true():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    parse = lambda *argv: from_args(Outer, parser.parse_args(list(argv)))  # noqa: E731
    assert parse("--fast").fast is True and parse("--fast", "--steps", "3").steps == 3
    assert parse("--fast", "false").fast is False and parse().fast is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps"])  # only bool options may stand alone


def test_shipped_reward_yaml_matches_defaults():
    path = Path(__file__).resolve().parents[2] / "configs" / "reward.yaml"
    assert load(RewardWeights, str(path)) == RewardWeights()


@dataclass
class Paths:
    POSITIONAL = ("a", "b")

    a: str
    """First folder."""
    b: int = 2
    """A count, optional on the command line."""
    out: str = "o"
    """Output."""
    n: int = 1
    """How many."""

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


def _parse(cls, *argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return from_args(cls, parser.parse_args(list(argv)))


def test_positional_fields_are_arguments_in_order_with_the_same_coercion():
    assert _parse(Paths, "x", "5", "--out", "y") == Paths(a="x", b=5, out="y")
    assert _parse(Paths, "x") == Paths(a="x")
    with pytest.raises(ConfigError, match="b: expected int, got 'many'"):
        _parse(Paths, "x", "many")


def test_positional_fields_are_no_options_and_a_required_one_must_be_given(capsys):
    with pytest.raises(SystemExit):
        _parse(Paths, "x", "--a", "y")
    with pytest.raises(SystemExit):
        _parse(Paths)
    assert "required: A" in capsys.readouterr().err


def test_positional_help_and_reference():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Paths)
    text = parser.format_help()
    assert "usage:" in text and "A [B]" in text and "First folder. (required)" in text
    assert "A count, optional on the command line. (default: 2)" in text
    table = reference_markdown(Paths)
    assert "| `A` (positional) | required | First folder. |" in table
    assert "| `B` (positional) | `2` |" in table and "| `out` | `o` | Output. |" in table


def test_positional_names_must_be_top_level_fields():
    @dataclass
    class Bad:
        POSITIONAL = ("missing",)

        a: str = ""
        """A."""

    with pytest.raises(TypeError, match="'missing' is not a top-level setting"):
        add_arguments(argparse.ArgumentParser(), Bad)


@dataclass
class Needs:
    n: int
    """Required count."""
    rate: float = 0.5
    """A rate."""


def test_a_field_without_default_is_required_and_says_so():
    with pytest.raises(ConfigError, match="missing required setting 'n'"):
        load(Needs)
    assert load(Needs, None, ["n=3"]) == Needs(n=3)
    parser = argparse.ArgumentParser()
    add_arguments(parser, Needs)
    assert "Required count. (required)" in parser.format_help()
    assert "| `n` | required | Required count. |" in reference_markdown(Needs)
