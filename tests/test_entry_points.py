"""Every ``python -m`` entry point answers ``--help`` with each of its options explained."""

from __future__ import annotations

import re
import runpy
import sys

import pytest

ENTRY_POINTS = (
    "corpus.build",
    "corpus.families",
    "corpus.import",
    "corpus.stats",
    "renderer.demo",
    "reward.report",
    "rl.app",
    "rl.compare",
    "rl.curves",
    "rl.demo",
    "rl.eval",
    "rl.ppo",
    "rl.predict",
    "rl.sft",
)
OPTION = re.compile(r"^  (-\w, )?(--[\w.-]+)( [A-Z_{][\w{},.-]*)?(\s{2,}(\S.*))?$")


def help_text(module: str, capsys, monkeypatch) -> str:
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    assert stopped.value.code in (0, None)
    return capsys.readouterr().out


def undocumented_options(text: str) -> list[str]:
    """Options printed without help text (neither on their line nor indented under it)."""
    lines = text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        match = OPTION.match(line)
        if not match or match.group(2) == "--help":
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if not match.group(5) and not re.match(r"^\s{6,}\S", following):
            missing.append(match.group(2))
    return missing


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_lists_every_option_with_its_help(module, capsys, monkeypatch):
    text = help_text(module, capsys, monkeypatch)
    assert text.startswith("usage:"), text[:200]
    assert re.search(r"^  --\w", text, re.MULTILINE) or module == "corpus.families", text
    assert undocumented_options(text) == []


def test_the_checker_finds_an_option_without_help():
    text = (
        "usage: x\n\noptions:\n  --good VALUE  does a thing\n  --bad VALUE\n  --wrapped VALUE\n"
        "                 explained below\n"
    )
    assert undocumented_options(text) == ["--bad"]
