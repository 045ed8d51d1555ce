"""The fast-start engine (pyvrrp/runtime/fast_start.py) without root: cache, engine steps, hand-over.

The thread's loop and the kernel side effects are exercised on real hosts in
netns-tests/test_daemon_fast_start.py; here the same steps run with a fake
listener and a recording I/O object, on the real engine.
"""

from __future__ import annotations

import json
import marshal
import socket
import struct
import time
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

import pytest

from pyvrrp.proto import events as ev
from pyvrrp.proto.packet import Advertisement, encode
from pyvrrp.proto.router import RouterConfig
from pyvrrp.proto.timing import master_down_interval_s
from pyvrrp.runtime import fast_start
from pyvrrp.runtime.fast_start import FastStart, config_from_dict, config_to_dict

LO = "lo"
PRIMARY = IPv4Address("192.0.2.10")
PEER = IPv4Address("192.0.2.11")
VIP = IPv4Interface("192.0.2.200/32")


def _config(**kw: Any) -> RouterConfig:
    base: dict[str, Any] = dict(
        name="VI_1",
        vrid=51,
        version=3,
        family=4,
        priority=200,
        advert_interval_cs=1,
        vips=(VIP,),
        primary_address=PRIMARY,
    )
    base.update(kw)
    return RouterConfig(**base)


def _entry(cfg: RouterConfig, **kw: Any) -> dict[str, Any]:
    entry = {
        "name": cfg.name,
        "ifname": LO,
        "router": config_to_dict(cfg),
        "vips": [[str(v), "lo:vip"] for v in cfg.vips],
        "epoch_file": None,
        "control_socket": "/nonexistent/pyvrrp.sock",
        "config_id": None,
    }
    entry.update(kw)
    return entry


class FakeListener:
    def __init__(self, opened_at: float) -> None:
        self.opened_at = opened_at
        self.socks: dict[int, Any] = {}
        self.kept: dict[int, list[Any]] = {}
        self.config_path = ""
        self.config_text = b""

    def covers(self, family: int, ifindex: int, *, unicast: bool = False) -> bool:
        return True

    def recv(self, family: int) -> Any:
        return None


class RecordingIO:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.held: set[str] = {str(VIP)}  # a crashed run left the VIP behind

    def prepare(self, inst: Any) -> None:
        self.calls.append(("prepare", inst.name))

    def send_advert(self, inst: Any, advert: Advertisement) -> None:
        self.calls.append(("advert", advert.priority))

    def add_vip(self, inst: Any, vip: Any, label: str | None) -> bool:
        self.calls.append(("add", str(vip), label))
        added = str(vip) not in self.held
        self.held.add(str(vip))
        return added

    def remove_vip(self, inst: Any, vip: Any) -> bool:
        self.calls.append(("remove", str(vip)))
        removed = str(vip) in self.held
        self.held.discard(str(vip))
        return removed

    def announce(self, inst: Any, vips: Any, repeat: int) -> None:
        self.calls.append(("announce", tuple(str(v) for v in vips), repeat))


def _boot(cfg: RouterConfig, opened_at: float | None = None) -> tuple[FastStart, RecordingIO]:
    io = RecordingIO()
    listener = FakeListener(time.monotonic() if opened_at is None else opened_at)
    boot = FastStart(listener, [_entry(cfg)], io=io).prepare()
    return boot, io


def _ipv4_datagram(src: IPv4Address, dst: IPv4Address, payload: bytes, ttl: int = 255) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, ttl, 112, 0, src.packed, dst.packed
    )
    return header + payload


def _advert_item(priority: int, *, vrid: int = 51, src: IPv4Address = PEER, stamp: int | None = None) -> Any:
    adv = Advertisement(version=3, vrid=vrid, priority=priority, addresses=(VIP.ip,), interval_cs=1)
    dst = IPv4Address("224.0.0.18")
    data = _ipv4_datagram(src, dst, encode(adv, src=src, dst=dst))
    return (
        socket.if_nametoindex(LO),
        stamp if stamp is not None else time.time_ns(),
        data,
        (str(src), 0),
        [],
    )


# ------------------------------------------------------------------ cache


@pytest.mark.parametrize(
    "cfg",
    [
        _config(),
        _config(version=2, advert_interval_cs=100, auth_type=1, auth_data=b"secret", preempt=False),
        _config(unicast_peers=(PEER, IPv4Address("192.0.2.12")), garp_master_refresh_s=30.0),
        _config(
            family=6,
            primary_address=IPv6Address("fe80::1"),
            vips=(IPv6Interface("2001:db8::200/64"),),
            v3_ipv4_pseudo_header=False,
        ),
    ],
)
def test_router_config_round_trips_through_the_cache_formats(cfg: RouterConfig) -> None:
    data = config_to_dict(cfg)
    assert config_from_dict(marshal.loads(marshal.dumps(data))) == cfg
    assert config_from_dict(json.loads(json.dumps(data))) == cfg  # plain data: JSON-able too


def test_cache_is_used_only_for_the_same_file_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYVRRP_FAST_START_DIR", str(tmp_path / "cache"))
    conf = tmp_path / "pyvrrp.toml"
    entries = [_entry(_config())]
    path = fast_start.write_cache(str(conf), b"text v1", entries)
    assert Path(path).parent == tmp_path / "cache"
    assert fast_start.read_cache(str(conf), b"text v1") == entries
    assert fast_start.read_cache(str(conf), b"text v2") is None  # edited since
    assert fast_start.read_cache(str(tmp_path / "other.toml"), b"text v1") is None  # another file
    good = Path(path).read_bytes()
    for corrupt in (b"{not marshal", good[: len(good) // 2], b"", marshal.dumps([1, 2]), b"\xff" * 40):
        Path(path).write_bytes(corrupt)
        assert fast_start.read_cache(str(conf), b"text v1") is None  # corrupt: ignored, no error
    fast_start.write_cache(str(conf), b"text v1", entries)
    doc = marshal.loads(Path(path).read_bytes())
    doc["format"] = 999
    Path(path).write_bytes(marshal.dumps(doc))
    assert fast_start.read_cache(str(conf), b"text v1") is None  # written by another version
    fast_start.remove_cache(str(conf))
    assert not Path(path).exists()
    legacy = Path(path).with_suffix(".json")  # format 1 (JSON), left by an older version
    legacy.write_text("{}")
    fast_start.write_cache(str(conf), b"text v1", entries)
    assert not legacy.exists() and fast_start.read_cache(str(conf), b"text v1") == entries


def test_start_declines_without_a_usable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYVRRP_FAST_START_DIR", str(tmp_path / "cache"))
    conf = tmp_path / "keepalived.conf"
    listener = FakeListener(time.monotonic())
    listener.config_path = str(conf)
    listener.config_text = b"vrrp_instance VI_1 {\n interface lo\n}\n"
    assert fast_start.start(["-f", str(conf)], listener) is None  # nothing cached yet
    fast_start.write_cache(str(conf), listener.config_text, [_entry(_config())])
    assert fast_start.start(["-f", str(conf), "--config-id", "lb1"], listener) is None  # other @id
    listener.config_text = b"include /etc/keepalived/more.conf\n" + listener.config_text
    fast_start.write_cache(str(conf), listener.config_text, [_entry(_config())])
    assert fast_start.start(["-f", str(conf)], listener) is None  # included files are not hashed
    monkeypatch.setenv("PYVRRP_NO_FAST_START", "1")
    assert fast_start.start(["-f", str(conf)], listener) is None


def test_start_declines_when_a_daemon_answers_on_the_control_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYVRRP_FAST_START_DIR", str(tmp_path / "cache"))
    conf = tmp_path / "pyvrrp.toml"
    sock_path = tmp_path / "control.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    try:
        listener = FakeListener(time.monotonic())
        listener.config_path, listener.config_text = str(conf), b'interface = "lo"\n'
        fast_start.write_cache(
            str(conf), listener.config_text, [_entry(_config(), control_socket=str(sock_path))]
        )
        # another pyvrrp runs this config: its VIPs must not be touched, not even the stale clean-up
        assert fast_start.start(["-f", str(conf)], listener) is None
    finally:
        server.close()
    assert fast_start._daemon_alive(str(sock_path)) is False  # a stale socket file is not a daemon


# ------------------------------------------------------------------ engine


def test_takes_over_one_master_down_interval_after_listening_began() -> None:
    cfg = _config()
    opened = time.monotonic()
    boot, io = _boot(cfg, opened)
    inst = boot.instances["VI_1"]
    # the VIP a crashed run left is removed before the Startup; then BACKUP, listening
    assert io.calls[:2] == [("prepare", "VI_1"), ("remove", str(VIP))]
    assert inst.router.state is ev.State.BACKUP
    assert [e[1] for e in inst.events] == ["stale_vip_removed"]
    mdi = master_down_interval_s(3, 200, 1)
    assert boot._next_deadline() == pytest.approx(opened + mdi)
    boot.fire(opened + mdi - 0.001)
    assert inst.router.state is ev.State.BACKUP
    boot.fire(opened + mdi)
    assert inst.router.state is ev.State.MASTER
    # the daemon's hot-path order: advert, VIP (with its label), GARP burst
    assert io.calls[2:] == [
        ("advert", 200),
        ("add", str(VIP), "lo:vip"),
        ("announce", (str(VIP),), cfg.garp_master_repeat),
    ]
    assert [(c.old, c.new) for c, _ in inst.changes] == [
        (ev.State.INIT, ev.State.BACKUP),
        (ev.State.BACKUP, ev.State.MASTER),
    ]
    assert boot.failed is None


def test_a_live_higher_priority_master_keeps_it_backup_and_its_packets_are_marked() -> None:
    cfg = _config(priority=100)
    opened = time.monotonic() - 0.020  # listening began 20 ms ago
    boot, io = _boot(cfg, opened)
    inst = boot.instances["VI_1"]
    stamp = time.time_ns()
    boot.on_packet(4, _advert_item(200, stamp=stamp))
    assert stamp in boot.handled  # the daemon's own socket will skip this one
    mdi = master_down_interval_s(3, 100, 1)
    boot.fire(opened + mdi + 0.001)  # the deadline from the Startup no longer applies
    assert inst.router.state is ev.State.BACKUP
    assert not [c for c in io.calls if c[0] in ("advert", "add")]
    assert inst.router.snapshot(now=time.monotonic()).master_ip == PEER


def test_packets_it_does_not_own_are_left_for_the_daemon() -> None:
    boot, _io = _boot(_config())
    other = _advert_item(150, vrid=52)
    garbage: Any = (socket.if_nametoindex(LO), time.time_ns(), b"\x45garbage", ("192.0.2.99", 0), [])
    boot.on_packet(4, other)
    boot.on_packet(4, garbage)
    assert boot.listener.kept[4] == [other, garbage]  # replayed (and counted) by the daemon
    assert not boot.handled


def test_a_lower_priority_master_is_preempted() -> None:
    cfg = _config(priority=200)
    opened = time.monotonic()
    boot, io = _boot(cfg, opened)
    inst = boot.instances["VI_1"]
    boot.on_packet(4, _advert_item(100))
    boot.fire(opened + master_down_interval_s(3, 200, 1))
    assert inst.router.state is ev.State.MASTER
    assert ("advert", 200) in io.calls


def test_adopt_compares_the_daemons_entry_and_names_what_differs() -> None:
    cfg = _config()
    boot, _io = _boot(cfg)
    boot.stop()
    same = _entry(cfg)
    assert boot.adopt("VI_1", same) is boot.instances["VI_1"]
    changed = _entry(_config(priority=150))
    assert boot.adopt("VI_1", changed) is None
    assert "router.priority" in boot.discarded["VI_1"]
    assert boot.adopt("VI_2", same) is None  # never ran here
    boot.finish()
    assert not boot.owns("VI_1") and boot.handed_over


def test_abandon_releases_a_master_before_any_hand_over() -> None:
    cfg = _config()
    opened = time.monotonic()
    boot, io = _boot(cfg, opened)
    boot.fire(opened + master_down_interval_s(3, 200, 1))
    assert str(VIP) in io.held
    io.calls.clear()
    boot.abandon()
    assert ("advert", 0) in io.calls  # priority 0: the peer takes over after Skew_Time
    assert str(VIP) not in io.held
    assert boot.handed_over
    boot.abandon()  # idempotent


def test_an_unexpected_failure_is_recorded_not_raised() -> None:
    cfg = _config()
    opened = time.monotonic()
    boot, io = _boot(cfg, opened)

    def broken(inst: Any, vip: Any, label: str | None) -> bool:
        raise OSError(1, "Operation not permitted")

    io.add_vip = broken  # type: ignore[method-assign]
    boot.fire(opened + master_down_interval_s(3, 200, 1))
    assert boot.failed is not None and "Operation not permitted" in boot.failed
    boot.stop()
    assert boot.adopt("VI_1", _entry(cfg)) is None  # the daemon starts it afresh
    assert "Operation not permitted" in boot.discarded["VI_1"]


def test_epoch_is_read_as_the_daemons_epoch_store_reads_it(tmp_path: Path) -> None:
    from pyvrrp.splitbrain.epoch import EpochStore

    store = EpochStore(tmp_path)
    for text in ("7\n", " 12 ", "1_000", "+5", "-1", "x", "", str(2**63), "\u0663"):
        store.path_for("VI").write_text(text, encoding="utf-8")
        assert fast_start._read_epoch(str(store.path_for("VI"))) == store.load("VI"), text
    assert fast_start._read_epoch(str(tmp_path / "missing.epoch")) == 0
    assert fast_start._read_epoch(None) == 0
