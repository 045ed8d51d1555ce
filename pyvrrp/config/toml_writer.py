"""A small TOML 1.0 writer for pyvrrp's config shapes (the stdlib only reads TOML).

:func:`dumps` writes nested dicts / lists / scalars:

* scalars of a table first, then its sub-tables (``[a.b]``) and arrays of tables
  (``[[a.b.c]]``), so the output is valid TOML whatever the key order;
* a list of "flat" dicts (scalar or scalar-list values only, e.g. VIPs or track entries) is
  written as an inline array ``[{ ... }, ...]``; a list of dicts that contain tables or
  lists of tables (real servers with checkers) becomes an array of tables;
* keys that are not bare words are quoted (``virtual_server."10.0.0.1:80"``);
* ``None`` values are left out (TOML has no null).

:func:`config_to_toml` dumps a pydantic ``Config`` (only the fields that were set, so a
converted keepalived.conf stays as short as the original) and is what ``pyvrrp convert``
prints.  The result re-loads to an equal model (tests/test_convert.py).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["config_to_toml", "dumps", "format_key", "format_value"]

_WRAP = 100
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def format_key(key: str) -> str:
    """A TOML key: bare when possible, else a basic string."""
    if not isinstance(key, str):
        raise TypeError(f"TOML keys must be strings, got {type(key).__name__}")
    return key if _BARE.fullmatch(key) else _string(key)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_array_of_tables(v: Any) -> bool:
    return (
        isinstance(v, Sequence)
        and not isinstance(v, str | bytes)
        and len(v) > 0
        and all(_is_table(x) for x in v)
        and any(not _is_flat(x) for x in v)
    )


def _is_flat(d: Mapping[str, Any]) -> bool:
    """A table that reads well inline: no sub-tables, no lists of tables."""
    for v in d.values():
        if _is_table(v):
            return False
        if isinstance(v, Sequence) and not isinstance(v, str | bytes) and any(_is_table(x) for x in v):
            return False
    return True


def format_value(v: Any) -> str:
    """An inline TOML value (scalars, lists, inline tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".eE") else r + ".0"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, _dt.datetime | _dt.date | _dt.time):
        return v.isoformat()
    if isinstance(v, Mapping):
        items = [f"{format_key(k)} = {format_value(x)}" for k, x in v.items() if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(v, Sequence) and not isinstance(v, bytes):
        return "[" + ", ".join(format_value(x) for x in v if x is not None) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML: {v!r}")


def _emit_table(out: list[str], path: tuple[str, ...], table: Mapping[str, Any], header: str | None) -> None:
    scalars: list[tuple[str, Any]] = []
    subtables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
    for k, v in table.items():
        if v is None:
            continue
        if _is_table(v):
            subtables.append((k, v))
        elif _is_array_of_tables(v):
            arrays.append((k, v))
        else:
            scalars.append((k, v))
    # A header is needed if this table has scalars, or is empty (so it exists at all), or is
    # an array-of-tables element (always has its header).
    if header is not None and (scalars or header.startswith("[[") or (not subtables and not arrays)):
        if out:
            out.append("")
        out.append(header)
    for k, v in scalars:
        line = f"{format_key(k)} = {format_value(v)}"
        if len(line) > _WRAP and isinstance(v, Sequence) and not isinstance(v, str | bytes) and len(v) > 1:
            # a multi-line array, one element per line (inline tables must stay on one line)
            out.append(f"{format_key(k)} = [")
            out.extend(f"    {format_value(x)}," for x in v if x is not None)
            out.append("]")
        else:
            out.append(line)
    for k, v in subtables:
        sub = (*path, k)
        _emit_table(out, sub, v, "[" + ".".join(format_key(p) for p in sub) + "]")
    for k, items in arrays:
        sub = (*path, k)
        for item in items:
            _emit_table(out, sub, item, "[[" + ".".join(format_key(p) for p in sub) + "]]")


def dumps(data: Mapping[str, Any]) -> str:
    """Serialize a mapping to TOML text (ends with a newline)."""
    out: list[str] = []
    _emit_table(out, (), data, None)
    return "\n".join(out) + "\n"


def config_to_toml(config: Any, *, header: str | None = None) -> str:
    """TOML text for a pydantic ``Config`` (fields that were set; None left out)."""
    data = config.model_dump(mode="json", exclude_unset=True, exclude_none=True, by_alias=False)
    data = {k: v for k, v in data.items() if v != {}}  # no empty [section] headers
    text = dumps(data)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + "\n" + text
    return text
