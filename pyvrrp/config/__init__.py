"""Configuration: the pydantic model and its front-ends (TOML; keepalived.conf).

``load_config(path)`` is the entry point; it raises :class:`ConfigError` listing every
problem.  ``check(config)`` (or ``config.warnings()``) lists warnings.
"""

from __future__ import annotations

from pyvrrp.config.errors import ConfigError, ConfigIssue, format_path
from pyvrrp.config.load import detect_format, load_config
from pyvrrp.config.models import (
    Config,
    GlobalDefs,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
    build_config,
    check,
    validate_config,
)
from pyvrrp.config.toml_loader import load_toml, loads_toml

__all__ = [
    "Config",
    "ConfigError",
    "ConfigIssue",
    "GlobalDefs",
    "VrrpInstance",
    "VrrpScript",
    "VrrpSyncGroup",
    "build_config",
    "check",
    "detect_format",
    "format_path",
    "load_config",
    "load_toml",
    "loads_toml",
    "validate_config",
]
