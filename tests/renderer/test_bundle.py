"""The relocatable OpenSCAD bundle (``scripts/bundle_openscad.py``) against the system OpenSCAD.

The bundle is built once for this module with ``--fast`` into a temporary folder (about
20 s of CPU, 30-70 s here on a busy machine: copying, then compressing ~117 MB), unpacked
with ``tar`` and moved, then:

- run with an empty environment inside a bubblewrap where only the bundle, ``/bin/sh``
  and the shell's own libc exist (no ``/usr``, no host library folder, no ld.so.cache),
  it writes exactly the same triangles as the system OpenSCAD for one part of every
  corpus family, for ``text()`` (bundled fonts) and for an MCAD ``use`` (the order of
  the faces is compared as a set: it varies between two runs of the same OpenSCAD);
- :func:`renderer.openscad.run` with ``SCADLOOP_OPENSCAD`` at the bundle and no ``bwrap``
  or ``prlimit`` on ``PATH`` (in a subprocess: :func:`openscad_info` is cached per
  process) finds MCAD in the bundle, sandboxes with the bundle's ``bwrap``, gives the same
  meshes as the system OpenSCAD here, and does not let a program read a file beside the
  bundle. ``SCADLOOP_OPENSCAD`` is a symlink outside the bundle there, as on a machine
  that links the wrapper into its ``PATH``.

The discovery rules (bundle root, which ``bwrap``, what is bound) are checked on a fake
bundle without OpenSCAD.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from corpus.families import FAMILIES, generate
from renderer import sandbox
from renderer.openscad import RenderLimits, Status, run
from renderer.stl import parse_binary_stl
from tests.conftest import needs_openscad

BWRAP = shutil.which("bwrap")
needs_bwrap = pytest.mark.skipif(BWRAP is None, reason="bwrap not installed (apt-get install bubblewrap)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "bundle_openscad.py")
SEED = 3
TEXT = 'linear_extrude(2) text("Ab1 Qg", size=8);'
MCAD = "use <MCAD/boxes.scad>\nroundedBox([20, 12, 6], 2, true);"
MARK = 123.456


def _programs() -> dict[str, str]:
    programs = {name: generate(name, SEED).code for name in FAMILIES}
    programs["text"] = TEXT
    programs["mcad"] = MCAD
    return programs


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The unpacked bundle's root, moved away from where it was unpacked (relocation)."""
    folder = tmp_path_factory.mktemp("bundle")
    archive = folder / "openscad-bundle.tar.xz"
    subprocess.run([sys.executable, SCRIPT, "--fast", "--out", str(archive)], check=True, timeout=600)
    subprocess.run(["tar", "xf", str(archive), "-C", str(folder)], check=True)
    moved = folder / "elsewhere" / "openscad-bundle"
    moved.parent.mkdir()
    (folder / "openscad-bundle").rename(moved)
    return str(moved)


@pytest.fixture(scope="module")
def system_meshes(tmp_path_factory):
    """``{name: (vertices, faces)}`` from the system OpenSCAD, run directly."""
    folder = tmp_path_factory.mktemp("system")
    meshes = {}
    for name, code in _programs().items():
        (folder / f"{name}.scad").write_text(code)
        subprocess.run(["openscad", "-o", str(folder / f"{name}.stl"), "--export-format", "binstl",
                        str(folder / f"{name}.scad")], check=True, capture_output=True,
                       env={"HOME": str(folder), "PATH": "/usr/bin:/bin"}, timeout=300)
        meshes[name] = parse_binary_stl((folder / f"{name}.stl").read_bytes())
    return meshes


def _triangles(vertices: np.ndarray, faces: np.ndarray) -> list[tuple]:
    """The mesh as a sorted list of triangles, each its three corners from the smallest on,
    in their own winding: OpenSCAD's face order varies from run to run (it follows memory
    addresses), the triangles themselves do not."""
    out = []
    for corners in vertices[faces].tolist():
        corners = [tuple(c) for c in corners]
        k = corners.index(min(corners))
        out.append(tuple(corners[k:] + corners[:k]))
    return sorted(out)


def _shell_only_binds() -> list[str]:
    """bwrap options that make ``/bin/sh`` work and nothing else of the host visible."""
    shell = os.path.realpath("/bin/sh")
    binds = ["--ro-bind", shell, "/bin/sh"]
    libraries = subprocess.run(["ldd", shell], capture_output=True, text=True, check=True).stdout
    for line in libraries.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            binds += ["--ro-bind", path, path]
    return binds


@needs_openscad
@needs_bwrap
def test_bundle_alone_gives_the_system_meshes(bundle, system_meshes, tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    for name, code in _programs().items():
        (inputs / f"{name}.scad").write_text(code)
    loop = ('for f in /in/*.scad; do n=${f##*/}; /opt/b/bin/openscad -o "/out/${n%.scad}.stl" '
            '--export-format binstl "$f" 2>"/out/${n%.scad}.log" || echo "failed: $n"; done; '
            'for p in /usr /lib/x86_64-linux-gnu/libstdc++.so.6 /etc/ld.so.cache; do '
            '[ -e "$p" ] && echo "host file visible: $p"; done; true')
    done = subprocess.run(
        [BWRAP, "--ro-bind", bundle, "/opt/b", *_shell_only_binds(), "--ro-bind", str(inputs), "/in",
         "--bind", str(outputs), "/out", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev",
         "--unshare-all", "--die-with-parent", "--clearenv", "--", "/bin/sh", "-c", loop],
        capture_output=True, text=True, timeout=600, env={},
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    for name, (vertices, faces) in system_meshes.items():
        bundled = parse_binary_stl((outputs / f"{name}.stl").read_bytes())
        assert len(faces) > 0, name
        assert _triangles(*bundled) == _triangles(vertices, faces), f"{name}: meshes differ"
    assert "Could not initialize localization" not in (outputs / "plate.log").read_text()


_IN_SUBPROCESS = """
import json, os, sys
import numpy as np
from renderer import sandbox
from renderer.openscad import RenderLimits, openscad_info, run, sandbox_prefix
programs, out, canary = json.loads(sys.stdin.read())
info = openscad_info()
prefix = sandbox_prefix(RenderLimits())
meshes = {name: run(code) for name, code in programs.items()}
leak = run(f'import("{canary}");', RenderLimits(screen=False))
arrays = {f"{n}_v": m.vertices for n, m in meshes.items()} | {f"{n}_f": m.faces for n, m in meshes.items()}
np.savez(out, **arrays)
print(json.dumps({"path": info.path, "library_dir": info.library_dir, "prlimit": info.prlimit,
                  "bwrap": prefix[0], "binds": prefix,
                  "status": {n: str(m.status) for n, m in meshes.items()},
                  "leak_status": str(leak.status), "leak_vertices": leak.vertices.tolist(),
                  "leak_stderr": leak.stderr}))
"""


@needs_openscad
@needs_bwrap
def test_renderer_runs_the_bundle_in_its_sandbox(bundle, tmp_path):
    canary = os.path.join(os.path.dirname(bundle), "secret.stl")  # beside the bundle, not in it
    with open(canary, "w") as fh:
        fh.write(f"solid c\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex {MARK} 0 0\n"
                 f"vertex 0 {MARK} 0\nendloop\nendfacet\nendsolid c\n")
    programs = {name: generate(name, SEED).code for name in ("flange", "gear")} | {"mcad": MCAD}
    out = tmp_path / "meshes.npz"
    link = tmp_path / "openscad"  # outside the bundle: the sandbox does not show this folder
    link.symlink_to(os.path.join(bundle, "bin", "openscad"))
    env = {"SCADLOOP_OPENSCAD": str(link), "PATH": "/nonexistent"}
    done = subprocess.run([sys.executable, "-c", _IN_SUBPROCESS], cwd=REPO, env=env, timeout=600,
                          input=json.dumps([programs, str(out), canary]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["path"] == os.path.join(bundle, "bin", "openscad")
    assert report["library_dir"] == os.path.join(bundle, "share", "openscad", "libraries")
    assert report["prlimit"] is None  # PATH held neither prlimit nor bwrap
    assert report["bwrap"] == os.path.join(bundle, "bin", "bwrap")
    assert bundle in report["binds"] and os.path.dirname(bundle) not in report["binds"]
    assert set(report["status"].values()) == {"ok"}, report["status"]
    assert not np.isclose(np.array(report["leak_vertices"]).reshape(-1, 3), MARK).any()
    assert str(MARK) not in report["leak_stderr"], report["leak_status"]
    bundled = np.load(out)
    for name, code in programs.items():
        here = run(code, RenderLimits())  # this process: the system OpenSCAD
        assert here.status is Status.OK
        assert _triangles(bundled[f"{name}_v"], bundled[f"{name}_f"]) == _triangles(here.vertices, here.faces)


@needs_openscad
def test_wrapper_runs_through_a_symlink_with_an_empty_environment(bundle, tmp_path):
    link = tmp_path / "openscad"
    link.symlink_to(os.path.join(bundle, "bin", "openscad"))
    (tmp_path / "in.scad").write_text(MCAD)
    done = subprocess.run([str(link), "-o", str(tmp_path / "out.stl"), "--export-format", "binstl",
                           str(tmp_path / "in.scad")], capture_output=True, text=True, env={}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "localization" not in done.stderr, done.stderr
    assert len(parse_binary_stl((tmp_path / "out.stl").read_bytes())[1]) > 0


@pytest.fixture
def fake_bundle(tmp_path, monkeypatch):
    """A folder with the bundle's shape (marker, bin/openscad, bin/bwrap) and no OpenSCAD."""
    monkeypatch.delenv(sandbox.BWRAP_ENV, raising=False)
    root = tmp_path / "openscad-bundle"
    (root / "bin").mkdir(parents=True)
    (root / "share" / "openscad" / "libraries").mkdir(parents=True)
    (root / sandbox.BUNDLE_MARKER).write_text("fake\n")
    for name in ("openscad", "bwrap"):
        (root / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
        (root / "bin" / name).chmod(0o755)
    return root


def test_bundle_root_is_found_through_a_symlink(fake_bundle, tmp_path):
    link = tmp_path / "openscad"
    link.symlink_to(fake_bundle / "bin" / "openscad")
    assert sandbox.bundle_root(str(link)) == str(fake_bundle)


def test_a_plain_binary_is_no_bundle(tmp_path):
    (tmp_path / "bin").mkdir()
    assert sandbox.bundle_root(str(tmp_path / "bin" / "openscad")) is None


def test_bwrap_is_the_environment_s_then_the_bundle_s(fake_bundle, monkeypatch):
    openscad = str(fake_bundle / "bin" / "openscad")
    assert sandbox.find_bwrap(openscad) == str(fake_bundle / "bin" / "bwrap")
    monkeypatch.setenv(sandbox.BWRAP_ENV, "/somewhere/bwrap")
    assert sandbox.find_bwrap(openscad) == "/somewhere/bwrap"


def test_without_a_bundle_bwrap_comes_from_path(tmp_path, monkeypatch):
    monkeypatch.delenv(sandbox.BWRAP_ENV, raising=False)
    assert sandbox.find_bwrap(str(tmp_path / "openscad")) == shutil.which("bwrap")


def test_sandbox_binds_the_bundle_once_and_not_its_parent(fake_bundle):
    libraries = str(fake_bundle / "share" / "openscad" / "libraries")
    args = sandbox.bwrap_arguments(str(fake_bundle / "bin" / "openscad"), [libraries])
    assert args.count(str(fake_bundle)) == 2  # --ro-bind-try <root> <root>
    assert libraries not in args  # inside the root already
    assert str(fake_bundle.parent) not in args
