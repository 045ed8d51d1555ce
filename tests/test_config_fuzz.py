"""Robustness: whatever a front-end hands over, the result is a Config or a ConfigError."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrp.config import Config, ConfigError, build_config, load_config
from pyvrrp.config.models import SECTIONS, GlobalDefs, VrrpInstance, VrrpScript, VrrpSyncGroup
from pyvrrp.config.toml_loader import TomlLocator

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-300, max_value=70000)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "eth0", "192.0.2.1", "2001:db8::1/64", "fe80::1", "MASTER", "chk", "VI_1", "x y"])
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def entries(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from([*model.model_fields, "bogus"])
    return st.dictionaries(keys, values, max_size=8)


def named(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(["VI_1", "VI_2", "chk", "G", "a b"]), entries(model), max_size=3)


configs = st.fixed_dictionaries(
    {},
    optional={
        "global_defs": entries(GlobalDefs),
        "vrrp_instance": named(VrrpInstance),
        "vrrp_script": named(VrrpScript),
        "vrrp_sync_group": named(VrrpSyncGroup),
        "virtual_server": st.dictionaries(st.sampled_from(["10.0.0.1:80", "group:g", "nonsense"]), values),
        "junk": values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_any_dict_gives_a_config_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        cfg = build_config(data)
    except ConfigError as exc:
        assert exc.issues and all(i.message for i in exc.issues)
        return
    assert isinstance(cfg, Config)
    cfg.warnings()  # must not raise either


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_config_or_a_config_error(tmp_path_factory: Any, blob: bytes) -> None:
    f: Path = tmp_path_factory.mktemp("fuzz") / "f.toml"
    f.write_bytes(blob)
    try:
        load_config(f)
    except ConfigError as exc:
        assert exc.issues


toml_keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=6)
toml_scalars = (
    st.integers() | st.booleans() | st.text(max_size=8) | st.floats(allow_nan=False, allow_infinity=False)
)


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, but DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _dump(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "0.0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, list):
        return "[\n  " + ",\n  ".join(_dump(v) for v in value) + "\n]"
    return "{" + ", ".join(f"{_q(k)} = {_dump(v)}" for k, v in value.items()) + "}"


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        toml_keys,
        st.dictionaries(toml_keys, toml_scalars | st.lists(toml_scalars, max_size=3), max_size=4),
        max_size=3,
    )
)
def test_locator_finds_every_key_of_valid_toml(doc: dict[str, dict[str, Any]]) -> None:
    lines: list[str] = []
    for table, body in doc.items():
        lines.append(f"[{_q(table)}]")
        lines += [f"{_q(k)} = {_dump(v)}" for k, v in body.items()]
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == doc
    lines = text.split("\n")  # arrays span several lines
    loc = TomlLocator(text)
    for table, body in doc.items():
        header = loc((table,))[1]
        assert header is not None and lines[header - 1].startswith("[")
        for key in body:
            line = loc((table, key))[1]
            assert line is not None and lines[line - 1].startswith(_q(key))


def test_sections_cover_the_config_model() -> None:
    assert set(SECTIONS) == set(Config.model_fields)
