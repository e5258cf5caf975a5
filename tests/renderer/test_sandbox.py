"""Hostile programs against the OS sandbox alone (the text screen switched off).

Canary files (a ``.scad`` with an ``echo`` and a module, an STL, a height map and a
DXF, each carrying the number 123.456 or the word CANARY) are planted outside
OpenSCAD's libraries: in the host's ``/tmp`` and in ``$HOME``. Every program tries
to read one. The sandbox passes when no canary byte reaches the mesh or the
messages. The same programs run unsandboxed are the control: they do leak, so a
sandbox that let a read through would fail here.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from renderer import sandbox
from renderer.openscad import RenderLimits, Status, run
from tests.conftest import needs_openscad

pytestmark = needs_openscad

MARK = 123.456
WORD = "CANARY_5ca0"
SCAD = f'echo("{WORD}");\ncube({MARK});\nmodule canary() {{ echo("{WORD}"); cube({MARK}); }}\n'
STL = f"solid c\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex {MARK} 0 0\nvertex 0 {MARK} 0\n" \
      "endloop\nendfacet\nendsolid c\n"
HEIGHTS = f"1 2\n3 {MARK}\n"
_SQUARE = [(0, 0, MARK, 0), (MARK, 0, MARK, MARK), (MARK, MARK, 0, MARK), (0, MARK, 0, 0)]
DXF = "0\nSECTION\n2\nENTITIES\n" + "".join(
    f"0\nLINE\n8\n0\n10\n{a}\n20\n{b}\n11\n{c}\n21\n{d}\n" for a, b, c, d in _SQUARE
) + "0\nENDSEC\n0\nEOF\n"


def _plant(folder: str) -> str:
    for name, text in (("c.scad", SCAD), ("secret.stl", STL), ("secret.dat", HEIGHTS), ("secret.dxf", DXF)):
        with open(os.path.join(folder, name), "w") as fh:
            fh.write(text)
    return folder


@pytest.fixture(scope="module", params=["tmp", "home"])
def canary(request):
    """A folder of canary files outside the libraries: in the host's /tmp or in $HOME."""
    parent = tempfile.gettempdir() if request.param == "tmp" else os.path.expanduser("~")
    folder = tempfile.mkdtemp(prefix=".scadloop-canary-", dir=parent)
    yield _plant(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _escaped(path: str) -> str:
    r"""``path`` with every ``/`` written as OpenSCAD's ``\x2f`` escape."""
    return path.replace("/", "\\x2f")


def _up_from_libraries(path: str) -> str:
    """A path inside MCAD that climbs out of the libraries to ``path``."""
    return "MCAD/" + "../" * 12 + path.lstrip("/")


# Each case: (name, program template, leaks when run unsandboxed). ``{d}`` is the canary folder.
CASES = [
    ("include_double_slash", "include </{d}/c.scad>", True),
    ("use_double_slash", "use </{d}/c.scad>\ncanary();", True),
    ("include_after_number", "x = 1.5include <{d}/c.scad>\ncube(1);", False),
    ("string_state_desync", 'a = "x\\\n";\nimport("{d}/secret.stl");', True),
    ("escaped_surface_path", 'surface("{esc}/secret.dat");', True),
    ("absolute_include", "include <{d}/c.scad>", True),
    ("absolute_use", "use <{d}/c.scad>\ncanary();", True),
    ("absolute_import", 'import("{d}/secret.stl");', True),
    ("absolute_surface", 'surface("{d}/secret.dat");', True),
    ("surface_file_argument", 'surface(file = "{d}/secret.dat");', True),
    ("climb_out_of_library", "include <{up}/c.scad>", True),
    ("relative_import_climb", 'import("{rel}/secret.stl");', True),
    ("computed_path_str", 'import(str("{d}", "/secret.stl"));', True),
    ("path_in_variable", 'p = "{d}/secret.stl";\nimport(p);', True),
    ("escaped_import_path", 'import("{esc}/secret.stl");', True),
    ("dxf_linear_extrude", 'dxf_linear_extrude(file = "{d}/secret.dxf", height = 1);', True),
    ("linear_extrude_file", 'linear_extrude(file = "{d}/secret.dxf", height = 1);', True),
    ("import_dxf", 'linear_extrude(1) import("{d}/secret.dxf");', True),
    ("import_stl_alias", 'import_stl("{d}/secret.stl");', True),
]


def _program(template: str, folder: str) -> str:
    rel = "../" * 12 + folder.lstrip("/")  # relative to the working folder
    return template.format(d=folder, esc=_escaped(folder), up=_up_from_libraries(folder), rel=rel)


def _leaked(result) -> bool:
    in_mesh = bool(np.isclose(result.vertices, MARK, atol=1e-3).any()) if len(result.vertices) else False
    return in_mesh or WORD in result.stderr or str(MARK) in result.stderr


@pytest.mark.parametrize(("name", "template", "leaks"), CASES, ids=[c[0] for c in CASES])
def test_sandbox_alone_keeps_every_canary_out(canary, name, template, leaks):
    result = run(_program(template, canary), RenderLimits(screen=False, unsandboxed=False))
    assert result.status is not Status.FORBIDDEN  # the screen is off: OpenSCAD ran
    assert not _leaked(result), f"{name}: canary reached the output ({result.status})"


LEAKING = [case for case in CASES if case[2]]


@pytest.mark.parametrize(("name", "template", "leaks"), LEAKING, ids=[c[0] for c in LEAKING])
def test_control_without_sandbox_leaks_the_canary(canary, name, template, leaks):
    """The same read, unsandboxed: it does reach the canary, so the test above can fail."""
    result = run(_program(template, canary), RenderLimits(screen=False, unsandboxed=True))
    assert _leaked(result), f"{name}: the control did not read its canary ({result.status})"


@pytest.mark.parametrize("name,template", [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_screen_and_sandbox_together_keep_every_canary_out(canary, name, template):
    result = run(_program(template, canary))
    assert not _leaked(result)


def test_host_files_do_not_exist_inside():
    result = run('include </etc/passwd>\ninclude <//root/.bashrc>\necho(str("HOME-", 1));\ncube(1);',
                 RenderLimits(screen=False))
    assert result.status is Status.OK
    assert "root:" not in result.stderr
    assert "Can't open include file" in result.stderr  # OpenSCAD looked, and found nothing


def test_missing_bubblewrap_is_one_clear_line(monkeypatch):
    sandbox._probe.cache_clear()
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else which(name))
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap") as caught:
            run("cube(1);", RenderLimits(unsandboxed=False))
        assert "\n" not in str(caught.value)
        assert sandbox.UNSANDBOXED_ENV in str(caught.value)  # says how to opt out, and the risk
    finally:
        sandbox._probe.cache_clear()


def test_unsandboxed_is_opted_into_only_by_the_environment(monkeypatch):
    monkeypatch.delenv(sandbox.UNSANDBOXED_ENV, raising=False)
    assert RenderLimits().unsandboxed is False
    monkeypatch.setenv(sandbox.UNSANDBOXED_ENV, "1")
    assert RenderLimits().unsandboxed is True
    monkeypatch.setenv(sandbox.UNSANDBOXED_ENV, "yes please")
    assert RenderLimits().unsandboxed is False


def test_a_command_without_bubblewrap_stops_with_one_line(tmp_path):
    """corpus.build on a PATH without bwrap: one error line naming the fix and the opt-out."""
    env = {"PATH": str(tmp_path), "SCADLOOP_OPENSCAD": shutil.which("openscad"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "corpus.build", "--n", "2", "--workers", "0", "--out",
                           str(tmp_path / "corpus")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "bubblewrap" in errors[0] and sandbox.UNSANDBOXED_ENV in errors[0]
