"""``load_config(path)``: read a file, pick the front-end by its content, return a :class:`Config`.

Dispatch (docs/config.md "File formats"):

1. The text parses as TOML and has a known top-level table (or is empty, or the file is
   named ``*.toml``) → the TOML front-end.
2. Otherwise, if ``pyvrrp.config.keepalived`` is installed → the keepalived.conf front-end
   (``pyvrrp.config.keepalived.load(path, config_id=...)``), unless the file is named
   ``*.toml`` or has ``[section]`` lines of pyvrrp's own tables, which makes it a TOML file
   with a syntax error.
3. Otherwise the TOML syntax error is reported.

Every failure, including a missing, unreadable or binary file, is a
:class:`~pyvrrp.config.errors.ConfigError` with one line per problem; nothing else escapes.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Literal

from pyvrrp.config.errors import ConfigError, ConfigIssue
from pyvrrp.config.models import SECTIONS, Config
from pyvrrp.config.toml_loader import loads_toml

__all__ = ["KEEPALIVED_MODULE", "detect_format", "load_config", "read_text"]

KEEPALIVED_MODULE = "pyvrrp.config.keepalived"
_MAX_BYTES = 16 * 1024 * 1024
_TOML_HEADER = re.compile(
    r"^\s*\[{1,2}\s*(" + "|".join(re.escape(s) for s in SECTIONS) + r")\b", re.MULTILINE
)


def read_text(path: str | Path) -> str:
    """The file's text, or a one-issue :class:`ConfigError` saying why it cannot be used."""
    p = Path(path)
    name = str(path)

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigIssue("", message, file=name)])

    try:
        if p.is_dir():
            raise fail("is a directory, not a configuration file")
        with p.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > _MAX_BYTES:
        raise fail(f"larger than {_MAX_BYTES // (1024 * 1024)} MiB: not a configuration file")
    if b"\x00" in data:
        raise fail("binary data (NUL bytes): not a configuration file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [ConfigIssue("", f"not UTF-8 text (bad byte at offset {exc.start})", file=name, line=line)]
        ) from None
    return text.removeprefix("\ufeff")


def _keepalived_available() -> bool:
    try:
        return importlib.util.find_spec(KEEPALIVED_MODULE) is not None
    except (ImportError, ValueError):
        return False


def detect_format(text: str, path: str | Path | None = None) -> Literal["toml", "keepalived"]:
    """``"toml"`` or ``"keepalived"`` for ``text`` (see the module docstring)."""
    suffix = Path(path).suffix.lower() if path is not None else ""
    if suffix == ".toml":
        return "toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = None
    if data is not None and (not data or any(k in SECTIONS for k in data)):
        return "toml"
    if not _keepalived_available():
        return "toml"
    if data is None and _TOML_HEADER.search(text):
        return "toml"  # pyvrrp's own [tables] with a typo somewhere
    return "keepalived"


def load_config(path: str | Path, *, config_id: str | None = None) -> Config:
    """Load and validate ``path`` (TOML or keepalived.conf).  Raises :class:`ConfigError`.

    ``config_id`` selects keepalived's ``@ID`` conditional lines (keepalived ``-i``); the TOML
    front-end has no conditionals and ignores it.
    """
    text = read_text(path)
    if detect_format(text, path) == "toml":
        return loads_toml(text, file=str(path))
    module = importlib.import_module(KEEPALIVED_MODULE)
    cfg = module.load(path, config_id=config_id)
    if not isinstance(cfg, Config):
        raise ConfigError([ConfigIssue("", "the keepalived front-end returned no Config", file=str(path))])
    return cfg
