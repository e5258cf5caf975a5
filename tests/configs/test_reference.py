"""docs/configuration.md is generated from the config dataclasses and is up to date."""

from __future__ import annotations

import dataclasses

from configs import reference
from configs.loader import field_help


def test_committed_reference_is_what_the_dataclasses_generate():
    with open(reference.PATH, encoding="utf-8") as fh:
        assert fh.read() == reference.render(), "run: python -m configs.reference"


def test_every_setting_has_help_text():
    for _, _, cls in reference.SECTIONS:
        helps = field_help(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not helps.get(f.name)]
        assert missing == [], (cls.__name__, missing)
    assert reference.main(["--check"]) == 0
