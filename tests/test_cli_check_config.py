"""``pyvrrp check-config``: exit codes, summary, every error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pyvrrp.config.load as load_mod
from pyvrrp.cli.app import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

GOOD = """\
[global_defs]
router_id = "lb1"
enable_script_security = true

[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
priority = 150
advert_int = 1
virtual_ipaddress = ["192.168.233.200/32"]
unicast_src_ip = "192.168.233.10"
unicast_peer = ["192.168.233.11"]
"""

BAD = """\
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 0
priority = 255
nopreempt = true
advert_int = 0.5
virtual_ipaddress = ["192.168.233.200/32"]

[vrrp_instance.VI_2]
interface = "eth0"
virtual_router_id = 52
version = 3
advert_int = 0.001
virtual_ipaddress = ["192.168.233.201/32"]
track_script = ["nope"]
"""


def write(tmp_path: Path, text: str, name: str = "pyvrrp.toml") -> str:
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["check-config", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_valid_file_exits_0_with_a_summary(tmp_path: Path) -> None:
    code, out, err = invoke("-f", write(tmp_path, GOOD))
    assert code == 0, err
    assert "OK (TOML)" in out and "1 vrrp_instance" in out
    row = next(line for line in out.splitlines() if "VI_1" in line).split()
    assert row == ["VI_1", "eth0", "51", "v2", "150", "1s", "yes", "192.168.233.200/32", "192.168.233.11"]
    assert err == ""


def test_issue_example_passes() -> None:
    code, out, _ = invoke("--file", str(REPO / "conf/lab/lb1.toml"))
    assert code == 0 and "VI_51" in out


def test_warnings_are_shown_but_exit_0(tmp_path: Path) -> None:
    text = GOOD.replace("priority = 150", 'priority = 150\nstate = "MASTER"\nnopreempt = true')
    code, out, _ = invoke("-f", write(tmp_path, text))
    assert code == 0
    assert any(
        line.startswith("warning: ") and "vrrp_instance.VI_1.state" in line for line in out.splitlines()
    )


def test_invalid_file_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    code, out, err = invoke("-f", path)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {path}:3: vrrp_instance.VI_1.virtual_router_id: must be 1..255, got 0",
        f"error: {path}:5: vrrp_instance.VI_1.nopreempt: priority 255 (address owner) always preempts; "
        "remove nopreempt or lower the priority",
        f"error: {path}:6: vrrp_instance.VI_1.advert_int: VRRPv2 advertises whole seconds (RFC 3768 §5.3.7), "
        "got 0.5; use version = 3 for sub-second intervals",
        f"error: {path}:13: vrrp_instance.VI_2.advert_int: must be a multiple of 0.01 s (VRRPv3 counts "
        "centiseconds, RFC 5798 §5.2.7), got 0.001",
        f"error: {path}:15: vrrp_instance.VI_2.track_script[0]: no vrrp_script named 'nope' "
        "(no [vrrp_script.NAME] is defined)",
    ]
    assert err.splitlines()[-1] == f"{path}: 5 errors"
    assert out == ""
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: str(d / "missing.toml"), "no such file"),
        (lambda d: str(d), "is a directory"),
        (lambda d: _binary(d / "x"), "binary data"),
        (lambda d: write(d, "[global_defs\nrouter_id = 1\n"), "TOML syntax error"),
    ],
    ids=["missing", "directory", "binary", "syntax"],
)
def test_unusable_files_give_one_clear_line(tmp_path: Path, make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    code, out, err = invoke("-f", path)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in err + out


def _binary(path: Path) -> str:
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    return str(path)


def test_front_end_bug_is_reported_without_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(load_mod, "load_config", boom)
    code, _out, err = invoke("-f", write(tmp_path, GOOD))
    assert code == 1
    assert (
        err.strip()
        == f"error: {tmp_path / 'pyvrrp.toml'}: internal error while loading: RuntimeError: kaboom"
    )


def test_json_output(tmp_path: Path) -> None:
    code, out, _ = invoke("-f", write(tmp_path, GOOD), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["format"] == "toml"
    (inst,) = doc["instances"]
    assert (inst["name"], inst["vrid"], inst["priority"], inst["vips"]) == (
        "VI_1",
        51,
        150,
        ["192.168.233.200/32"],
    )
    code, out, _ = invoke("-f", write(tmp_path, BAD, "bad.toml"), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and len(doc["errors"]) == 5
    assert doc["errors"][0] == {
        "severity": "error",
        "path": "vrrp_instance.VI_1.virtual_router_id",
        "message": "must be 1..255, got 0",
        "file": str(tmp_path / "bad.toml"),
        "line": 3,
    }


def test_file_option_is_required() -> None:
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 2


def test_keepalived_conf_is_checked_too(tmp_path: Path) -> None:
    pytest.importorskip("pyvrrp.config.keepalived")
    code, out, _ = invoke("-f", str(REPO / "conf/keepalived/lb1.conf"))
    assert code == 0 and "OK (keepalived.conf)" in out and "VI_51" in out
    ka = tmp_path / "keepalived.conf"
    ka.write_text(
        "global_defs {\n    router_id lb1\n    notification_email {\n        a@example.org\n    }\n}\n"
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n"
        "    virtual_ipaddress {\n        192.168.233.200/32\n    }\n}\n"
    )
    code, out, _ = invoke("-f", str(ka))
    assert code == 0
    assert any(line.startswith(f"warning: {ka}:3: ") for line in out.splitlines())


def test_warnings_that_come_with_errors_are_labelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvrrp.config import ConfigError, ConfigIssue

    def failing(*_a: object, **_k: object) -> None:
        raise ConfigError(
            [
                ConfigIssue("vrrp_instance.A.priority", "must be 1..255, got 0", file="k.conf", line=4),
                ConfigIssue("global_defs.smtp_server", "ignored", file="k.conf", line=2, severity="warning"),
            ]
        )

    monkeypatch.setattr(load_mod, "load_config", failing)
    code, _out, err = invoke("-f", "k.conf")
    assert code == 1
    assert err.splitlines() == [
        "error: k.conf:4: vrrp_instance.A.priority: must be 1..255, got 0",
        "warning: k.conf:2: global_defs.smtp_server: ignored",
        "k.conf: 1 error",
    ]


def test_summary_lists_sync_groups_and_virtual_servers() -> None:
    code, out, _ = invoke("-f", str(REPO / "conf/examples/ipv6-v3.toml"))
    assert code == 0 and "  vrrp_sync_group VG_51: VI_51_v4, VI_51_v6" in out.splitlines()
    code, out, _ = invoke("-f", str(REPO / "conf/examples/lvs-dr.toml"))
    assert code == 0
    assert "  virtual_server 192.168.233.200:80: TCP DR wrr, 2 real servers" in out.splitlines()


def test_check_config_warns_when_the_kernel_has_no_ipvs(monkeypatch) -> None:
    """Issue #5 §2: on a kernel without ip_vs, check-config says so in one line (VRRP still works)."""
    from typer.testing import CliRunner

    from pyvrrp.cli.app import app
    from pyvrrp.ipvs import kernel

    monkeypatch.setattr(kernel, "ipvs_available", lambda **_: kernel.IpvsStatus(False, "kernel has no IPVS"))
    result = CliRunner().invoke(app, ["check-config", "-f", "conf/examples/lvs-dr.toml"])
    assert result.exit_code == 0
    assert "warning: virtual_server: kernel has no IPVS" in result.output
    monkeypatch.setattr(kernel, "ipvs_available", lambda **_: kernel.IpvsStatus(True))
    result = CliRunner().invoke(app, ["check-config", "-f", "conf/examples/lvs-dr.toml"])
    assert "kernel has no IPVS" not in result.output


@pytest.mark.parametrize("text", ["", "# caught half-written\n", "[global_defs]\nrouter_id = 'lb1'\n"])
def test_a_config_with_nothing_to_run_exits_1(tmp_path: Path, text: str) -> None:
    """Issue 14 defect 2: an empty (or half-written) file used to pass with a warning."""
    code, _out, err = invoke("-f", write(tmp_path, text))
    assert code == 1
    assert "no vrrp_instance and no virtual_server" in err
