"""Typed configs: dataclasses filled from YAML, overridden from the command line.

A config is a (possibly nested) dataclass whose fields each carry a docstring
(a string literal right under the field, as in :class:`reward.score.RewardWeights`).
Those docstrings are the single source of help: :func:`field_help` reads them
for ``--help`` and for the README's configuration reference.

- :func:`load` merges, in order: the dataclass defaults, a YAML file, and
  ``key=value`` overrides (dotted keys reach nested configs:
  ``reward.ssim=0.5``). An unknown key or a value of the wrong type is a
  :class:`ConfigError` with a one-line message naming the key; range checks
  stay in each dataclass's ``__post_init__`` and are re-raised the same way.
- :func:`add_arguments` / :func:`from_args` give an entry point one
  ``--config FILE`` option plus one ``--key VALUE`` option per field, each
  with its help text.

Two more conventions for commands (see :mod:`configs.cli`):

- A field without a default is required: leaving it out (on the command line and in
  the YAML) is a :class:`ConfigError` naming it.
- A config class may name top-level fields in a class attribute ``POSITIONAL``
  (``POSITIONAL = ("a", "b")``, not a field: no annotation). Those become positional
  arguments, in that order (``python -m rl.compare A B``), instead of ``--a``
  options; their values go through the same coercion and checks. A positional field
  without a default must be given on the command line; one with a default may be
  left out (or set in the YAML).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing

import yaml


class ConfigError(ValueError):
    """A bad config file, key or value; the message is one line naming the problem."""


@functools.cache
def field_help(cls) -> dict[str, str]:
    """``{field: help}`` from the docstrings written under each field of dataclass ``cls``."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, following in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                helps[node.target.id] = " ".join(following.value.value.split())
    return helps


def _hints(cls) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def _coerce(value, hint, key: str):
    """``value`` (from YAML or a command-line string) as type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, options[0], key)
    if origin in (tuple, list):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = (typing.get_args(hint) or (str,))[0]
        items = [_coerce(v, inner, key) for v in items if not (isinstance(v, str) and v == "")]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint in (int, float, str):
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}") from None
    return value


def _build(cls, values: dict, prefix: str = ""):
    """An instance of ``cls`` from a nested mapping, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {values!r}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (known: {', '.join(sorted(known))})"
        )
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.name not in values and _default(f) is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required setting '{prefix}{missing[0]}'")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{key}.")
        else:
            kwargs[name] = _coerce(value, hint, key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{prefix or cls.__name__ + ': '}{error}") from None


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
    tree[leaf] = value


def read_yaml(path: str, what: str = "config"):
    """The YAML document at ``path`` (``{}`` when empty); a one-line ConfigError naming ``what``
    and the file when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {str(error).splitlines()[0]}") from None


def load(cls, path: str | None = None, overrides: typing.Iterable[str] = ()):
    """``cls`` filled from its defaults, the YAML file at ``path``, then ``key=value`` overrides."""
    values = read_yaml(path) if path else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        _set(values, key.strip(), value)
    return _build(cls, values)


def _default(f: dataclasses.Field):
    """The default of field ``f`` (its factory called), or ``dataclasses.MISSING`` when required."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def positional(cls) -> tuple[str, ...]:
    """The fields of ``cls`` given by position on the command line (its ``POSITIONAL``), checked."""
    names = tuple(getattr(cls, "POSITIONAL", ()))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    for name in names:
        if name not in fields or dataclasses.is_dataclass(hints[name]):
            raise TypeError(f"{cls.__name__}.POSITIONAL: {name!r} is not a top-level setting")
    return names


def _walk(cls, prefix: str = ""):
    """``(dotted name, hint, default, help)`` for every leaf field of a nested config
    (``default`` is ``dataclasses.MISSING`` for a required field)."""
    hints, helps = _hints(cls), field_help(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _walk(hint, f"{prefix}{f.name}.")
            continue
        yield f"{prefix}{f.name}", hint, _default(f), helps.get(f.name, "")


def _shown(default) -> str:
    return "required" if default is dataclasses.MISSING else f"default: {default}"


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """Add ``--config FILE`` and a ``--name VALUE`` option (with help) per field of ``cls``, or a
    positional argument per field named in ``cls.POSITIONAL``; a bool field's option alone means
    true (``--fresh`` = ``--fresh true``)."""
    parser.add_argument("--config", default=None, help="YAML file of settings (the options below win)")
    group = parser.add_argument_group(f"{cls.__name__} settings")
    positionals = {name: None for name in positional(cls)}  # in command-line order
    for name, hint, default, help_text in _walk(cls):
        if name in positionals:
            positionals[name] = (default, help_text)
            continue
        flag = {"nargs": "?", "const": "true"} if hint is bool else {}
        group.add_argument(f"--{name}", dest=f"cfg:{name}", default=None, metavar="VALUE",
                           help=f"{help_text} ({_shown(default)})", **flag)
    for name, (default, help_text) in positionals.items():
        optional = {} if default is dataclasses.MISSING else {"nargs": "?"}
        parser.add_argument(f"cfg:{name}", default=None, metavar=name.upper(),
                            help=f"{help_text} ({_shown(default)})", **optional)


def from_args(cls, args: argparse.Namespace):
    """The config named by parsed :func:`add_arguments` options."""
    overrides = [f"{k[4:]}={v}" for k, v in vars(args).items() if k.startswith("cfg:") and v is not None]
    return load(cls, getattr(args, "config", None), overrides)


def reference_markdown(cls) -> str:
    """A Markdown table of every setting of ``cls``: name, default, help (for the README)."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    positionals = positional(cls)
    for name, _, default, help_text in _walk(cls):
        shown = "required" if default is dataclasses.MISSING else f"`{default}`"
        label = f"`{name.upper()}` (positional)" if name in positionals else f"`{name}`"
        rows.append(f"| {label} | {shown} | {help_text} |")
    return "\n".join(rows)
