"""Configuration errors: every problem found in one pass, each named by its key path.

A :class:`ConfigIssue` names the offending key with a dotted path in TOML's own dotted-key
syntax (``vrrp_instance.VI_1.virtual_router_id``; list items as ``[0]``; keys that are not
bare words are quoted, e.g. ``virtual_server."192.168.233.200:80".lvs_sched``) and, when the
front-end knows it, the file and line.  :class:`ConfigError` carries all of them;
``str(error)`` prints one per line::

    lb1.toml:7: vrrp_instance.VI_1.virtual_router_id: must be 1..255, got 0

:func:`issues_from_validation_error` turns a pydantic ``ValidationError`` into issues with
plain-English messages; both front-ends (TOML and keepalived.conf) use it.
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "Loc",
    "Locator",
    "format_path",
    "issues_from_validation_error",
    "show_value",
]

#: A key path as a tuple: table/key names (str) and list indexes (int).
Loc = tuple[str | int, ...]
#: Maps a key path to ``(file, line)`` (either may be None) for error messages.
Locator = Callable[[Loc], tuple[str | None, int | None]]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(loc: Sequence[str | int]) -> str:
    """``("vrrp_instance", "VI_1", "virtual_ipaddress", 0)`` → ``vrrp_instance.VI_1.virtual_ipaddress[0]``.

    Keys that are not TOML bare keys are double-quoted, so the path can be pasted back into
    a TOML file as a dotted key.
    """
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
            continue
        part = el if _BARE_KEY.fullmatch(el) else '"' + el.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out = f"{out}.{part}" if out else part
    return out


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One configuration problem (an error, or a warning from :func:`pyvrrp.config.check`)."""

    path: str
    """Dotted key path, e.g. ``vrrp_instance.VI_1.priority``; empty for file-level problems."""
    message: str
    """Plain English, e.g. ``must be 1..255, got 0``."""
    file: str | None = None
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        what = f"{self.path}: " if self.path else ""
        return f"{where}{what}{self.message}"

    def located(self, file: str | None, line: int | None) -> ConfigIssue:
        """A copy with ``file``/``line`` filled in where they are still unknown."""
        return replace(self, file=self.file if self.file is not None else file, line=self.line or line)


class ConfigError(Exception):
    """The configuration is invalid.  ``issues`` lists every error found (never empty)."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        if not self.issues:
            self.issues = [ConfigIssue("", "invalid configuration")]
        super().__init__(str(self))

    @property
    def errors(self) -> list[ConfigIssue]:
        """Alias of :attr:`issues` (the name docs/architecture.md uses)."""
        return self.issues

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)


# --------------------------------------------------------------------------- pydantic → issues


def show_value(value: Any) -> str:
    """A short TOML-flavoured rendering of a user value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, Mapping):
        text = "a table"
    elif isinstance(value, list | tuple):
        text = "a list"
    elif value is None:
        text = "nothing"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any] | None:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return None


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """Accepted input names (field names and string aliases) → field name."""
    names: dict[str, str] = {}
    for fname, info in model.model_fields.items():
        names[fname] = fname
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names[alias] = fname
            elif alias is not None and hasattr(alias, "choices"):
                for choice in alias.choices:
                    if isinstance(choice, str):
                        names[choice] = fname
    return names


_TAG_LIKE = re.compile(r"^(?:[a-z_]+\[.*\]|function-.*|int|float|str|bool|bytes|none|list|dict|tuple|set)$")


def _walk(root: Any, loc: Sequence[str | int]) -> list[str | int]:
    """``loc`` without the union-member tags pydantic inserts (e.g. ``'int'``, ``'list[int]'``)."""
    out: list[str | int] = []
    tp: Any = root
    for el in loc:
        tp = _strip_annotated(tp)
        members = _union_members(tp)
        if members is not None:
            if len(members) == 1:
                tp = _strip_annotated(members[0])
            else:  # a real union: pydantic inserts the member's tag here
                tp = Any
                continue
        origin = typing.get_origin(tp)
        if _is_model(tp):
            if isinstance(el, str):
                fname = _field_names(tp).get(el)
                tp = tp.model_fields[fname].annotation if fname else Any
            else:
                tp = Any
        elif origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, int]):
            args = typing.get_args(tp)
            tp = args[1] if len(args) == 2 else Any
        elif origin in (list, tuple, set, frozenset) or origin is typing.get_origin(Sequence[int]):
            args = typing.get_args(tp)
            tp = args[0] if args else Any
        else:
            if tp is Any and isinstance(el, str) and _TAG_LIKE.match(el):
                continue
            tp = Any
        out.append(el)
    return out


def _message(
    err: Mapping[str, Any],
    parent: type[BaseModel] | None,
    key: str | int | None,
    target: type[BaseModel] | None = None,
) -> str:
    """Plain English for one pydantic error; ``parent`` owns the key, ``target`` is its model type."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    got = f", got {show_value(value)}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        hint = ""
        if parent is not None and isinstance(key, str):
            close = difflib.get_close_matches(key, list(_field_names(parent)), n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        return f"unknown key{hint}"
    if kind in ("int_parsing", "int_type"):
        return f"must be an integer{got}"
    if kind == "int_from_float":
        return f"must be a whole number{got}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number{got}"
    if kind == "finite_number":
        return f"must be a finite number{got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false{got}"
    if kind in ("string_type", "string_sub_type"):
        return f"must be a string{got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("list_type", "tuple_type", "set_type", "iterable_type"):
        return f"must be a list{got}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        if getattr(target, "accepts_string", False):
            return f"must be a string or a table{got}"
        return f"must be a table{got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}{got}"
    if kind in ("enum",):
        return f"must be {ctx.get('expected', 'one of the allowed values')}{got}"
    bounds = {
        "greater_than_equal": ("ge", ">="),
        "greater_than": ("gt", ">"),
        "less_than_equal": ("le", "<="),
        "less_than": ("lt", "<"),
    }
    if kind in bounds:
        name, op = bounds[kind]
        return f"must be {op} {ctx.get(name)}{got}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"must have at most {n} items"
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def issues_from_validation_error(
    exc: ValidationError,
    *,
    model: Any = None,
    prefix: Loc = (),
    locate: Locator | None = None,
) -> list[tuple[Loc, ConfigIssue]]:
    """Turn every error of ``exc`` into a ``(loc, ConfigIssue)`` with a plain-English message.

    ``model`` is the type that was validated (used to drop pydantic's union-member tags from
    locations and to suggest a close key for unknown keys); ``prefix`` is prepended to every
    location (e.g. ``("vrrp_instance", "VI_1")`` when one instance was validated on its own).
    Errors of union members at the same location are merged into one message.
    """
    merged: dict[Loc, list[str]] = {}
    for err in exc.errors(include_url=False):
        raw_loc = tuple(err.get("loc", ()))
        loc_list = _walk(model, raw_loc) if model is not None else list(raw_loc)
        parent = None
        if err.get("type") == "extra_forbidden" and loc_list and model is not None:
            parent = _model_of(model, loc_list[:-1])  # the owner of the unknown key
        loc: Loc = (*prefix, *loc_list)
        key = loc_list[-1] if loc_list else None
        target = _model_of(model, loc_list) if model is not None else None
        msg = _message(err, parent, key, target)
        bucket = merged.setdefault(loc, [])
        if msg not in bucket:
            bucket.append(msg)
    out: list[tuple[Loc, ConfigIssue]] = []
    for loc, msgs in merged.items():
        file, line = locate(loc) if locate is not None else (None, None)
        out.append((loc, ConfigIssue(format_path(loc), _join(msgs), file=file, line=line)))
    return out


def _join(msgs: list[str]) -> str:
    """Merge the messages of a union's members: "must be an integer or a list, got 'x'"."""
    if len(msgs) == 1:
        return msgs[0]
    tails = {m.rpartition(", got ")[2] for m in msgs}
    if len(tails) == 1 and all(m.startswith("must be ") and ", got " in m for m in msgs):
        heads = [m.rpartition(", got ")[0].removeprefix("must be ") for m in msgs]
        return f"must be {' or '.join(heads)}, got {tails.pop()}"
    return "; or ".join(msgs)


def _model_of(root: Any, loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model type found at ``loc`` under ``root`` (None if it is not a model)."""
    tp: Any = root
    for el in loc:
        tp = _strip_annotated(tp)
        members = _union_members(tp)
        if members is not None and len(members) == 1:
            tp = _strip_annotated(members[0])
        origin = typing.get_origin(tp)
        if _is_model(tp) and isinstance(el, str):
            fname = _field_names(tp).get(el)
            tp = tp.model_fields[fname].annotation if fname else None
        elif origin in (dict, list, tuple):
            args = typing.get_args(tp)
            tp = args[-1] if origin is dict else (args[0] if args else None)
        else:
            return None
    tp = _strip_annotated(tp)
    members = _union_members(tp)
    if members is not None and len(members) == 1:
        tp = _strip_annotated(members[0])
    return tp if _is_model(tp) else None
