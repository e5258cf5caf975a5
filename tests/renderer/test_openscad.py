"""Each test adversarially checks one property of renderer.openscad.run, with the real CLI."""

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from renderer import openscad
from renderer.openscad import RenderLimits, Status, classify, run
from renderer.stl import read_binary_stl
from tests.conftest import needs_openscad
from tests.renderer.processes import gone_soon, live_openscad_runs, run_folders_in

pytestmark = needs_openscad


LONG_PROGRAM = "for (i = [0:999], j = [0:999]) translate([i, j, 0]) sphere(0.4, $fn = 30);"
"""A million spheres to union: OpenSCAD would run for hours."""


def test_valid_part_is_ok_with_a_closed_mesh():
    result = run("difference() { cube(10, center=true); sphere(6, $fn=24); }")
    assert result.status is Status.OK
    assert result.vertices.dtype == np.float64 and result.vertices.shape[1] == 3
    assert result.faces.dtype == np.int64 and result.faces.shape[1] == 3
    assert result.faces.max() < len(result.vertices)
    # a closed mesh has every edge shared by exactly two faces
    edges = np.sort(result.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()
    assert np.allclose(result.vertices.min(axis=0), -5) and np.allclose(result.vertices.max(axis=0), 5)


def test_syntax_error():
    result = run("cube([1, 2, 3]")
    assert result.status is Status.SYNTAX_ERROR
    assert "Parser error" in result.stderr


def test_runtime_error_from_failed_assert():
    assert run('assert(false, "boom"); cube(1);').status is Status.RUNTIME_ERROR


def test_infinite_loop_times_out_and_leaves_no_process(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # any run folder would go here
    seen: set[int] = set()
    running = threading.Event()
    running.set()

    def watch():  # the OpenSCAD processes this test's run starts, seen while they run
        while running.is_set():
            seen.update(live_openscad_runs(os.getpid()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.monotonic()
    result = run(LONG_PROGRAM, RenderLimits(timeout_s=2))
    running.clear()
    watcher.join()
    assert result.status is Status.TIMEOUT
    assert time.monotonic() - start < 10
    assert seen, "the watcher saw no OpenSCAD process"
    assert gone_soon(seen, seconds=2)
    assert list(tmp_path.iterdir()) == []  # nothing written to the host's disk


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_parent_leaves_no_openscad_and_no_folder(tmp_path, sig):
    """A command killed while OpenSCAD runs a long program takes OpenSCAD with it."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", (
        "from renderer.openscad import run, RenderLimits\n"
        f"run({LONG_PROGRAM!r}, RenderLimits(timeout_s=120))")], env=env)
    deadline = time.monotonic() + 30
    while not live_openscad_runs(parent.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = set(live_openscad_runs(parent.pid))
    assert started, "OpenSCAD did not start"
    parent.send_signal(sig)
    parent.wait(timeout=30)
    assert gone_soon(started)
    assert run_folders_in(tmp_path) == []


def test_two_dimensional_program_is_not_3d():
    assert run("square([3, 4]);").status is Status.NOT_3D


def test_empty_program_is_empty_not_ok():
    for code in ("", "// nothing here\n", "x = 3;"):
        result = run(code)
        assert result.status is Status.EMPTY
        assert len(result.faces) == 0


@pytest.mark.parametrize(
    "code",
    [
        'import("/etc/passwd");',
        "include </etc/passwd>",
        "use </etc/passwd>",
        'surface(file = "/etc/hostname");',
        'import(str("/etc/", "passwd"));',
        "include <../../../../etc/passwd>",
        'linear_extrude(file = "/etc/passwd.dxf", height = 1);',
        'import_stl("/etc/passwd");',
        # the four ways once found past the screen (the sandbox holds them anyway)
        "include <//etc/passwd>",
        "x = 1.5include </etc/passwd>",
        'a = "x\\\n";\nimport("/etc/passwd");',
        'surface(".\\x2f..\\x2fsecret/../MCAD/units.scad");',
    ],
)
def test_file_reads_outside_libraries_are_forbidden_and_never_run(code, monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("OpenSCAD must not be started for a forbidden program")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    result = run(code)
    assert result.status is Status.FORBIDDEN
    assert len(result.faces) == 0


def test_library_includes_are_allowed():
    result = run("include <MCAD/units.scad>\ncube([mm, mm, mm] * 5);")
    assert result.status is Status.OK


def test_reads_in_comments_and_strings_are_not_file_reads():
    code = '// import("/etc/passwd");\n/* include </etc/passwd> */\nlabel = "import(";\ncube(2);'
    assert run(code).status is Status.OK


@pytest.fixture(params=["prlimit", "setrlimit"])
def launcher(request, monkeypatch):
    """Run a test with both ways of applying the rlimits."""
    if request.param == "setrlimit":
        info = openscad.openscad_info()
        monkeypatch.setattr(openscad, "openscad_info", lambda: dataclasses.replace(info, prlimit=None))
    return request.param


def test_memory_exhaustion_is_too_large(launcher):
    code = "x = [for (i = [0:999]) [for (j = [0:999]) [for (k = [0:999]) k]]]; cube(1);"
    result = run(code, RenderLimits(timeout_s=60, memory_bytes=300 * 1024**2))
    assert result.status is Status.TOO_LARGE


def test_output_larger_than_cap_is_too_large(launcher):
    result = run("sphere(10, $fn = 200);", RenderLimits(max_output_bytes=200_000))
    assert result.status is Status.TOO_LARGE


def test_program_longer_than_cap_is_refused():
    assert run("cube(1);" * 100, RenderLimits(max_code_bytes=100)).status is Status.TOO_LARGE


def test_classify_exit_zero_without_markers_is_not_a_failure():
    assert classify(0, "Total rendering time: 0:00:00.1", timed_out=False) is None
    assert classify(-11, "", timed_out=False) is Status.CRASHED


def test_truncated_stl_is_rejected(tmp_path):
    path = tmp_path / "bad.stl"
    path.write_bytes(b"\0" * 80 + (5).to_bytes(4, "little") + b"\0" * 10)
    with pytest.raises(ValueError):
        read_binary_stl(str(path))


def test_library_check_is_by_folder_not_by_string_prefix(tmp_path):
    """A sibling folder whose name starts with the library folder's name is outside it."""
    from renderer.screen import find_forbidden

    library, sibling = tmp_path / "lib", tmp_path / "lib-evil"
    library.mkdir()
    sibling.mkdir()
    (library / "ok.scad").write_text("cube(1);")
    (sibling / "c.scad").write_text("cube(1);")
    assert find_forbidden(f"include <{library}/ok.scad>", [str(library)]) is None
    assert find_forbidden(f"include <{sibling}/c.scad>", [str(library)]) is not None
    assert find_forbidden("include <../lib-evil/c.scad>", [str(library)]) is not None
