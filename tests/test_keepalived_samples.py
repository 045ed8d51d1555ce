"""Every sample config Debian's keepalived package installs either loads, or is refused with
the exact keywords and lines pyvrrp does not support (IOP-: keepalived compatibility).

The samples live in /usr/share/doc/keepalived/samples/ (keepalived 2.2.7 on Debian 12);
they may be gzip-compressed on other releases, so ``.gz`` files are decompressed first.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyvrrp.cli.app import app
from pyvrrp.config import keepalived as ka
from pyvrrp.config.errors import ConfigError
from pyvrrp.config.load import load_config
from pyvrrp.config.toml_writer import config_to_toml

SAMPLES_DIR = Path("/usr/share/doc/keepalived/samples")
SAMPLES = sorted(p for p in SAMPLES_DIR.glob("keepalived.conf*")) if SAMPLES_DIR.is_dir() else []

pytestmark = pytest.mark.skipif(not SAMPLES, reason="Debian's keepalived samples are not installed")


def _sample_name(p: Path) -> str:
    return p.name.removesuffix(".gz")


#: sample → the errors expected, as (line, last element of the key path).  Absent: loads.
REFUSED: dict[str, set[tuple[int, str]]] = {
    "keepalived.conf.IPv6": {(8, "IPv6_group[0]")},  # IPv6 range ae00::2-9 in virtual_server_group
    "keepalived.conf.UDP_CHECK": {(23, "UDP_CHECK")},
    # without a config id no `@high`/`@low` script line is read (see the --config-id test below)
    "keepalived.conf.conditional_conf": {(6, "script")},
    # multipath `via A or B` is refused by name (keepalived's `or`), at its line
    "keepalived.conf.vrrp.routes": {(30, "virtual_routes[4]")},
    # `to 192.168.100./24` is not an address (keepalived skips that rule): refused at its line
    "keepalived.conf.vrrp.rules": {(11, "to"), (26, "to")},
}


def _materialize(sample: Path, tmp_path: Path) -> Path:
    """The sample as a plain file (decompressed if it is a .gz)."""
    dest = tmp_path / _sample_name(sample)
    if sample.suffix == ".gz":
        with gzip.open(sample, "rb") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
    else:
        shutil.copyfile(sample, dest)
    return dest


def _last(path: str) -> str:
    return re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", path)[-1]


def test_samples_found() -> None:
    """The walk covers the whole samples directory (not an empty glob)."""
    assert len(SAMPLES) >= 20
    assert {_sample_name(p) for p in SAMPLES} >= set(REFUSED)


@pytest.mark.parametrize("sample", SAMPLES, ids=_sample_name)
def test_sample_loads_or_is_refused_precisely(sample: Path, tmp_path: Path) -> None:
    """IOP-01: each Debian sample loads, or the report lists exactly the unsupported keywords with lines."""
    conf = _materialize(sample, tmp_path)
    name = _sample_name(sample)
    if name in REFUSED:
        with pytest.raises(ConfigError) as ei:
            ka.load_with_report(conf)
        errors = [i for i in ei.value.issues if i.severity == "error"]
        assert {(e.line, _last(e.path)) for e in errors} == REFUSED[name]
        assert all(e.file == str(conf) for e in errors)
        return
    cfg, warnings = ka.load_with_report(conf)
    # every warning is located and names the keyword it is about
    for w in warnings:
        assert w.severity == "warning" and w.file == str(conf) and isinstance(w.line, int), w
        named = f"'{_last(w.path).split('[')[0]}'" in w.message or "options" in w.message
        # a sync group's own findings (members that are no instance) are about the block its path names
        assert named or w.path.startswith("vrrp_sync_group."), w
    # the converted TOML re-loads to the same model
    toml_file = tmp_path / "converted.toml"
    toml_file.write_text(config_to_toml(cfg))
    again = load_config(toml_file)
    assert again.model_dump() == cfg.model_dump()
    assert again.source_format == "toml"
    # ... and passes `pyvrrp check-config`, which also lists the keepalived warnings
    runner = CliRunner()
    ok = runner.invoke(app, ["check-config", "-f", str(toml_file)])
    assert ok.exit_code == 0, ok.output
    orig = runner.invoke(app, ["check-config", "-f", str(conf)])
    assert orig.exit_code == 0, orig.output
    for w in warnings:
        assert f"{conf}:{w.line}: {w.path}" in orig.output


def test_email_settings_reported_in_samples(tmp_path: Path) -> None:
    """The ubiquitous global_defs e-mail block is reported keyword by keyword, never dropped silently."""
    sample = next(p for p in SAMPLES if _sample_name(p) == "keepalived.conf.sample")
    _cfg, warnings = ka.load_with_report(_materialize(sample, tmp_path))
    assert [(w.line, _last(w.path)) for w in warnings] == [
        (4, "notification_email"),
        (7, "notification_email_from"),
        (8, "smtp_server"),
        (9, "smtp_connect_timeout"),
    ]


def test_conditional_sample_with_config_id(tmp_path: Path) -> None:
    """keepalived -i high: the @high lines are read, with use_vmac (default name vrrp.VRID)."""
    sample = next(p for p in SAMPLES if _sample_name(p) == "keepalived.conf.conditional_conf")
    conf = _materialize(sample, tmp_path)
    data, issues, _ = ka.to_model_dict(conf, config_id="high")
    assert data["vrrp_instance"]["VI_0"]["priority"] == 170
    assert data["vrrp_script"]["check_VI_0"]["script"] == "/etc/keepalived/scripts/check_high_VI_0.sh"
    assert not [i for i in issues if i.severity == "error"]
    assert data["vrrp_instance"]["VI_0"]["use_vmac"] is True
    assert data["global_defs"]["net_namespace"]  # read into the model; the daemon enters it
    data_low, _, _ = ka.to_model_dict(conf, config_id="low")
    assert data_low["vrrp_instance"]["VI_0"]["priority"] == 85
