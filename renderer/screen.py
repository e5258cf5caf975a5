"""A fast text screen of untrusted OpenSCAD code: file reads refused early, with a reason.

OpenSCAD can read files through ``include <...>``, ``use <...>``, ``import()``,
``surface()`` and the deprecated ``file=`` forms (``import_stl``,
``dxf_linear_extrude``, ``linear_extrude(file=...)`` ...). :func:`find_forbidden`
refuses every such read unless its path is a string literal that resolves inside
an allow-listed library folder, so the usual case (a model that wrote
``import("part.stl")``) gets status ``forbidden`` and a message that says why,
without starting OpenSCAD.

This screen is **not the boundary**: a text screen of a whole language always has
another hole (four were found: ``include <//abs>``, ``1.5include``, a string that
puts the screen out of step, and escapes in a path). What keeps files out of reach
is the operating-system sandbox of :mod:`renderer.sandbox`, which the hostile
programs of ``tests/renderer/test_sandbox.py`` check with this screen switched off.

The screen works on the code with comments removed and string literals kept
whole, so ``// import("/etc/passwd")`` is harmless and ``x = "import(";`` is not
mistaken for a call. A computed path (``import(str("/et", "c/passwd"))``) cannot
be checked statically and is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_INCLUDE = re.compile(r"\b(include|use)\s*<([^>]*)>")
# Modules that read a file given as first argument or as file=...
_FILE_READERS = (
    "import|surface|import_stl|import_off|import_dxf|"
    "dxf_linear_extrude|dxf_rotate_extrude|dxf_dim|dxf_cross"
)
_READER_CALL = re.compile(rf"\b({_FILE_READERS})\s*\(")
_FILE_ARG = re.compile(r"\bfile\s*=(?!=)")
_LITERAL_FIRST_ARG = re.compile(r'\s*(?:file\s*=\s*)?"((?:\\.|[^"\\])*)"\s*[,)]')


def strip_comments(code: str) -> str:
    """Return ``code`` with ``//`` and ``/* */`` comments blanked, strings kept."""

    def keep_strings(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith('"'):
            return text
        return re.sub(r"[^\n]", " ", text)  # keep line numbers stable

    return _COMMENT_OR_STRING.sub(keep_strings, code)


def _blank_strings(code: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\])*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', code)


def is_allowed_path(path: str, library_dirs: Sequence[str]) -> bool:
    """True when ``path`` resolves to an existing file inside one of ``library_dirs``.

    Relative paths are resolved against each library folder (as OpenSCAD's
    library search does); absolute paths must already lie inside one.
    """
    for root in library_dirs:
        real_root = os.path.realpath(root)
        candidate = os.path.realpath(os.path.join(real_root, path))
        inside = os.path.commonpath([real_root, candidate]) == real_root
        if inside and os.path.isfile(candidate):
            return True
    return False


def find_forbidden(code: str, library_dirs: Sequence[str]) -> str | None:
    """Return a one-line reason if ``code`` would read a file outside the allow-list.

    Returns ``None`` when the code is safe to hand to OpenSCAD.
    """
    stripped = strip_comments(code)
    # include/use paths sit in <...>, never in quotes; blanking strings stops a
    # string such as "include <x>" from being read as a statement.
    code_only = _blank_strings(stripped)
    for match in _INCLUDE.finditer(code_only):
        keyword, path = match.group(1), match.group(2).strip()
        if not is_allowed_path(path, library_dirs):
            return f"{keyword} <{path}> is outside the allowed library folders"
    for match in _READER_CALL.finditer(code_only):
        name = match.group(1)
        literal = _LITERAL_FIRST_ARG.match(stripped, match.end())
        if literal is None:
            return f"{name}() with a computed or missing path is not allowed"
        if not is_allowed_path(literal.group(1), library_dirs):
            return f'{name}("{literal.group(1)}") is outside the allowed library folders'
    if _FILE_ARG.search(code_only):
        return "file= arguments (deprecated file readers) are not allowed"
    return None

