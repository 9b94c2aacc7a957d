"""The config schema described for people: every field's dotted key, type, value and the
comment written beside it in acl_jax/config.py (what `python -m acl_jax.train --help` lists).

Read from the dataclasses and their source, so the listing cannot drift from the schema.
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
