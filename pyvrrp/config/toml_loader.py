"""The TOML front-end: ``tomllib`` for the data, a small scanner for line numbers.

``tomllib`` returns plain dicts without positions, so :class:`TomlLocator` re-scans the text
(tables, array tables, dotted keys, inline tables, array items) to map a key path such as
``("vrrp_instance", "VI_1", "virtual_ipaddress", 1)`` to the line it was written on; a path
that was not written (a missing key) falls back to its closest written parent.
"""

from __future__ import annotations

import bisect
import contextlib
import re
import tomllib
from pathlib import Path

from pyvrrp.config.errors import ConfigError, ConfigIssue, Loc
from pyvrrp.config.models import Config, build_config

__all__ = ["TomlLocator", "load_toml", "loads_toml", "parse_toml"]

_SYNTAX_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_SYNTAX_EOF = re.compile(r"\s*\(at end of document\)\s*$")
_BARE = re.compile(r"[A-Za-z0-9_-]+")


class TomlLocator:
    """Maps key paths of a TOML document to ``(file, line)``."""

    def __init__(self, text: str, file: str | None = None) -> None:
        self.file = file
        self._text = text
        self._nl = [i for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[Loc, int] = {}
        self._array_tables: dict[Loc, int] = {}
        # errors only happen on text tomllib rejected; what was found so far still helps
        with contextlib.suppress(IndexError, ValueError):
            self._scan()

    def __call__(self, loc: Loc) -> tuple[str | None, int | None]:
        for n in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:n]))
            if line is not None:
                return self.file, line
        return self.file, None

    # -- scanner ---------------------------------------------------------------------------

    def _line(self, pos: int) -> int:
        return bisect.bisect_left(self._nl, pos) + 1

    def _record(self, loc: Loc, pos: int) -> None:
        self.lines.setdefault(loc, self._line(pos))

    def _skip_blank(self, pos: int, *, newlines: bool) -> int:
        t = self._text
        while pos < len(t):
            c = t[pos]
            if c in " \t\r" or (newlines and c == "\n"):
                pos += 1
            elif c == "#":
                while pos < len(t) and t[pos] != "\n":
                    pos += 1
            else:
                break
        return pos

    def _scan(self) -> None:
        t = self._text
        table: Loc = ()
        pos = 0
        while True:
            pos = self._skip_blank(pos, newlines=True)
            if pos >= len(t):
                return
            if t[pos] == "[":
                double = t.startswith("[[", pos)
                keys, pos = self._keys(pos + (2 if double else 1))
                pos = self._skip_blank(pos, newlines=False)
                pos += 2 if double else 1
                start = pos
                path: Loc = tuple(keys)
                for n in range(1, len(path)):
                    self._record(path[:n], start - 1)
                if double:
                    idx = self._array_tables.get(path, -1) + 1
                    self._array_tables[path] = idx
                    self._record(path, start - 1)
                    path = (*path, idx)
                self.lines[path] = self._line(start - 1)
                table = path
                continue
            keys, pos = self._keys(pos)
            pos = self._skip_blank(pos, newlines=False)
            if pos >= len(t) or t[pos] != "=":
                raise ValueError("expected '='")
            full: Loc = (*table, *keys)
            key_pos = pos
            for n in range(len(table) + 1, len(full)):
                self._record(full[:n], key_pos)
            pos = self._value(full, self._skip_blank(pos + 1, newlines=False), key_pos)

    def _keys(self, pos: int) -> tuple[list[str], int]:
        t = self._text
        keys: list[str] = []
        while True:
            pos = self._skip_blank(pos, newlines=False)
            c = t[pos]
            if c == '"':
                end = pos + 1
                while t[end] != '"':
                    end += 2 if t[end] == "\\" else 1
                keys.append(tomllib.loads(f"k = {t[pos : end + 1]}")["k"])
                pos = end + 1
            elif c == "'":
                end = t.index("'", pos + 1)
                keys.append(t[pos + 1 : end])
                pos = end + 1
            else:
                m = _BARE.match(t, pos)
                if not m:
                    raise ValueError("bad key")
                keys.append(m.group())
                pos = m.end()
            pos = self._skip_blank(pos, newlines=False)
            if pos < len(t) and t[pos] == ".":
                pos += 1
                continue
            return keys, pos

    def _value(self, loc: Loc, pos: int, at: int) -> int:
        """Record ``loc`` (at position ``at``) and skip its value starting at ``pos``."""
        t = self._text
        self._record(loc, at)
        c = t[pos]
        if c == "[":
            pos += 1
            i = 0
            while True:
                pos = self._skip_blank(pos, newlines=True)
                if t[pos] == "]":
                    return pos + 1
                pos = self._value((*loc, i), pos, pos)
                i += 1
                pos = self._skip_blank(pos, newlines=True)
                if t[pos] == ",":
                    pos += 1
        if c == "{":
            pos += 1
            while True:
                pos = self._skip_blank(pos, newlines=False)
                if t[pos] == "}":
                    return pos + 1
                key_at = pos
                keys, pos = self._keys(pos)
                pos = self._skip_blank(pos, newlines=False)
                pos = self._value((*loc, *keys), self._skip_blank(pos + 1, newlines=False), key_at)
                pos = self._skip_blank(pos, newlines=False)
                if t[pos] == ",":
                    pos += 1
        for quote in ('"""', "'''"):
            if t.startswith(quote, pos):
                end = pos + 3
                while not t.startswith(quote, end) or (quote == '"""' and t[end - 1] == "\\"):
                    end += 1
                end += 3
                while end < len(t) and t[end] == quote[0]:  # up to two extra quotes belong to the string
                    end += 1
                return end
        if c == '"':
            end = pos + 1
            while t[end] != '"':
                end += 2 if t[end] == "\\" else 1
            return end + 1
        if c == "'":
            return t.index("'", pos + 1) + 1
        end = pos
        while end < len(t) and t[end] not in ",]}\n#":
            end += 1
        return end


def parse_toml(text: str, *, file: str | None = None) -> dict[str, object]:
    """``tomllib.loads`` with its syntax error turned into a :class:`ConfigError` with a line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        line: int | None = None
        m = _SYNTAX_POS.search(msg)
        if m:
            line = int(m.group(1))
            msg = f"{msg[: m.start()]} (column {m.group(2)})"
        elif _SYNTAX_EOF.search(msg):
            msg = _SYNTAX_EOF.sub(" (at end of file)", msg)
            line = text.count("\n") + (0 if text.endswith("\n") else 1)
        raise ConfigError([ConfigIssue("", f"TOML syntax error: {msg}", file=file, line=line)]) from None


def loads_toml(text: str, *, file: str | None = None) -> Config:
    """Validate TOML ``text``; ``file`` names it in errors.  Raises :class:`ConfigError`."""
    data = parse_toml(text, file=file)
    return build_config(data, file=file, fmt="toml", locate=TomlLocator(text, file))


def load_toml(path: str | Path) -> Config:
    """Read and validate a TOML file.  Raises :class:`ConfigError` (also for I/O problems)."""
    from pyvrrp.config.load import read_text

    text = read_text(path)
    return loads_toml(text, file=str(path))
