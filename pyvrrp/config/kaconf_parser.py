"""keepalived.conf grammar → a tree of :class:`Node` (keyword, args, children, file, line).

This is the lexer/parser half of the keepalived front-end; it knows nothing about which
keywords exist (that is :mod:`pyvrrp.config.keepalived`).  The rules follow keepalived
2.2.x's ``lib/parser.c`` and ``keepalived.conf(5)``, re-implemented here:

* Comments: ``#`` or ``!`` outside double quotes starts a comment, anywhere on the line
  (``\\#`` / ``\\!`` escape them).  Leading/trailing blanks are ignored.
* ``@ID line`` is kept only when ``config_id == ID``; ``@^ID line`` only when it differs
  (with no config id, ``@ID`` lines are dropped and ``@^ID`` lines kept).
* ``$NAME=value`` defines a parameter (``$NAME = value`` also works); a value ending in
  ``\\`` continues on the next lines (multi-line definition).  ``$NAME`` (followed by a
  blank or end of line) and ``${NAME}`` are replaced by the value; undefined names are
  left as they are.  A multi-line definition expands only when it is the whole line.
  ``${_INSTANCE}`` is the config id.
* ``include GLOB`` (exactly one argument) reads every matching regular file, sorted;
  relative patterns are relative to the including file's directory (keepalived chdir()s
  there).  ``{a,b}`` brace alternatives are expanded like GLOB_BRACE.  No match is a
  warning, as in keepalived.
* ``{`` and ``}`` outside quotes split a line, so ``vrrp_instance VI_1 {`` and a ``{``
  on the next line are the same; ``a { b }`` on one line is accepted (keepalived itself
  rejects nested blocks on one line; we are more lenient).
* Tokens are separated by blanks; a double-quoted string is one token (quotes removed).
* ``~SEQ(VAR, [START,] [STEP,] END) TEXT`` repeats TEXT with ``$VAR`` set to each value
  (``~LST`` is not supported: an error).
* Unbalanced braces and unterminated quotes raise :class:`KaConfSyntaxError` naming the
  file and line.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "KaConfSyntaxError",
    "Node",
    "ParseResult",
    "ParseWarning",
    "parse_file",
    "parse_text",
    "tokenize",
]

_MAX_INCLUDE_DEPTH = 32
_MAX_SUBST_PASSES = 32
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEF_RE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$")


@dataclass(slots=True)
class Node:
    """One statement: ``keyword args...`` optionally followed by a ``{ ... }`` block."""

    keyword: str
    args: list[str]
    file: str
    line: int
    children: list[Node] | None = None  # None: no block; []: empty block

    @property
    def is_block(self) -> bool:
        return self.children is not None

    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def words(self) -> list[str]:
        """The keyword followed by its arguments (a value line in a value block)."""
        return [self.keyword, *self.args]


@dataclass(frozen=True, slots=True)
class ParseWarning:
    message: str
    file: str
    line: int


@dataclass(slots=True)
class ParseResult:
    nodes: list[Node]
    warnings: list[ParseWarning] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, in order


class KaConfSyntaxError(ValueError):
    """A keepalived.conf that cannot be parsed; ``file``/``line`` locate the first problem."""

    def __init__(self, message: str, file: str, line: int) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.message = message
        self.file = file
        self.line = line


@dataclass(slots=True)
class _Line:
    text: str
    file: str
    line: int


def _decomment(raw: str, file: str, lineno: int) -> str:
    """Strip comments and surrounding blanks, unescape ``\\#``/``\\!`` (keepalived decomment())."""
    out: list[str] = []
    quote = False
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == '"':
            quote = not quote
            out.append(ch)
        elif ch == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if not quote and nxt in "#!":
                out.append(nxt)
            else:
                out.append(ch)
                out.append(nxt)
            i += 2
            continue
        elif ch in "#!" and not quote:
            break
        else:
            out.append(ch)
        i += 1
    if quote:
        raise KaConfSyntaxError(f"unterminated quote in {raw.strip()!r}", file, lineno)
    return "".join(out).strip(" \t")


def tokenize(text: str, *, file: str = "<string>", line: int = 0) -> list[str]:
    """Split on blanks; a ``"..."`` string is one token without its quotes (alloc_strvec)."""
    tokens: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise KaConfSyntaxError(f"unmatched quote in {text!r}", file, line)
            tokens.append(text[i + 1 : end])
            i = end + 1
        else:
            j = i
            while j < n and text[j] not in ' \t"':
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


_SEQ_RE = re.compile(
    r"~SEQ[ \t]*\([ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*,"
    r"[ \t]*([-+]?\w+)[ \t]*(?:,[ \t]*([-+]?\w+)[ \t]*)?(?:,[ \t]*([-+]?\w+)[ \t]*)?\)[ \t]*(.*)$"
)
_MAX_SEQ = 4096


def _parse_seq(text: str, file: str, line: int) -> tuple[str, range, str]:
    """``~SEQ(VAR, END)``, ``~SEQ(VAR, START, END)``, ``~SEQ(VAR, START, STEP, END) TEXT``.

    As keepalived: with one number the sequence is 1..END (or -1..END downwards); with two
    the step is +1 or -1; numbers may be 0x hex.  TEXT is read once per value with $VAR set.
    """
    m = _SEQ_RE.match(text)
    if m is None:
        raise KaConfSyntaxError(f"invalid ~SEQ definition {text!r}", file, line)
    var, a, b, c, body = m.groups()
    try:
        nums = [int(x, 0) for x in (a, b, c) if x is not None]
    except ValueError:
        raise KaConfSyntaxError(f"invalid ~SEQ numbers in {text!r}", file, line) from None
    if len(nums) == 1:
        end = nums[0]
        step = -1 if end < 1 else 1
        start = -1 if end < 0 else 1
    elif len(nums) == 2:
        start, end = nums
        step = 1 if start <= end else -1
    else:
        start, step, end = nums
        if step == 0 or (start < end and step < 0) or (start > end and step > 0):
            raise KaConfSyntaxError(f"invalid ~SEQ values in {text!r}", file, line)
    values = range(start, end + (1 if step > 0 else -1), step)
    if len(values) > _MAX_SEQ:
        raise KaConfSyntaxError(f"~SEQ expands to {len(values)} lines (limit {_MAX_SEQ})", file, line)
    if not body:
        raise KaConfSyntaxError("~SEQ needs text after the parentheses", file, line)
    return var, values, body


def _split_braces(text: str) -> list[str]:
    """Split a line at every ``{``/``}`` that is not inside double quotes."""
    parts: list[str] = []
    cur: list[str] = []
    quote = False
    for ch in text:
        if ch == '"':
            quote = not quote
            cur.append(ch)
        elif ch in "{}" and not quote:
            seg = "".join(cur).strip(" \t")
            if seg:
                parts.append(seg)
            parts.append(ch)
            cur = []
        else:
            cur.append(ch)
    seg = "".join(cur).strip(" \t")
    if seg:
        parts.append(seg)
    return parts


def _expand_braces(pattern: str) -> list[str]:
    """GLOB_BRACE: ``a{b,c}d`` → ``abd``, ``acd`` (first group, recursively)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    out: list[str] = []
    for alt in m.group(1).split(","):
        out.extend(_expand_braces(pattern[: m.start()] + alt + pattern[m.end() :]))
    return out


class _Reader:
    """Produces logical lines: comments stripped, conditionals, definitions, includes applied."""

    def __init__(self, config_id: str | None) -> None:
        self.config_id = config_id
        self.defs: dict[str, list[str]] = {}  # name -> lines (len > 1: multi-line)
        self.warnings: list[ParseWarning] = []
        self.files: list[str] = []

    # -- parameter substitution ---------------------------------------------------------
    def _lookup(self, name: str) -> list[str] | None:
        if name in self.defs:
            return self.defs[name]
        if name == "_INSTANCE":
            return [self.config_id or ""]
        if name == "_PWD":
            return None  # depends on the including file; handled in _substitute
        return None

    def _substitute(self, text: str, cur_dir: str) -> list[str]:
        """Replace ``$NAME``/``${NAME}``; may return several lines (multi-line definition)."""
        for _ in range(_MAX_SUBST_PASSES):
            if "$" not in text:
                return [text]
            changed = False
            # whole-line multi-line expansion
            m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", text)
            if m and text in (f"${m.group(1)}", f"${{{m.group(1)}}}"):
                val = self._lookup(m.group(1))
                if val is not None and len(val) > 1:
                    out: list[str] = []
                    for piece in val:
                        out.extend(self._substitute(piece, cur_dir))
                    return out
            res: list[str] = []
            i = 0
            while i < len(text):
                ch = text[i]
                if ch != "$":
                    res.append(ch)
                    i += 1
                    continue
                braced = i + 1 < len(text) and text[i + 1] == "{"
                start = i + 2 if braced else i + 1
                nm = _NAME_RE.match(text, start)
                if nm is None:
                    res.append(ch)
                    i += 1
                    continue
                name = nm.group(0)
                end = nm.end()
                if braced:
                    if end >= len(text) or text[end] != "}":
                        res.append(ch)
                        i += 1
                        continue
                    end += 1
                elif end < len(text) and text[end] not in " \t":
                    res.append(ch)
                    i += 1
                    continue
                val = [cur_dir] if name == "_PWD" and name not in self.defs else self._lookup(name)
                if val is None or len(val) > 1:
                    res.append(text[i:end])
                    i = end
                    continue
                res.append(val[0])
                i = end
                changed = True
            text = "".join(res)
            if not changed:
                return [text]
        return [text]

    # -- reading -------------------------------------------------------------------------
    def read_file(self, path: Path, depth: int, origin: tuple[str, int] | None) -> Iterator[_Line]:
        if depth > _MAX_INCLUDE_DEPTH:
            file, line = origin or (str(path), 0)
            raise KaConfSyntaxError(f"include nesting deeper than {_MAX_INCLUDE_DEPTH}", file, line)
        try:
            raw = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            file, line = origin or (str(path), 0)
            raise KaConfSyntaxError(f"cannot read {path}: {exc.strerror}", file, line) from exc
        self.files.append(str(path))
        yield from self.read_text(raw, str(path), str(path.parent), depth)

    def read_text(self, raw: str, fname: str, cur_dir: str, depth: int) -> Iterator[_Line]:
        multiline_name: str | None = None
        for lineno, rawline in enumerate(raw.splitlines(), start=1):
            text = _decomment(rawline.rstrip("\r\n"), fname, lineno)
            if multiline_name is not None:
                # continuation of a multi-line $NAME=... definition
                cont = text.endswith("\\")
                if cont:
                    text = text[:-1].rstrip(" \t")
                if text:
                    self.defs[multiline_name].append(text)
                if not cont:
                    multiline_name = None
                continue
            if not text:
                continue
            if text.startswith("@"):
                neg = text.startswith("@^")
                rest = text[2:] if neg else text[1:]
                parts = re.split(r"[ \t]+", rest, maxsplit=1)
                if len(parts) < 2:
                    continue
                matches = self.config_id is not None and parts[0] == self.config_id
                if matches == neg:
                    continue
                text = parts[1].strip(" \t")
            dm = _DEF_RE.match(text)
            if dm and dm.group(2).endswith("\\"):
                first = dm.group(2)[:-1].rstrip(" \t")
                self.defs[dm.group(1)] = [first] if first else []
                multiline_name = dm.group(1)
                continue
            yield from self._logical(text, fname, lineno, cur_dir, depth, conditional_done=True)
        if multiline_name is not None and not self.defs[multiline_name]:
            self.defs.pop(multiline_name)

    def _logical(
        self, text: str, fname: str, lineno: int, cur_dir: str, depth: int, *, conditional_done: bool = False
    ) -> Iterator[_Line]:
        """One logical line after comments: @id, $NAME=, ~SEQ, substitution, include."""
        if text.startswith("@") and not conditional_done:
            neg = text.startswith("@^")
            rest = text[2:] if neg else text[1:]
            parts = re.split(r"[ \t]+", rest, maxsplit=1)
            if len(parts) < 2:
                return
            if (self.config_id is not None and parts[0] == self.config_id) == neg:
                return
            text = parts[1].strip(" \t")
        dm = _DEF_RE.match(text)
        if dm:
            self.defs[dm.group(1)] = [dm.group(2)]
            return
        if text.startswith("~SEQ"):
            var, values, body = _parse_seq(text, fname, lineno)
            for value in values:
                self.defs[var] = [str(value)]
                yield from self._logical(body, fname, lineno, cur_dir, depth)
            return
        if text.startswith("~"):
            raise KaConfSyntaxError(
                "only the ~SEQ generator is supported (not ~LST); expand it by hand", fname, lineno
            )
        for piece in self._substitute(text, cur_dir):
            # keepalived checks for include before splitting at braces (GLOB_BRACE)
            words = tokenize(piece, file=fname, line=lineno) if piece.startswith("include") else []
            if len(words) == 2 and words[0] == "include":
                yield from self._include(words[1], cur_dir, depth, fname, lineno)
                continue
            yield _Line(piece, fname, lineno)

    def _include(self, pattern: str, cur_dir: str, depth: int, fname: str, lineno: int) -> Iterator[_Line]:
        matches: list[str] = []
        for pat in _expand_braces(pattern):
            full = pat if os.path.isabs(pat) else os.path.join(cur_dir, pat)
            matches.extend(sorted(glob.glob(full)))
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            self.warnings.append(ParseWarning(f"include {pattern!r}: no config files matched", fname, lineno))
            return
        for f in files:
            yield from self.read_file(Path(f), depth + 1, (fname, lineno))


def _build(lines: Iterator[_Line]) -> list[Node]:
    root: list[Node] = []
    stack: list[tuple[list[Node], Node | None]] = [(root, None)]
    for ln in lines:
        for seg in _split_braces(ln.text):
            siblings, _parent = stack[-1]
            if seg == "{":
                if not siblings or siblings[-1].children is not None:
                    raise KaConfSyntaxError("'{' without a keyword before it", ln.file, ln.line)
                owner = siblings[-1]
                owner.children = []
                stack.append((owner.children, owner))
            elif seg == "}":
                if len(stack) == 1:
                    raise KaConfSyntaxError("extra '}' found", ln.file, ln.line)
                stack.pop()
            else:
                words = tokenize(seg, file=ln.file, line=ln.line)
                if not words:  # e.g. a lone "" token list cannot happen, but be safe
                    continue
                siblings.append(Node(words[0], words[1:], ln.file, ln.line))
    if len(stack) > 1:
        _, opened = stack[-1]
        assert opened is not None
        raise KaConfSyntaxError(
            f"missing '}}': block '{opened.keyword}' opened here is never closed ({len(stack) - 1} open)",
            opened.file,
            opened.line,
        )
    return root


def parse_file(path: str | os.PathLike[str], *, config_id: str | None = None) -> ParseResult:
    """Parse a keepalived.conf file (and its includes) into a node tree."""
    reader = _Reader(config_id)
    nodes = _build(reader.read_file(Path(path), 0, None))
    return ParseResult(nodes, reader.warnings, reader.files)


def parse_text(
    text: str,
    *,
    filename: str = "<string>",
    config_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> ParseResult:
    """Parse keepalived.conf text; ``base_dir`` resolves relative includes (default: cwd)."""
    reader = _Reader(config_id)
    cur_dir = str(base_dir) if base_dir is not None else os.getcwd()
    nodes = _build(reader.read_text(text, filename, cur_dir, 0))
    return ParseResult(nodes, reader.warnings, [filename])
