"""The project's import graph: cycles between its modules, and their line counts.

Imports written inside functions count: a cycle hidden in a function still ties two modules
together. Commands::

    python scripts/import_graph.py                       # cycles (exit 1 when any), longest modules
    python scripts/import_graph.py --lines rl/ppo.py rl/sft.py   # line counts of these files
    git worktree add /tmp/old <commit> && python scripts/import_graph.py --root /tmp/old   # another tree

tests/test_structure.py asserts that there is no cycle and no module past :data:`MAX_LINES`.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

PACKAGES = ("configs", "corpus", "policies", "renderer", "reward", "rl")
MAX_LINES = 450
"""A module longer than this is past what one reads whole (the brief's limit)."""


def modules(root: str) -> dict[str, str]:
    """``{dotted module name: file path}`` of every module of :data:`PACKAGES` under ``root``."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def _owner(name: str, known: dict[str, str]) -> str | None:
    """The longest known module that ``name`` (a module or ``module.attribute``) lies in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def graph(root: str) -> dict[str, set[str]]:
    """``{module: modules it imports}``, counting imports anywhere in the file."""
    known = modules(root)
    edges = {}
    for module, path in known.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(_owner(alias.name, known) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                for alias in node.names:
                    targets.add(_owner(f"{base}.{alias.name}", known) or _owner(base, known))
        # a package's __init__ importing its own submodules is not a dependency on itself
        edges[module] = {t for t in targets if t and t != module and not t.startswith(module + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges)))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


def line_count(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="project root to read (default: this checkout)")
    parser.add_argument("--lines", nargs="*", default=None, metavar="FILE",
                        help="print the line count of each FILE (relative to --root; 0 when absent)")
    args = parser.parse_args(argv)
    if args.lines is not None:
        for name in args.lines:
            path = os.path.join(args.root, name)
            print(f"{line_count(path) if os.path.exists(path) else 0:5d}  {name}")
        return 0
    found = cycles(graph(args.root))
    for group in found:
        print("cycle: " + " <-> ".join(group))
    if not found:
        print(f"no import cycle among {len(modules(args.root))} modules")
    long = sorted(((line_count(p), m) for m, p in modules(args.root).items()), reverse=True)
    for lines, module in long[:5]:
        print(f"{lines:5d}  {module}" + ("  (past the limit)" if lines > MAX_LINES else ""))
    return 1 if found or long[0][0] > MAX_LINES else 0


if __name__ == "__main__":
    sys.exit(main())
