"""vrrp_track_process / track_process (issue 16): config (TOML and keepalived.conf), the pure
matching / counting / quorum logic, the proc connector decoder, /proc parsing and the
ProcessWatch tracker fed with events (no root, no kernel)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from pyvrrp.adapters import procfs
from pyvrrp.adapters.proc_connector import (
    CN_IDX_PROC,
    ProcEvent,
    decode,
    encode_event,
    subscribe_message,
)
from pyvrrp.config import keepalived as ka
from pyvrrp.config.errors import ConfigError
from pyvrrp.config.models import VrrpTrackProcess, check
from pyvrrp.config.toml_loader import loads_toml
from pyvrrp.health.fsm import weight_effect
from pyvrrp.health.process import Cause, ParamMatch, ProcessInfo, ProcessMatcher, ProcessTable, Quorum
from pyvrrp.runtime import trackers as trackers_mod
from pyvrrp.runtime.trackers import ProcessWatch

INSTANCE = """
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["10.0.0.1/24"]
"""

# --------------------------------------------------------------------------- config: TOML


def test_toml_form_with_every_key() -> None:
    cfg = loads_toml(
        '[vrrp_track_process.web]\nprocess = "python3"\nparams = ["-m", "http.server"]\n'
        'param_match = "partial"\nweight = -20\nweight_reverse = true\nquorum = 2\nquorum_max = 4\n'
        "delay = 1.5\nfork_delay = 0.25\n"
        + INSTANCE
        + 'track_process = ["web", {name = "web", weight = 5}]\n'
    )
    tp = cfg.vrrp_track_process["web"]
    assert (tp.process, tp.params, tp.param_match, tp.weight, tp.weight_reverse) == (
        "python3",
        ["-m", "http.server"],
        "partial",
        -20,
        True,
    )
    assert (tp.effective_quorum, tp.quorum_max, tp.fork_delay_s, tp.terminate_delay_s) == (2, 4, 0.25, 1.5)
    refs = cfg.vrrp_instance["VI_1"].track_process
    assert [(r.name, r.weight) for r in refs] == [("web", None), ("web", 5)]


def test_toml_defaults_are_keepalived_s() -> None:
    tp = VrrpTrackProcess(process="haproxy")
    assert (tp.weight, tp.effective_quorum, tp.quorum_max, tp.fork_delay_s, tp.terminate_delay_s) == (
        0,
        1,
        None,
        0.0,
        0.0,
    )
    assert not tp.uses_cmdline
    assert VrrpTrackProcess(process="x", quorum_max=0).effective_quorum == 0  # "up while none runs"
    assert VrrpTrackProcess(process="x", quorum=1, quorum_max=0).effective_quorum == 0  # as keepalived


@pytest.mark.parametrize(
    ("body", "path", "line", "words"),
    [
        ("quorum = 3\nquorum_max = 2\n", "vrrp_track_process.p", 1, "quorum_max (2) is less than quorum (3)"),
        ("quorum = 2\nquorum_max = 0\n", "vrrp_track_process.p", 1, "remove quorum"),
        ("quorum = 0\n", "vrrp_track_process.p.quorum", 3, "must be 1..65535, got 0"),
        ("weight = 300\n", "vrrp_track_process.p.weight", 3, "must be -254..254, got 300"),
        ('param_match = "bogus"\n', "vrrp_track_process.p.param_match", 3, "'exact', 'partial' or 'initial'"),
        ("delay = 4000\n", "vrrp_track_process.p.delay", 3, "must be 0..3600 s"),
        ("terminate_delay = -1\n", "vrrp_track_process.p.terminate_delay", 3, "must be 0..3600 s"),
        ("interval = 2\n", "vrrp_track_process.p.interval", 3, ""),
    ],
)
def test_toml_bad_values_name_key_and_line(body: str, path: str, line: int, words: str) -> None:
    text = '[vrrp_track_process.p]\nprocess = "haproxy"\n' + body + INSTANCE + 'track_process = ["p"]\n'
    with pytest.raises(ConfigError) as ei:
        loads_toml(text, file="c.toml")
    (issue,) = ei.value.issues
    assert (issue.path, issue.line) == (path, line), issue
    assert words in issue.message, issue.message
    assert issue.file == "c.toml"


def test_toml_missing_process_and_unknown_reference() -> None:
    with pytest.raises(ConfigError) as ei:
        loads_toml("[vrrp_track_process.p]\nweight = 1\n" + INSTANCE + 'track_process = ["nope"]\n')
    got = {(i.path, i.line): i.message for i in ei.value.issues}
    assert "vrrp_track_process.p.process" in {p for p, _ in got}
    msg = got[("vrrp_instance.VI_1.track_process[0]", 8)]
    assert "no vrrp_track_process named 'nope'" in msg, got


def test_warnings_long_comm_unused_and_owner_weight() -> None:
    cfg = loads_toml(
        '[vrrp_track_process.long]\nprocess = "keepalived-exporter"\n'
        '[vrrp_track_process.full]\nprocess = "keepalived-exporter"\nfull_command = true\n'
        '[vrrp_track_process.w]\nprocess = "nginx"\nweight = 10\n'
        + INSTANCE
        + 'priority = 255\ntrack_process = ["long", "w"]\n'
    )
    warnings = {w.path: w.message for w in check(cfg)}
    assert "never matches" in warnings["vrrp_track_process.long.process"]
    assert "'keepalived-expo'" in warnings["vrrp_track_process.long.process"]
    assert "vrrp_track_process.full.process" not in warnings  # the command line has no 15-byte limit
    assert "not used by any track_process" in warnings["vrrp_track_process.full"]
    assert "address owner" in warnings["vrrp_instance.VI_1.priority"]


# --------------------------------------------------------------------------- config: keepalived.conf


def _ka(tmp_path: Path, text: str) -> tuple[Any, list[Any]]:
    p = tmp_path / "keepalived.conf"
    p.write_text(text)
    return ka.load_with_report(p)


KA_INSTANCE = """vrrp_instance VI_1 {
 interface eth0
 virtual_router_id 51
 virtual_ipaddress {
  10.0.0.1/24
 }
%s
}
"""


def test_keepalived_block_maps_to_the_model(tmp_path: Path) -> None:
    cfg, warnings = _ka(
        tmp_path,
        'vrrp_track_process chk {\n process "/tmp/a b" param1 "param 2"\n param_match initial\n'
        " weight -20 reverse\n quorum 2\n quorum_max 3\n delay 2\n terminate_delay 0.5\n}\n"
        "vrrp_track_process bare {\n process nginx\n param_match\n}\n"
        + KA_INSTANCE
        % " track_process {\n  chk\n  bare weight 7 reverse\n }",
    )
    chk = cfg.vrrp_track_process["chk"]
    assert (chk.process, chk.params, chk.param_match) == ("/tmp/a b", ["param1", "param 2"], "initial")
    assert (chk.weight, chk.weight_reverse, chk.quorum, chk.quorum_max) == (-20, True, 2, 3)
    assert (chk.fork_delay_s, chk.terminate_delay_s) == (2.0, 0.5)
    bare = cfg.vrrp_track_process["bare"]
    assert (bare.params, bare.param_match) == (None, "exact")  # "must have no parameters"
    refs = cfg.vrrp_instance["VI_1"].track_process
    assert [(r.name, r.weight, r.reverse) for r in refs] == [("chk", None, False), ("bare", 7, True)]
    assert not [w for w in warnings if "track_process" in w.path]


def test_keepalived_missing_process_line_is_an_error_with_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        _ka(
            tmp_path, "\nvrrp_track_process chk {\n weight 2\n}\n" + KA_INSTANCE % " track_process {\n chk\n}"
        )
    errors = [i for i in ei.value.issues if i.severity == "error"]
    assert [(e.path, e.line) for e in errors] == [("vrrp_track_process.chk", 2)]
    assert "process NAME" in errors[0].message


def test_keepalived_bad_quorum_names_the_key_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        _ka(
            tmp_path,
            "vrrp_track_process chk {\n process x\n quorum 0\n}\n" + KA_INSTANCE % "track_process {\n chk\n}",
        )
    (e,) = [i for i in ei.value.issues if i.severity == "error"]
    assert (e.path, e.line) == ("vrrp_track_process.chk.quorum", 3) and "1..65535" in e.message


def test_keepalived_undefined_track_process_is_ignored_with_warning(tmp_path: Path) -> None:
    cfg, warnings = _ka(
        tmp_path,
        "vrrp_track_process chk {\n process x\n}\n" + KA_INSTANCE % " track_process {\n  nothere\n  chk\n }",
    )
    (w,) = [w for w in warnings if "nothere" in w.message]
    assert (w.path, w.line) == ("vrrp_instance.VI_1.track_process[0]", 11)
    assert [r.name for r in cfg.vrrp_instance["VI_1"].track_process] == ["chk"]


def test_keepalived_sync_group_track_process(tmp_path: Path) -> None:
    cfg, _ = _ka(
        tmp_path,
        "vrrp_track_process chk {\n process x\n}\n"
        + KA_INSTANCE % ""
        + "vrrp_sync_group G {\n group {\n  VI_1\n }\n track_process {\n  chk weight -5\n }\n}\n",
    )
    assert [(r.name, r.weight) for r in cfg.vrrp_sync_group["G"].track_process] == [("chk", -5)]


# --------------------------------------------------------------------------- matching


def P(pid: int, comm: str, *argv: str, zombie: bool = False) -> ProcessInfo:
    return ProcessInfo(pid, comm, tuple(argv) if argv else None, zombie)


def test_name_match_is_exact_on_comm() -> None:
    m = ProcessMatcher.build("ssh", None, None, False)
    assert m.matches(P(1, "ssh"))
    assert not m.matches(P(2, "sshd"))  # not pgrep's regex: pgrep "^ssh$"
    assert not m.matches(P(3, "ssh", zombie=True))  # zombies are not running
    assert not m.needs_cmdline


def test_full_command_compares_argv0() -> None:
    m = ProcessMatcher.build("/usr/sbin/haproxy", None, None, True)
    assert m.matches(P(1, "haproxy", "/usr/sbin/haproxy", "-f", "x"))
    assert not m.matches(P(1, "/usr/sbin/haproxy"))  # no command line read
    assert not m.matches(P(1, "haproxy", "haproxy"))


@pytest.mark.parametrize(
    ("match", "argv", "ok"),
    [
        (None, ["a", "b"], True),  # params given: exact
        (None, ["a", "b", "c"], False),
        (None, ["a"], False),
        ("partial", ["a", "b", "c"], True),
        ("partial", ["a", "bc"], False),
        ("initial", ["a", "bc"], True),
        ("initial", ["a", "bc", "d"], True),
        ("initial", ["ax", "b"], False),  # only the last may be longer
        ("initial", ["a"], False),
    ],
)
def test_param_match(match: str | None, argv: list[str], ok: bool) -> None:
    m = ProcessMatcher.build("prog", ["a", "b"], match, False)
    assert m.full_command and m.param_match is (ParamMatch(match) if match else ParamMatch.EXACT)
    assert m.matches(P(1, "prog", "prog", *argv)) is ok


def test_param_match_without_params() -> None:
    exact = ProcessMatcher.build("prog", None, "exact", False)
    assert exact.matches(P(1, "x", "prog")) and not exact.matches(P(1, "x", "prog", "-v"))
    initial = ProcessMatcher.build("prog", None, "initial", False)
    assert initial.matches(P(1, "x", "prog", "-v"))


# --------------------------------------------------------------------------- table


def test_table_scan_exec_fork_comm_exit() -> None:
    t = ProcessTable({"h": ProcessMatcher.build("haproxy", None, None, False)})
    assert t.scan([P(10, "haproxy"), P(11, "bash"), P(12, "haproxy", zombie=True)]) == {"h"}
    assert t.count("h") == 1
    assert t.fork(10, 20) == {"h"} and t.count("h") == 2  # a copy of a tracked parent
    assert t.fork(11, 21) == set()
    assert t.seen(P(21, "haproxy")) == {"h"} and t.count("h") == 3  # bash exec'd haproxy
    assert t.seen(P(20, "logger")) == {"h"} and t.count("h") == 2  # the child exec'd away
    assert t.seen(P(21, "haproxy-old"), comm_only=True) == {"h"} and t.count("h") == 1  # renamed
    assert t.exit(10) == {"h"} and t.count("h") == 0
    assert t.exit(999) == set()
    assert t.scan([]) == set()


def test_table_comm_change_keeps_full_command_verdict() -> None:
    t = ProcessTable({"f": ProcessMatcher.build("/bin/app", None, None, True)})
    t.scan([P(5, "app", "/bin/app")])
    assert t.seen(P(5, "worker"), comm_only=True) == set() and t.count("f") == 1


# --------------------------------------------------------------------------- quorum and weight


def test_quorum_window() -> None:
    q = Quorum(quorum=2, quorum_max=3)
    assert q.reset(1) is False
    assert q.update(2, Cause.OTHER, now=0) is True
    assert q.update(3, Cause.OTHER, now=0) is None
    assert q.update(4, Cause.OTHER, now=0) is False  # too many (quorum_max)
    assert q.update(3, Cause.EXIT, now=0) is True
    zero = Quorum(quorum=0, quorum_max=0)
    assert zero.reset(0) is True and zero.update(1, Cause.OTHER, now=0) is False


def test_terminate_delay_and_fork_delay() -> None:
    q = Quorum(quorum=1, fork_delay_s=0.5, terminate_delay_s=2.0)
    q.reset(1)
    assert q.update(0, Cause.EXIT, now=10.0) is None and q.next_deadline() == 12.0
    assert q.handle_timer(now=11.9) is None
    assert q.update(1, Cause.OTHER, now=11.0) is None and q.next_deadline() is None  # back: dropped
    assert q.update(0, Cause.EXIT, now=20.0) is None
    assert q.handle_timer(now=22.0) is False and q.up is False
    assert q.update(1, Cause.FORK, now=30.0) is None and q.next_deadline() == 30.5
    assert q.update(0, Cause.EXIT, now=30.1) is None and q.next_deadline() is None  # cancelled
    assert q.update(1, Cause.OTHER, now=31.0) is True  # exec: at once
    assert q.update(0, Cause.OTHER, now=32.0) is False  # a name change: at once, no delay


@pytest.mark.parametrize(
    ("weight", "reverse", "up", "effect"),
    [
        (0, False, False, (0, True)),  # quorum lost: FAULT
        (0, False, True, (0, False)),
        (0, True, True, (0, True)),  # "weight 0 reverse": down while the quorum is up
        (10, False, True, (10, False)),
        (10, False, False, (0, False)),
        (-10, False, False, (-10, False)),
        (-10, False, True, (0, False)),
        (-10, True, False, (10, False)),
    ],
)
def test_weight_maths(weight: int, reverse: bool, up: bool, effect: tuple[int, bool]) -> None:
    assert weight_effect(up, weight, reverse) == effect


# --------------------------------------------------------------------------- connector decoder


def test_decode_crafted_datagram() -> None:
    events = [
        ProcEvent("fork", 200, 200, parent_tgid=100),
        ProcEvent("exec", 200, 200),
        ProcEvent("comm", 201, 200, comm="worker"),
        ProcEvent("exit", 200, 200),
    ]
    data = b"".join(encode_event(e, seq=i) for i, e in enumerate(events))
    assert decode(data) == events
    assert [e.is_process for e in decode(data)] == [True, True, False, True]


def test_decode_by_hand_exit_layout() -> None:
    """An exit event built field by field from linux/cn_proc.h (not with encode_event)."""
    body = struct.pack("=IIQ", 0x80000000, 1, 123456789) + struct.pack("=IIIIII", 42, 42, 0, 15, 1, 1)
    cn = struct.pack("=IIIIHH", CN_IDX_PROC, 1, 7, 0, len(body), 0) + body
    msg = struct.pack("=IHHII", 16 + len(cn), 3, 0, 7, 0) + cn
    assert decode(msg) == [ProcEvent("exit", 42, 42)]


def test_decode_skips_acks_other_connectors_unknown_kinds_and_truncation() -> None:
    ack = encode_event(ProcEvent("exec", 1, 1), ack=1)  # the reply to our subscription
    other = bytearray(encode_event(ProcEvent("exec", 2, 2)))
    other[16:20] = struct.pack("=I", 4)  # another connector index
    uid = bytearray(encode_event(ProcEvent("exec", 3, 3)))
    uid[36:40] = struct.pack("=I", 0x4)  # PROC_EVENT_UID: not ours
    good = encode_event(ProcEvent("exit", 9, 9))
    assert decode(ack + bytes(other) + bytes(uid) + good) == [ProcEvent("exit", 9, 9)]
    assert decode(good[:-12]) == []  # the length says more than there is
    assert decode(b"\x01\x02") == []
    bad_len = bytearray(good)
    bad_len[0:4] = struct.pack("=I", 8)  # shorter than a header
    assert decode(bytes(bad_len)) == []


def test_subscribe_message_layout() -> None:
    msg = subscribe_message()
    length, mtype = struct.unpack_from("=IH", msg)
    assert length == len(msg) == 40 and mtype == 3  # NLMSG_DONE
    assert struct.unpack_from("=IIIIHH", msg, 16) == (1, 1, 0, 0, 4, 0)
    assert struct.unpack_from("=I", msg, 36) == (1,)  # PROC_CN_MCAST_LISTEN
    assert struct.unpack_from("=I", subscribe_message(listen=False), 36) == (2,)


# --------------------------------------------------------------------------- /proc


def test_parse_stat_and_cmdline() -> None:
    assert procfs.parse_stat("42 (tmux: server) S 1 42") == ("tmux: server", False)
    assert procfs.parse_stat("43 (a) b) Z 1") == ("a) b", True)  # the last ')' ends comm
    assert procfs.parse_stat("garbage") is None
    assert procfs.parse_cmdline(b"/bin/app\0-f\0x y\0") == ("/bin/app", "-f", "x y")
    assert procfs.parse_cmdline(b"") == ()  # a kernel thread


def test_scan_a_fake_proc(tmp_path: Path) -> None:
    for pid, stat, cmd in ((1, "1 (init) S 0", b"/sbin/init\0"), (7, "7 (haproxy) S 1", b"haproxy\0-f\0c\0")):
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(stat)
        (d / "cmdline").write_bytes(cmd)
    (tmp_path / "9").mkdir()  # listed but unreadable (hidepid=1, or it exited meanwhile)
    (tmp_path / "self").mkdir()
    res = procfs.scan(cmdline=True, proc=tmp_path)
    assert sorted(p.pid for p in res.processes) == [1, 7] and res.unreadable == 1
    assert next(p for p in res.processes if p.pid == 7).argv == ("haproxy", "-f", "c")
    assert procfs.scan(cmdline=False, proc=tmp_path).processes[0].argv is None


MOUNTINFO = (
    "22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw{}\n30 27 0:5 / /dev rw - devtmpfs udev rw\n"
)


@pytest.mark.parametrize(
    ("opts", "want"),
    [("", None), (",hidepid=2,gid=30", "2"), (",hidepid=invisible", "invisible"), (",hidepid=0", None)],
)
def test_hidepid_from_mountinfo(opts: str, want: str | None) -> None:
    assert procfs.hidepid(MOUNTINFO.format(opts)) == want


def test_hidepid_of_the_top_proc_mount() -> None:
    """A /proc mounted over /proc (a container, `mount -t proc -o hidepid=2 proc /proc`): the
    last line is the mount that is read."""
    stacked = MOUNTINFO.format("") + "40 27 0:40 / /proc rw,relatime - proc proc rw,hidepid=2\n"
    assert procfs.hidepid(stacked) == "2"
    assert procfs.hidepid("40 27 0:40 / /proc rw - proc proc rw,hidepid=2\n" + MOUNTINFO.format("")) is None


# --------------------------------------------------------------------------- ProcessWatch


def _watch(
    monkeypatch: pytest.MonkeyPatch, procs: list[ProcessInfo], **spec: Any
) -> tuple[ProcessWatch, list[Any]]:
    table = {p.pid: p for p in procs}
    monkeypatch.setattr(procfs, "scan", lambda cmdline: procfs.ScanResult(list(table.values())))
    monkeypatch.setattr(procfs, "read_process", lambda pid, cmdline: table.get(pid))
    monkeypatch.setattr(procfs, "hidepid", lambda: None)
    got: list[Any] = []
    w = ProcessWatch({"svc": VrrpTrackProcess(process="svc", **spec)}, lambda *a: got.append(a))
    w.watch("VI_1", "svc", None, False)
    w.watch("VI_2", "svc", -30, False)
    w.initial_scan()
    w.report_all()
    w._table = table  # type: ignore[attr-defined]  # the tests edit the fake /proc through this
    return w, got


def test_watch_reports_fault_and_weight_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    w, got = _watch(monkeypatch, [P(5, "svc")])
    assert got == [("VI_1", "process:svc", 0, False), ("VI_2", "process:svc", 0, False)]
    got.clear()
    w.apply([ProcEvent("exit", 6, 5)], now=0.0)  # a thread of it: ignored
    assert got == []
    w.apply([ProcEvent("exit", 5, 5)], now=0.0)
    assert got == [("VI_1", "process:svc", 0, True), ("VI_2", "process:svc", -30, False)]
    got.clear()
    w._table[8] = P(8, "svc")  # type: ignore[attr-defined]
    w.apply([ProcEvent("exec", 8, 8)], now=1.0)
    assert got == [("VI_1", "process:svc", 0, False), ("VI_2", "process:svc", 0, False)]
    snap = w.snapshot("VI_2")
    assert snap[0]["running"] == 1 and snap[0]["up"] is True and snap[0]["mode"] == "polling"


def test_watch_polling_rescan_detects_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    w, got = _watch(monkeypatch, [P(5, "svc"), P(6, "svc")], quorum=2)
    got.clear()
    del w._table[6]  # type: ignore[attr-defined]
    w.rescan()
    assert ("VI_1", "process:svc", 0, True) in got


def test_watch_terminate_delay_arms_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async def scenario() -> list[Any]:
        w, got = _watch(monkeypatch, [P(5, "svc")], terminate_delay=0.05)
        got.clear()
        w.apply([ProcEvent("exit", 5, 5)], now=trackers_mod.clock.monotonic())
        assert got == [] and w.snapshot("VI_1")[0]["pending"] is True
        await asyncio.sleep(0.2)
        w.stop()
        return got

    assert ("VI_1", "process:svc", 0, True) in asyncio.run(scenario())


def test_trackers_from_config_asks_for_the_connector_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvrrp.runtime.trackers import Trackers

    monkeypatch.setattr(procfs, "scan", lambda cmdline: procfs.ScanResult([P(3, "nginx")]))
    monkeypatch.setattr(procfs, "hidepid", lambda: None)
    cfg = loads_toml(
        '[vrrp_track_process.ng]\nprocess = "nginx"\n[vrrp_track_process.db]\nprocess = "postgres"\n'
        "weight = -10\n"
        + INSTANCE
        + 'track_process = ["ng"]\n'
        + INSTANCE.replace("VI_1", "VI_2").replace("51", "52")
        + '\n[vrrp_sync_group.G]\ngroup = ["VI_1", "VI_2"]\ntrack_process = ["db"]\n'
    )
    asked: list[int] = []

    def connector() -> tuple[None, str]:
        asked.append(1)
        return None, "proc connector: not in the initial network namespace"

    got: list[Any] = []
    t = Trackers.from_config(cfg, lambda *a: got.append(a), lambda _i: True, connector)
    assert asked == [1] and t.processes is not None
    t.report_all()
    assert sorted(got) == [
        ("VI_1", "process:db", -10, False),
        ("VI_1", "process:ng", 0, False),
        ("VI_2", "process:db", -10, False),
    ]
    (row,) = [r for r in t.snapshot("VI_2") if r["kind"] == "process"]
    assert row["name"] == "db" and row["running"] == 0 and row["up"] is False
    assert row["mode"] == "polling" and "initial network namespace" in row["connector_unavailable"]


def test_no_track_process_means_no_connector() -> None:
    from pyvrrp.runtime.trackers import Trackers

    cfg = loads_toml('[vrrp_track_process.unused]\nprocess = "x"\n' + INSTANCE)

    def connector() -> tuple[None, str]:
        raise AssertionError("asked for the connector without any track_process")

    assert Trackers.from_config(cfg, lambda *a: None, lambda _i: True, connector).processes is None


def test_convert_round_trip(tmp_path: Path) -> None:
    """keepalived.conf → TOML (pyvrrp convert) → the same model."""
    from pyvrrp.config.toml_writer import config_to_toml

    cfg, _ = _ka(
        tmp_path,
        'vrrp_track_process chk {\n process "/tmp/a b" p1\n param_match partial\n weight -3 reverse\n'
        " quorum_max 0\n fork_delay 0.5\n}\n" + KA_INSTANCE % " track_process {\n  chk weight 4 reverse\n }",
    )
    again = loads_toml(config_to_toml(cfg))
    assert again.vrrp_track_process == cfg.vrrp_track_process
    assert again.vrrp_track_process["chk"].effective_quorum == 0
    assert again.vrrp_instance["VI_1"].track_process == cfg.vrrp_instance["VI_1"].track_process
