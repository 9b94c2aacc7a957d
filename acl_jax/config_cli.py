"""The config on the command line: `--config.a.b=VALUE` overrides and the field listing.

`split_config_args` takes the overrides out of argv; `apply_overrides` sets them, type-checked,
all at once (so checks spanning fields see the final values); an unknown key or a value of the
wrong type is a ConfigError naming the key and listing the valid ones. `field_rows` describes the
schema for people: every field's dotted key, type, value and the comment written beside it in
the dataclass source (what `python -m acl_jax.train --help` lists), so it cannot drift.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import re
import tokenize
import typing
from typing import Any

from acl_jax.config import Config, ConfigError, _field_types


def split_config_args(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Separates `--config.a.b=v` (or `--config.a.b v`) arguments from the rest of argv."""
    rest, overrides = [], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            body = arg[len("--config.") :]
            if "=" in body:
                key, val = body.split("=", 1)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                key, val = body, argv[i + 1]
                i += 1
            else:
                raise ConfigError(f"{arg} needs a value: {arg}=VALUE")
            overrides[key] = val
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def apply_overrides(cfg: Config, overrides: dict[str, str]) -> Config:
    """Returns `cfg` with dotted keys ("train.steps") set from strings, type-checked."""
    # Collected first and applied once per dataclass, so that checks spanning several fields
    # (amplitude_min <= amplitude_max, warmup < steps) see the final values, in any order.
    changes: dict = {}
    for key, text in overrides.items():
        _collect(cfg, key.split("."), text, key, changes)
    return _apply(cfg, changes)


def _collect(obj, path: list[str], text: str, key: str, changes: dict) -> None:
    types_ = _field_types(type(obj))
    name = path[0]
    if name not in types_:
        valid = ", ".join(sorted(types_))
        raise ConfigError(f"unknown config key {key!r}: {name!r} is not one of [{valid}]")
    typ = types_[name]
    current = getattr(obj, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"unknown config key {key!r}: {name!r} has no sub-keys")
        _collect(current, path[1:], text, key, changes.setdefault(name, {}))
        return
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"--config.{key} is a group; set one of its keys, e.g. {key}.<field>")
    changes[name] = _coerce(text, typ, key)


def _apply(obj, changes: dict):
    return dataclasses.replace(
        obj,
        **{k: _apply(getattr(obj, k), v) if isinstance(v, dict) else v for k, v in changes.items()},
    )


def _coerce(text: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if typ in (int, float, str):
            return typ(text)
        if origin is tuple:
            (elem, _) = typing.get_args(typ)
            parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
            return tuple(_coerce(p.strip(), elem, key) for p in parts)
    except ValueError:
        raise ConfigError(
            f"--config.{key}={text!r}: expected {getattr(typ, '__name__', typ)}"
        ) from None
    raise ConfigError(f"--config.{key}: unsupported field type {typ}")


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its `# comment` in the class source: the one on the field's line, else the
    comment lines just above it ("" when there is none)."""
    try:
        lines = inspect.getsource(cls).splitlines()[1:]
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("#").strip())
            continue
        m = re.match(r"(\w+)\s*:", text)
        if m and m.group(1) in names:
            out.setdefault(m.group(1), _trailing_comment(text) or " ".join(above))
        above = []
    return out


def _trailing_comment(line: str) -> str:
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return ""


def field_rows(obj: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type name, value, comment) of every leaf field of the dataclass `obj`."""
    from acl_jax.cli import type_name

    hints = typing.get_type_hints(type(obj))
    comments = field_comments(type(obj))
    rows = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            rows += field_rows(value, f"{prefix}{f.name}.")
        else:
            rows.append(
                (prefix + f.name, type_name(hints[f.name]), value, comments.get(f.name, ""))
            )
    return rows
