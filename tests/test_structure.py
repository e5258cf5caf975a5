"""The project's shape: no import cycle, every module imports on its own, none too long to read whole."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_graph():
    path = os.path.join(ROOT, "scripts", "import_graph.py")
    spec = importlib.util.spec_from_file_location("import_graph", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import_graph = _import_graph()


def test_no_import_cycle_even_through_imports_inside_functions():
    assert import_graph.cycles(import_graph.graph(ROOT)) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "rl"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from rl.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from rl import a\n")
    (package / "c.py").write_text("import rl.a\n")
    edges = import_graph.graph(str(tmp_path))
    assert edges["rl.c"] == {"rl.a"}
    assert import_graph.cycles(edges) == [["rl.a", "rl.b"]]


def test_no_module_is_past_the_line_limit():
    lines = {m: import_graph.line_count(p) for m, p in import_graph.modules(ROOT).items()}
    assert {m: n for m, n in lines.items() if n > import_graph.MAX_LINES} == {}


# Third-party libraries are imported once before forking: they cannot hide a cycle between our
# modules, and importing torch afresh for each of ~90 modules would take minutes.
_ALONE = textwrap.dedent("""
    import importlib, os, sys, traceback
    for heavy in ("numpy", "torch", "transformers", "datasets", "PIL.Image", "yaml", "skimage.metrics",
                  "open3d", "peft", "ray"):
        try:
            importlib.import_module(heavy)
        except ImportError:
            pass
    failures = []
    for name in sys.argv[1:]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                importlib.import_module(name)
                code = 0
            except BaseException:
                os.write(write, traceback.format_exc().strip().splitlines()[-1].encode())
                code = 1
            os._exit(code)
        os.close(write)
        message = os.read(read, 4096).decode()
        os.close(read)
        if os.waitpid(pid, 0)[1] != 0:
            failures.append(f"{name}: {message}")
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
""")


def test_every_module_imports_alone_in_a_fresh_process():
    names = sorted(m for m in import_graph.modules(ROOT) if not m.endswith(".__main__"))  # those run
    done = subprocess.run([sys.executable, "-c", _ALONE, *names], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_the_alone_check_reports_a_module_that_fails_to_import(tmp_path):
    (tmp_path / "broken_module.py").write_text("import rl.this_module_does_not_exist\n")
    done = subprocess.run([sys.executable, "-c", _ALONE, "rl.files", "broken_module"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert done.returncode == 1
    assert done.stdout.strip().startswith("broken_module: ModuleNotFoundError")
