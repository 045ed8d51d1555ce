"""``lvs_sync_daemon`` (issue 16 item 2): the config (keepalived.conf and TOML), the pure
planning of the kernel's sync-thread commands per VRRP transition (keepalived's
ipvs_syncd_master / ipvs_syncd_backup), and the manager against a recording kernel.
The kernel itself is exercised in uml-tests/test_conn_sync.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyvrrp.config.errors import ConfigError, ConfigIssue
from pyvrrp.config.load import load_config
from pyvrrp.config.models import Config
from pyvrrp.ipvs.syncd import (
    StartDaemon,
    StopDaemon,
    SyncDaemonManager,
    SyncDaemonSpec,
    plan,
    startup_ops,
    wanted_roles,
)


def _inst(name: str = "VI_1", vrid: int = 51, body: str = "") -> str:
    return (
        f"vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n"
        f" virtual_ipaddress {{\n  10.0.0.1/24\n }}\n{body}}}\n"
    )


def _load(tmp_path: Path, text: str, suffix: str = ".conf") -> Config:
    p = tmp_path / f"cfg{suffix}"
    p.write_text(text)
    return load_config(p)


def _errors(tmp_path: Path, text: str, suffix: str = ".conf") -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, text, suffix)
    return [i for i in ei.value.issues if i.severity == "error"]


def _spec(tmp_path: Path, text: str) -> SyncDaemonSpec | None:
    return SyncDaemonSpec.from_config(_load(tmp_path, text))


# ------------------------------------------------------------------------------ config


def test_global_form_with_every_option(tmp_path: Path) -> None:
    text = (
        "global_defs {\n lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 8850 ttl 2 group 224.0.0.90\n}\n"
        + _inst()
    )
    assert _spec(tmp_path, text) == SyncDaemonSpec(
        interface="eth1", sync_id=7, instance="VI_1", maxlen=1400, port=8850, ttl=2, group="224.0.0.90"
    )


def test_inst_keyword_and_default_sync_id_is_the_vrid(tmp_path: Path) -> None:
    """keepalived.conf(5): `[inst] VRRP_INSTANCE`; syncid defaults to the instance's VRID."""
    text = "global_defs {\n lvs_sync_daemon eth1 inst VI_2\n}\n" + _inst() + _inst("VI_2", 52)
    assert _spec(tmp_path, text) == SyncDaemonSpec(interface="eth1", sync_id=52, instance="VI_2")


def test_without_instance_sync_id_0(tmp_path: Path) -> None:
    """No instance: master and backup both run, sync id 0 (keepalived check_daemon.c)."""
    spec = _spec(tmp_path, "global_defs {\n lvs_sync_daemon eth1\n}\n" + _inst())
    assert spec == SyncDaemonSpec(interface="eth1", sync_id=0)
    assert wanted_roles(spec, None) == {"master", "backup"}


def test_old_positional_sync_id_warns(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "global_defs {\n lvs_sync_daemon eth1 VI_1 9\n}\n" + _inst())
    assert cfg.global_defs.lvs_sync_daemon is not None and cfg.global_defs.lvs_sync_daemon.sync_id == 9
    (w,) = [w for w in cfg.warnings() if w.path == "global_defs.lvs_sync_daemon"]
    assert w.line == 2 and "`id 9`" in w.message


def test_per_instance_interface_is_the_deprecated_form(tmp_path: Path) -> None:
    """vrrp_parser.c: lvs_sync_daemon_interface sets the interface and follows this instance."""
    cfg = _load(tmp_path, _inst(body=" lvs_sync_daemon_interface eth1\n"))
    assert SyncDaemonSpec.from_config(cfg) == SyncDaemonSpec(interface="eth1", sync_id=51, instance="VI_1")
    (w,) = [w for w in cfg.warnings() if "lvs_sync_daemon_interface" in w.path]
    assert (w.path, w.line) == ("vrrp_instance.VI_1.lvs_sync_daemon_interface", 7)
    assert "deprecated" in w.message and "`lvs_sync_daemon eth1 VI_1`" in w.message


def test_second_sync_daemon_line_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """keepalived: "lvs_sync_daemon_interface has already been specified as eth1 - ignoring"."""
    text = (
        "global_defs {\n lvs_sync_daemon eth9 VI_2\n}\n"
        + _inst(body=" lvs_sync_daemon_interface eth1\n")
        + _inst("VI_2", 52)
    )
    cfg = _load(tmp_path, text)
    assert SyncDaemonSpec.from_config(cfg) == SyncDaemonSpec(interface="eth9", sync_id=52, instance="VI_2")
    ignored = [w for w in cfg.warnings() if "already configured" in w.message]
    assert [(w.path, w.line) for w in ignored] == [("vrrp_instance.VI_1.lvs_sync_daemon_interface", 10)]
    assert "lvs_sync_daemon eth9 VI_2 at" in ignored[0].message


def test_misspelt_interface_keyword_is_ignored_as_keepalived_does(tmp_path: Path) -> None:
    """keepalived 2.2.7 -t: "Unknown keyword 'lvs_sync_daemon_inteface'": no sync daemon."""
    cfg = _load(tmp_path, _inst(body=" lvs_sync_daemon_inteface eth1\n"))
    assert cfg.global_defs.lvs_sync_daemon is None
    (w,) = [w for w in cfg.warnings() if "inteface" in w.path]
    assert w.line == 7 and "spell it lvs_sync_daemon_interface" in w.message


@pytest.mark.parametrize(
    ("line", "path", "words"),
    [
        ("lvs_sync_daemon", "global_defs.lvs_sync_daemon", "needs an interface"),
        ("lvs_sync_daemon eth1 VI_1 id x", "global_defs.lvs_sync_daemon.sync_id", "'x' is not a number"),
        ("lvs_sync_daemon eth1 VI_1 id 256", "global_defs.lvs_sync_daemon.sync_id", "0..255"),
        ("lvs_sync_daemon eth1 VI_1 port 0", "global_defs.lvs_sync_daemon.port", "1..65535"),
        ("lvs_sync_daemon eth1 VI_1 ttl 300", "global_defs.lvs_sync_daemon.ttl", "1..255"),
        ("lvs_sync_daemon eth1 VI_1 maxlen 70000", "global_defs.lvs_sync_daemon.maxlen", "1..65507"),
        ("lvs_sync_daemon eth1 VI_1 group 10.0.0.9", "global_defs.lvs_sync_daemon.group", "multicast"),
        ("lvs_sync_daemon eth1 VI_1 group nope", "global_defs.lvs_sync_daemon.group", "not an IP"),
        ("lvs_sync_daemon eth1 VI_1 id", "global_defs.lvs_sync_daemon", "'id' needs a value"),
        ("lvs_sync_daemon eth1 VI_1 5 extra", "global_defs.lvs_sync_daemon", "unknown word 'extra'"),
        (
            "lvs_sync_daemon eth1 VI_9",
            "global_defs.lvs_sync_daemon.instance",
            "no vrrp_instance named 'VI_9'",
        ),
        ("lvs_sync_daemon averyveryverylongif", "global_defs.lvs_sync_daemon.interface", "15 characters"),
    ],
)
def test_bad_values_name_path_and_line(tmp_path: Path, line: str, path: str, words: str) -> None:
    (e,) = _errors(tmp_path, f"global_defs {{\n {line}\n}}\n" + _inst())
    assert (e.path, e.line) == (path, 2), e
    assert words in e.message, e.message


def test_toml_form_and_its_errors(tmp_path: Path) -> None:
    base = '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 51\n'
    base += 'virtual_ipaddress = ["10.0.0.1/24"]\n'
    good = '[global_defs.lvs_sync_daemon]\ninterface = "eth1"\ninstance = "VI_1"\ngroup = "ff02::81"\n'
    cfg = _load(tmp_path, good + base, ".toml")
    assert SyncDaemonSpec.from_config(cfg) == SyncDaemonSpec(
        interface="eth1", sync_id=51, instance="VI_1", group="ff02::81"
    )
    bad = '[global_defs.lvs_sync_daemon]\ninterface = "eth1"\ninstance = "VI_7"\nsync_id = true\n'
    errs = _errors(tmp_path, bad + base, ".toml")
    assert {(e.path, e.line) for e in errs} == {("global_defs.lvs_sync_daemon.sync_id", 4)}
    errs = _errors(tmp_path, bad.replace("sync_id = true\n", "") + base, ".toml")
    assert [(e.path, e.line) for e in errs] == [("global_defs.lvs_sync_daemon.instance", 3)]


def test_keepalived_form_converts_to_toml_and_back(tmp_path: Path) -> None:
    from pyvrrp.config.toml_writer import config_to_toml

    cfg = _load(tmp_path, "global_defs {\n lvs_sync_daemon eth1 VI_1 id 3 ttl 4\n}\n" + _inst())
    again = _load(tmp_path, config_to_toml(cfg), ".toml")
    assert again.global_defs.lvs_sync_daemon == cfg.global_defs.lvs_sync_daemon


# ------------------------------------------------------------------------------ planning

SPEC = SyncDaemonSpec(interface="eth1", sync_id=51, instance="VI_1")


@pytest.mark.parametrize(
    ("state", "want"),
    [("INIT", {"backup"}), ("BACKUP", {"backup"}), ("FAULT", {"backup"}), ("MASTER", {"master"})],
)
def test_the_followed_state_picks_one_role(state: str, want: set[str]) -> None:
    assert wanted_roles(SPEC, state) == want
    assert wanted_roles(SPEC, state, running=False) == frozenset()
    assert wanted_roles(None, state) == frozenset()


def test_becoming_master_stops_backup_then_starts_master() -> None:
    """keepalived ipvs_syncd_master(): IPVS_STOPDAEMON backup, IPVS_STARTDAEMON master."""
    assert plan({"backup": SPEC}, SPEC, wanted_roles(SPEC, "MASTER")) == [
        StopDaemon("backup"),
        StartDaemon("master", SPEC),
    ]


def test_leaving_master_stops_master_then_starts_backup() -> None:
    """keepalived ipvs_syncd_backup(), from vrrp_state_leave_master (to BACKUP or FAULT)."""
    for state in ("BACKUP", "FAULT"):
        assert plan({"master": SPEC}, SPEC, wanted_roles(SPEC, state)) == [
            StopDaemon("master"),
            StartDaemon("backup", SPEC),
        ]


def test_no_change_no_command_and_stop_stops_what_runs() -> None:
    assert plan({"backup": SPEC}, SPEC, wanted_roles(SPEC, "FAULT")) == []
    assert plan({"master": SPEC}, SPEC, frozenset()) == [StopDaemon("master")]
    both = SyncDaemonSpec(interface="eth1", sync_id=0)
    assert plan({}, both, wanted_roles(both, None)) == [
        StartDaemon("master", both),
        StartDaemon("backup", both),
    ]
    assert plan({"master": both, "backup": both}, both, frozenset()) == [
        StopDaemon("master"),
        StopDaemon("backup"),
    ]


def test_changed_settings_restart_the_running_thread() -> None:
    new = SyncDaemonSpec(interface="eth2", sync_id=51, instance="VI_1")
    assert plan({"backup": SPEC}, new, wanted_roles(new, "BACKUP")) == [
        StopDaemon("backup"),
        StartDaemon("backup", new),
    ]
    assert startup_ops() == [StopDaemon("master"), StopDaemon("backup")]


# ------------------------------------------------------------------------------ manager


class RecordingKernel:
    def __init__(self, fail_start: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.running: set[str] = set()
        self.fail_start = fail_start

    def start(self, role: str, spec: SyncDaemonSpec) -> None:
        self.calls.append(("start", role))
        if self.fail_start:
            raise RuntimeError("start master sync daemon on eth1 (sync id 51): No such device")
        self.running.add(role)

    def stop(self, role: str) -> bool:
        self.calls.append(("stop", role))
        was = role in self.running
        self.running.discard(role)
        return was


def test_manager_follows_transitions_and_stops() -> None:
    async def main() -> RecordingKernel:
        k = RecordingKernel()
        k.running.add("master")  # left behind by a crashed run: stopped first
        m = SyncDaemonManager(SPEC, k)  # type: ignore[arg-type]
        await m.start("INIT")
        assert k.calls == [("stop", "master"), ("stop", "backup"), ("start", "backup")]
        k.calls.clear()
        m.follow("BACKUP")
        await m.settled()
        assert k.calls == []
        m.follow("MASTER")
        await m.settled()
        assert k.calls == [("stop", "backup"), ("start", "master")] and k.running == {"master"}
        assert m.snapshot()["running"] == ["master"]
        k.calls.clear()
        m.follow("BACKUP")  # a burst: only the last state is acted on
        m.follow("MASTER")
        await m.settled()
        assert k.calls == []
        await m.stop()
        assert k.calls == [("stop", "master")] and k.running == set()
        return k

    asyncio.run(main())


def test_manager_reports_a_failed_start_and_retries_at_the_next_transition() -> None:
    async def main() -> None:
        k = RecordingKernel(fail_start=True)
        m = SyncDaemonManager(SPEC, k)  # type: ignore[arg-type]
        await m.start("BACKUP")
        snap = m.snapshot()
        assert snap["running"] == [] and "No such device" in str(snap["last_error"])
        k.fail_start = False
        m.follow("MASTER")
        await m.settled()
        assert k.running == {"master"} and m.snapshot()["last_error"] is None
        await m.stop()

    asyncio.run(main())


def test_manager_reconfigure_restarts_only_on_change() -> None:
    async def main() -> None:
        k = RecordingKernel()
        m = SyncDaemonManager(SPEC, k)  # type: ignore[arg-type]
        await m.start("BACKUP")
        k.calls.clear()
        m.reconfigure(SPEC, "BACKUP")
        await m.settled()
        assert k.calls == []
        m.reconfigure(SyncDaemonSpec(interface="eth1", sync_id=9, instance="VI_1"), "BACKUP")
        await m.settled()
        assert k.calls == [("stop", "backup"), ("start", "backup")]
        k.calls.clear()
        m.reconfigure(None, None)  # the reload removed lvs_sync_daemon
        await m.settled()
        assert k.calls == [("stop", "backup")] and k.running == set()
        await m.stop()

    asyncio.run(main())


def test_daemon_request_encoding_even_after_pyroute2s_ipvsmsg_was_used() -> None:
    """The IPVS_CMD_NEW_DAEMON request, byte for byte (include/uapi/linux/ip_vs.h): nested
    IPVS_CMD_ATTR_DAEMON (3) with STATE, MCAST_IFN, SYNC_ID, MCAST_PORT in host order (as
    libipvs sends it) and MCAST_GROUP.  pyroute2's own ipvsmsg is encoded first: its compiled
    attribute map must not leak into ours (it reads DAEMON as opaque hex)."""
    from pyroute2.netlink.generic.ipvs import ipvsmsg

    from pyvrrp.ipvs.kernel import _daemon_msg_class

    other = ipvsmsg()
    other["cmd"], other["version"], other["attrs"] = 1, 1, [("IPVS_CMD_ATTR_DAEMON", "00:01")]
    other.encode()
    msg = _daemon_msg_class()()
    msg["cmd"], msg["version"] = 9, 1
    attrs = [
        ("IPVS_DAEMON_ATTR_STATE", 1),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", "eth0"),
        ("IPVS_DAEMON_ATTR_SYNC_ID", 51),
        ("IPVS_DAEMON_ATTR_MCAST_PORT", 8848),
        ("IPVS_DAEMON_ATTR_MCAST_GROUP", "224.0.0.81"),
    ]
    msg["attrs"] = [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})]
    msg.encode()
    body = bytes(msg.data[16:]).hex()  # after the netlink header
    assert body == (
        "09010000"  # genl: cmd 9 (NEW_DAEMON), version 1
        "30000300"  # nested attr 3 (DAEMON), 48 bytes
        "0800010001000000"  # STATE = 1 (IP_VS_STATE_MASTER)
        "0900020065746830"  # MCAST_IFN = "eth0" (NUL-terminated, padded)
        "00000000"
        "0800030033000000"  # SYNC_ID = 51
        "0600070090220000"  # MCAST_PORT = 8848 (host order, little-endian here)
        "08000500e0000051"  # MCAST_GROUP = 224.0.0.81
    )


def test_daemon_feeds_only_the_followed_instance_and_not_while_stopping(tmp_path: Path) -> None:
    """runtime.daemon: a StateChanged of the followed instance moves the sync daemon; another
    instance's does not; once the daemon is stopping (priority 0 sent, VIPs released) the
    instance's last transitions do not flip master -> backup before the final stop."""
    from types import SimpleNamespace

    from pyvrrp.proto import events as ev
    from pyvrrp.runtime.daemon import Daemon

    cfg = _load(tmp_path, "global_defs {\n lvs_sync_daemon eth1 VI_1\n}\n" + _inst() + _inst("VI_2", 52))

    async def main() -> None:
        d = Daemon(str(tmp_path / "cfg.conf"), cfg, control_socket=str(tmp_path / "c.sock"))
        d.systemd = SimpleNamespace(status=lambda _s: None, enabled=False)  # type: ignore[assignment]
        k = RecordingKernel()
        d.syncd = SyncDaemonManager(SyncDaemonSpec.from_config(cfg), k)  # type: ignore[arg-type]
        await d.syncd.start("BACKUP")
        k.calls.clear()

        def change(name: str, new: ev.State) -> None:
            inst = SimpleNamespace(name=name, witness_key=None)
            d._on_state_changed(inst, ev.StateChanged(old=ev.State.BACKUP, new=new, reason="", priority=100))  # type: ignore[arg-type]

        change("VI_2", ev.State.MASTER)
        await d.syncd.settled()
        assert k.calls == []
        change("VI_1", ev.State.MASTER)
        await d.syncd.settled()
        assert k.calls == [("stop", "backup"), ("start", "master")]
        k.calls.clear()
        d._released = True
        change("VI_1", ev.State.INIT)
        await d.syncd.settled()
        assert k.calls == []
        await d.syncd.stop()
        assert k.calls == [("stop", "master")]
        d.netlink.close()

    asyncio.run(main())
