"""A fast text screen of untrusted OpenSCAD code: file reads refused early, with a reason.

OpenSCAD can read files through ``include <...>``, ``use <...>``, ``import()``,
``surface()`` and the deprecated ``file=`` forms (``import_stl``,
``dxf_linear_extrude``, ``linear_extrude(file=...)`` ...). :func:`find_forbidden`
refuses every such read unless its path is a string literal that resolves inside
an allow-listed library folder, so the usual case (a model that wrote
``import("part.stl")``) gets status ``forbidden`` and a message that says why,
without starting OpenSCAD.

This screen is **not the boundary**: a text screen of a whole language always has
another hole (four were found and are closed here: ``include <//abs>``,
``1.5include``, a string that put the screen out of step, and escapes in a path).
What keeps files out of reach is the operating-system sandbox of :mod:`renderer.sandbox`, which the hostile
programs of ``tests/renderer/test_sandbox.py`` check with this screen switched off.

The screen reads the code in one pass as OpenSCAD's lexer does (include
statements, strings, comments), with comments removed and string literals kept
whole, so ``// import("/etc/passwd")`` is harmless and ``x = "import(";`` is not
mistaken for a call. A computed path (``import(str("/et", "c/passwd"))``) cannot
be checked statically and is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

_NOT_AFTER_NAME = r"(?<![A-Za-z_$])"  # "1.5include" is "1.5" then "include" to OpenSCAD
# One left-to-right pass, as OpenSCAD's lexer reads: an include/use statement (its <path> may
# hold "//"), a string (a backslash escapes any character, newline included), or a comment.
_SCAN = re.compile(
    rf"(?P<include>{_NOT_AFTER_NAME}(?P<keyword>include|use)[\s>]*<(?P<path>[^>]*)>)"
    r'|(?P<string>"(?:\\.|[^"\\])*(?:"|\Z))'
    r"|(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))",
    re.DOTALL,
)
# Modules that read a file given as first argument or as file=...
_FILE_READERS = (
    "import|surface|import_stl|import_off|import_dxf|"
    "dxf_linear_extrude|dxf_rotate_extrude|dxf_dim|dxf_cross"
)
_READER_CALL = re.compile(rf"{_NOT_AFTER_NAME}({_FILE_READERS})\s*\(")
_FILE_ARG = re.compile(rf"{_NOT_AFTER_NAME}file\s*=(?!=)")
_LITERAL_FIRST_ARG = re.compile(r'\s*(?:file\s*=\s*)?"((?:\\.|[^"\\])*)"\s*[,)]', re.DOTALL)
_ESCAPE = re.compile(r"\\(x[0-7][0-9a-fA-F]|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{6}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _blank(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)  # keep offsets and line numbers


def scan(code: str) -> tuple[list[tuple[str, str]], str, str]:
    """Split ``code`` as OpenSCAD's lexer does, in one pass.

    Returns the ``(keyword, path)`` of every include/use statement, the code with
    comments and those statements blanked but strings kept, and the same with strings
    blanked too (both the length of ``code``, so offsets agree).
    """
    includes, kept, code_only, last = [], [], [], 0
    for match in _SCAN.finditer(code):
        between = code[last:match.start()]
        kept.append(between)
        code_only.append(between)
        text, last = match.group(0), match.end()
        if match.group("include") is not None:
            includes.append((match.group("keyword"), match.group("path").strip()))
        kept.append(text if match.group("string") is not None else _blank(text))
        code_only.append(_blank(text))
    kept.append(code[last:])
    code_only.append(code[last:])
    return includes, "".join(kept), "".join(code_only)


def strip_comments(code: str) -> str:
    """Return ``code`` with ``//`` and ``/* */`` comments blanked, strings kept."""
    return scan(code)[1]


def decode_string(literal: str) -> str:
    """The text of an OpenSCAD string literal's body, escapes (``\\x2f``, ``\\u00e9`` ...) decoded."""

    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape[0] in "xuU" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        return _SIMPLE_ESCAPES.get(escape, escape)

    return _ESCAPE.sub(one, literal)


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

    Returns ``None`` when the code may be handed to OpenSCAD (which still runs sandboxed).
    """
    includes, kept, code_only = scan(code)
    for keyword, path in includes:
        if not is_allowed_path(path, library_dirs):
            return f"{keyword} <{path}> is outside the allowed library folders"
    for match in _READER_CALL.finditer(code_only):
        name = match.group(1)
        literal = _LITERAL_FIRST_ARG.match(kept, match.end())
        if literal is None:
            return f"{name}() with a computed or missing path is not allowed"
        path = decode_string(literal.group(1))
        if not is_allowed_path(path, library_dirs):
            return f'{name}("{path}") is outside the allowed library folders'
    if _FILE_ARG.search(code_only):
        return "file= arguments (deprecated file readers) are not allowed"
    return None
