"""configs.corpus: corpus.build and corpus.import declare their render-actor settings once and keep
their own flags and defaults."""

from __future__ import annotations

import argparse

import pytest

from configs.corpus import BuildConfig, ImportConfig, RenderActors
from configs.loader import ConfigError, add_arguments, field_help, load

REQUIRED = {BuildConfig: ["n=3", "out=o"], ImportConfig: ["folder=f", "out=o"]}


@pytest.mark.parametrize("cls, workers", [(BuildConfig, "auto"), (ImportConfig, "0")])
def test_each_command_keeps_its_render_actor_flags_and_defaults(cls, workers):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {"--workers", "--ray_address"} <= flags
    config = load(cls, None, REQUIRED[cls])
    assert config.workers == workers and config.ray_address is None
    assert load(cls, None, [*REQUIRED[cls], "workers=2"]).worker_count == 2
    for name in ("workers", "ray_address"):
        assert field_help(cls)[name] == field_help(RenderActors)[name] != ""


@pytest.mark.parametrize("cls", [BuildConfig, ImportConfig])
def test_a_bad_worker_count_is_one_error_naming_the_field(cls):
    with pytest.raises(ConfigError, match="workers must be auto or an integer >= 0, got 'many'"):
        load(cls, None, [*REQUIRED[cls], "workers=many"])
