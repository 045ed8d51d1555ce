"""`pyvrrp run` start-up path: the early VRRP listener and the typer-free front door.

The listener itself needs CAP_NET_RAW and is exercised on real hosts in
netns-tests/test_daemon_early_listen.py; here: what it listens on, when it
credits an instance, and that the short `run` path behaves like the typer one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvrrp.cli import run as run_cli
from pyvrrp.runtime import early_listen
from pyvrrp.runtime.early_listen import EarlyListener, config_interfaces, config_path

REPO = Path(__file__).resolve().parents[1]


def test_interfaces_from_toml_and_keepalived_text() -> None:
    toml = b"""
[vrrp_instance.VI_1]
interface = "eth0"
track_interface = ["eth9"]
[vrrp_instance.VI_2]
  "interface" = 'bond0.12'
[vrrp_instance.VI_3]
interface="eth0"
interface_extra = "nope"
"""
    assert config_interfaces(toml) == ["eth0", "bond0.12"]
    kconf = b"""
vrrp_instance VI_1 {
    interface ens3   # uplink
    track_interface {
        eth7
    }
    unicast_src_ip 10.0.0.1
}
vrrp_instance VI_2 {
\tinterface\tens4;
    interface ens5!comment
}
"""
    assert config_interfaces(kconf) == ["ens3", "ens4", "ens5"]
    assert config_interfaces(b"") == []
    assert config_interfaces(b'interface = "unterminated\n') == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-f", "/etc/a.conf"], "/etc/a.conf"),
        (["--log-level", "debug", "--file", "b.toml"], "b.toml"),
        (["--file=c.toml"], "c.toml"),
        (["-fd.toml"], "d.toml"),
        (["--socket", "/x"], None),
        (["-f"], None),
    ],
)
def test_config_path_from_run_arguments(argv: list[str], expected: str | None) -> None:
    assert config_path(argv) == expected


def test_covers_only_joined_interfaces_and_nothing_dropped() -> None:
    listener = EarlyListener()
    listener.socks = {4: object()}  # type: ignore[dict-item]
    listener.joined = {(4, 7)}
    assert listener.covers(4, 7)
    assert not listener.covers(4, 8)  # not joined: a multicast advert there may have been missed
    assert listener.covers(4, 8, unicast=True)  # unicast needs no membership
    assert not listener.covers(6, 7, unicast=True)  # no IPv6 socket at all
    listener.dropped = 1  # the kernel overflowed the queue: an advert may be lost
    assert not listener.covers(4, 7)


def test_start_is_best_effort_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYVRRP_NO_EARLY_LISTEN", raising=False)
    assert early_listen.start(["--socket", "x"]) is None  # no -f
    assert early_listen.start(["-f", str(tmp_path / "missing.toml")]) is None
    cfg = tmp_path / "noiface.toml"
    cfg.write_text("[global_defs]\n")
    assert early_listen.start(["-f", str(cfg)]) is None  # nothing to listen on
    cfg.write_text('[vrrp_instance.V]\ninterface = "no-such-if0"\n')
    got = early_listen.start(["-f", str(cfg)])  # unknown interface: maybe sockets, never a join
    try:
        assert got is None or not got.joined
    finally:
        if got is not None:
            got.close()
    assert early_listen.current() is None
    monkeypatch.setenv("PYVRRP_NO_EARLY_LISTEN", "1")
    cfg.write_text('[vrrp_instance.V]\ninterface = "lo"\n')
    assert early_listen.start(["-f", str(cfg)]) is None


def test_fast_and_typer_run_have_the_same_options() -> None:
    import typer
    from typer.main import get_command

    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    run_cli.register(app)
    command = get_command(app).commands["run"]  # type: ignore[attr-defined]
    typer_opts = {p.name: (tuple(sorted(p.opts)), p.required, p.default) for p in command.params}
    fast_opts = {o.name: (tuple(sorted(o.flags)), o.required, o.default) for o in run_cli.OPTIONS}
    assert typer_opts == fast_opts


def _pyvrrp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYVRRP_NO_EARLY_LISTEN": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pyvrrp", *args], capture_output=True, text=True, timeout=60, env=full_env
    )


def test_fast_run_path_reports_bad_config_like_typer(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 0\npriority = 300\n'
        'virtual_ipaddress = ["192.0.2.1/32"]\n'
    )
    result = _pyvrrp("run", "-f", str(cfg), "--log-format", "json")
    assert result.returncode == 1
    assert "virtual_router_id" in result.stderr and "priority" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    missing = _pyvrrp("run", "-f", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and "nope.toml" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_fast_run_path_usage_errors_and_help() -> None:
    no_file = _pyvrrp("run")
    assert no_file.returncode == 2 and "-f" in no_file.stderr
    bad_level = _pyvrrp("run", "-f", "x.toml", "--log-level", "loud")
    assert bad_level.returncode == 2 and "loud" in bad_level.stderr
    assert "Traceback" not in bad_level.stderr
    helped = _pyvrrp("run", "--help")  # goes to typer: the full help
    assert helped.returncode == 0 and "--keep-ipvs" in helped.stdout


def test_fast_run_path_skips_typer_and_rich(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "sys.argv = ['pyvrrp', 'run', '-f', sys.argv[1]]\n"
        "import atexit\n"
        "atexit.register(lambda: print('LOADED', 'typer' in sys.modules,"
        " any(m == 'rich' or m.startswith('rich.') for m in sys.modules if sys.modules[m] is not None)))\n"
        "from pyvrrp.cli.entry import main\n"
        "main()\n"
    )
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[vrrp_instance.V]\n")
    result = subprocess.run(
        [sys.executable, str(probe), str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYVRRP_NO_EARLY_LISTEN": "1"},
        cwd=REPO,
    )
    assert result.returncode == 1
    assert "LOADED False False" in result.stdout


def test_test_module_names_are_unique_across_suites() -> None:
    """tests/ and netns-tests/ run in one pytest session (scripts/test): a module basename in
    both makes collection fail with "import file mismatch" (seen in a fresh-clone CI run)."""
    names: dict[str, list[str]] = {}
    for suite in ("tests", "netns-tests", "uml-tests"):
        for path in (REPO / suite).glob("test_*.py"):
            names.setdefault(path.name, []).append(suite)
    clashes = {n: s for n, s in names.items() if len(s) > 1}
    assert not clashes, clashes
