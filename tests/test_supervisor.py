"""The supervisor and the executor: the receive path, feeding, timers, action order (no root)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

from pyvrrp.adapters.notify import NotifyRunner
from pyvrrp.adapters.vrrp_socket import SocketStats, split_datagram
from pyvrrp.base import clock
from pyvrrp.config.models import VrrpInstance
from pyvrrp.proto import events as ev
from pyvrrp.proto.packet import Advertisement, encode
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.runtime.daemon import router_config
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.instance import TIMER, Instance
from pyvrrp.runtime.supervisor import TIMER_LEAD_S, Supervisor


def in_loop(fn: Any) -> Any:
    """Run an ``async def`` test in a fresh event loop (no pytest-asyncio here)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


PRIMARY = ipaddress.ip_address("192.0.2.10")
PEER = ipaddress.ip_address("192.0.2.11")
GROUP = ipaddress.ip_address("224.0.0.18")


@dataclass
class FakeSocket:
    rx_stamp_ns: int = 0
    sent: list[tuple[bytes, Any]] = field(default_factory=list)
    journal: list[str] | None = None
    protocol: int = 112
    stats: SocketStats = field(default_factory=SocketStats)

    def send_datagram(self, datagram: bytes, dst: Any) -> bool:
        self.sent.append((datagram, dst))
        return True

    def send(self, payload: bytes, dst: Any = None, *, src: Any = None) -> int:
        self.sent.append((payload, dst))
        if self.journal is not None:
            self.journal.append("advert")
        return len(payload)

    def poll(self) -> bool:
        return False

    def recv_raw(self) -> Any:
        return None

    def add_reader(self, callback: Any, *, batch: Any = None) -> None:
        self.callback = callback
        self.batch = batch


@dataclass
class FakeAddresses:
    journal: list[str]
    fail: bool = False
    held: set[str] = field(default_factory=set)

    def add(self, ifname: str, address: Any, *, label: str | None = None, **_opts: Any) -> bool:
        if self.fail:
            raise OSError("Operation not permitted")
        self.journal.append(f"add {address}")
        new = str(address) not in self.held
        self.held.add(str(address))
        return new

    def remove(self, ifname: str, address: Any) -> bool:
        self.journal.append(f"remove {address}")
        gone = str(address) in self.held
        self.held.discard(str(address))
        return gone


@dataclass
class FakeAnnouncer:
    journal: list[str]

    def announce(self, ifname: str, vips: Any, *, repeat: int = 1) -> None:
        self.journal.append("garp")


def _spec(**kw: Any) -> VrrpInstance:
    body = {"interface": "eth0", "virtual_router_id": 7, "virtual_ipaddress": ["192.0.2.100/32"]}
    return VrrpInstance.model_validate(body | kw)


Rig = tuple[Supervisor, Instance, list[str]]


def _rig(loop: asyncio.AbstractEventLoop, *, fail_add: bool = False, **kw: Any) -> Rig:
    journal: list[str] = []
    sup = Supervisor(loop)
    executor = Executor(
        loop=loop,
        netlink=FakeAddresses(journal, fail=fail_add),
        announcer=FakeAnnouncer(journal),  # type: ignore[arg-type]
        notifier=NotifyRunner(timeout_s=1.0),
        epochs=None,
        feed=sup.feed,
        on_takeover_pending=lambda inst, action: journal.append("takeover_pending"),
        on_state_changed=lambda inst, action: journal.append(f"state {action.new.value}"),
    )
    sup.bind(executor)
    spec = _spec(**kw)
    sock = FakeSocket(journal=journal)
    router = VirtualRouter(router_config("VI", spec, PRIMARY, in_group=False))
    inst = Instance(name="VI", spec=spec, router=router, sock=sock, log=structlog.get_logger().bind())  # type: ignore[arg-type]
    sup.instances["VI"] = inst
    sup.sockets[inst.key] = sock  # type: ignore[assignment]
    return sup, inst, journal


def _advert(priority: int, vrid: int = 7) -> bytes:
    vip = ipaddress.ip_address("192.0.2.100")
    adv = Advertisement(version=2, vrid=vrid, priority=priority, addresses=(vip,), interval_cs=100)
    return encode(adv, src=PEER, dst=GROUP)


@in_loop
async def test_startup_arms_the_one_timer_at_the_engine_deadline() -> None:
    sup, inst, _ = _rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    assert inst.router.state is ev.State.BACKUP
    assert inst.timer_at == inst.router.next_deadline()
    assert sup._handle is not None and sup._handle_at == inst.timer_at - TIMER_LEAD_S  # type: ignore[operator]


@in_loop
async def test_an_advert_from_a_better_master_holds_the_backup_and_moves_its_deadline() -> None:
    sup, inst, _ = _rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    first = inst.timer_at
    await asyncio.sleep(0.01)
    sup.on_datagram(inst.key, _advert(200), PEER, GROUP, 255)
    assert inst.router.state is ev.State.BACKUP
    assert first is not None and inst.timer_at is not None and inst.timer_at > first
    assert inst.router.snapshot(now=clock.monotonic()).master_ip == PEER


@in_loop
async def test_unknown_vrid_and_malformed_datagrams_are_counted_not_fed() -> None:
    sup, inst, _ = _rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    sup.on_datagram(inst.key, _advert(200, vrid=9), PEER, GROUP, 255)
    sup.on_datagram(inst.key, b"\x21\x07", PEER, GROUP, 255)
    assert sup.socket_drops["vrid"] == 1
    assert sum(sup.socket_drops.values()) == 2
    assert inst.router.snapshot(now=clock.monotonic()).master_ip is None


@in_loop
async def test_takeover_sends_the_advert_then_adds_the_vip_then_announces() -> None:
    sup, inst, journal = _rig(asyncio.get_running_loop(), priority=255)  # owner: MASTER at once
    sup.feed(inst, ev.Startup())
    assert inst.router.state is ev.State.MASTER
    hot = [j for j in journal if not j.startswith("state")]
    assert hot[:3] == ["advert", "add 192.0.2.100/32", "garp"]
    await asyncio.sleep(0)  # bookkeeping runs after the packets have left
    assert "state MASTER" in journal
    assert journal.index("state MASTER") > journal.index("garp")


@in_loop
async def test_a_vip_that_cannot_be_added_faults_the_instance() -> None:
    sup, inst, _ = _rig(asyncio.get_running_loop(), fail_add=True, priority=255)
    sup.feed(inst, ev.Startup())
    assert inst.router.state is ev.State.FAULT
    assert not inst.busy and not inst.inbox


@in_loop
async def test_arrival_is_the_kernel_stamp_on_the_monotonic_clock() -> None:
    sup, inst, _ = _rig(asyncio.get_running_loop())
    inst.sock.rx_stamp_ns = time.time_ns() - 3_000_000  # type: ignore[misc]  # arrived 3 ms ago
    at = sup.arrival(inst.key)
    assert at is not None
    assert 0.0025 <= clock.monotonic() - at <= 0.05


@pytest.mark.parametrize("offset_ns", [None, 2_000_000_000, -10_000_000_000])
@in_loop
async def test_arrival_falls_back_to_now_when_the_stamp_is_unusable(offset_ns: int | None) -> None:
    sup, inst, _ = _rig(asyncio.get_running_loop())
    inst.sock.rx_stamp_ns = 0 if offset_ns is None else time.time_ns() + offset_ns  # type: ignore[misc]
    assert sup.arrival(inst.key) is None
    assert sup.arrival(("eth9", 4)) is None  # no socket


@in_loop
async def test_master_down_fires_on_the_loop_and_takes_over() -> None:
    sup, inst, journal = _rig(asyncio.get_running_loop(), version=3, advert_int=0.01)
    sup.feed(inst, ev.Startup())
    deadline = inst.router.next_deadline()
    assert deadline is not None
    await asyncio.sleep(deadline - clock.monotonic() + 0.05)
    assert inst.router.state is ev.State.MASTER
    assert "add 192.0.2.100/32" in journal


def ipv4(payload: bytes, src: Any = PEER, ttl: int = 255) -> bytes:
    """An IPv4 datagram as a raw socket delivers it (header + VRRP)."""
    total = 20 + len(payload)
    header = bytes([0x45, 0xC0, total >> 8, total & 0xFF, 0, 0, 0x40, 0, ttl, 112, 0, 0])
    return header + src.packed + GROUP.packed + payload


@dataclass
class QueuedSocket(FakeSocket):
    """A socket with datagrams the loop has not read yet (it was busy): (IPv4 datagram, stamp)."""

    queue: list[tuple[bytes, int]] = field(default_factory=list)
    stats: SocketStats = field(default_factory=SocketStats)

    def recv_raw(self) -> Any:
        if not self.queue:
            return None
        data, self.rx_stamp_ns = self.queue.pop(0)
        return data, [], ("192.0.2.11", 0)

    def parse(self, data: bytes, ancdata: Any, addr: Any) -> Any:
        return split_datagram(4, data, ancdata, addr) or False


@in_loop
async def test_a_late_timer_reads_adverts_that_arrived_in_time_before_taking_over() -> None:
    # Issue 15: a backup whose loop is behind must not take over from a master that kept
    # advertising; the queued advert is read first and, dated by its arrival stamp, holds it.
    loop = asyncio.get_running_loop()
    sup, inst, journal = _rig(loop, version=3, advert_int=0.05)
    sock = QueuedSocket(journal=journal)
    inst.sock = sup.sockets[inst.key] = sock  # type: ignore[assignment]
    sup.read_sockets()
    sup.feed(inst, ev.Startup())
    sup.on_datagram(inst.key, _advert_v3(200), PEER, GROUP, 255)
    deadline = inst.router.next_deadline()
    assert deadline is not None
    time.sleep(max(0.0, deadline - clock.monotonic()) + 0.02)  # the loop is blocked past the deadline
    arrived = time.time_ns() - int((clock.monotonic() - (deadline - 0.03)) * 1e9)  # 30 ms before it
    sock.queue.append((ipv4(_advert_v3(200)), arrived))
    await asyncio.sleep(0.001)
    assert inst.router.state is ev.State.BACKUP
    assert "add 192.0.2.100/32" not in journal
    assert inst.router.next_deadline() is not None and inst.router.next_deadline() > deadline  # type: ignore[operator]


def _advert_v3(priority: int) -> bytes:
    vip = ipaddress.ip_address("192.0.2.100")
    adv = Advertisement(version=3, vrid=7, priority=priority, addresses=(vip,), interval_cs=5)
    return encode(adv, src=PEER, dst=GROUP)


RigN = tuple[Supervisor, list[Instance], "QueuedSocket"]


def _rig_n(loop: asyncio.AbstractEventLoop, n: int, **kw: Any) -> RigN:
    """``n`` instances (VRIDs 1..n) sharing one queued socket."""
    sup, first, journal = _rig(loop, **kw)
    sock = QueuedSocket(journal=journal)
    del sup.instances["VI"]
    insts = []
    for vrid in range(1, n + 1):
        spec = _spec(virtual_router_id=vrid, **kw)
        router = VirtualRouter(router_config(f"VI_{vrid}", spec, PRIMARY, in_group=False))
        inst = Instance(name=f"VI_{vrid}", spec=spec, router=router, sock=sock, log=first.log)  # type: ignore[arg-type]
        sup.instances[inst.name] = inst
        insts.append(inst)
    sup.sockets[first.key] = sock  # type: ignore[assignment]
    sup.read_sockets()
    for inst in insts:
        sup.feed(inst, ev.Startup())
    return sup, insts, sock


def _v3(vrid: int, priority: int = 200, interval_cs: int = 5) -> bytes:
    vip = ipaddress.ip_address("192.0.2.100")
    adv = Advertisement(version=3, vrid=vrid, priority=priority, addresses=(vip,), interval_cs=interval_cs)
    return ipv4(encode(adv, src=PEER, dst=GROUP))


@in_loop
async def test_the_masters_repeated_advert_takes_the_fast_path_and_holds_the_backup() -> None:
    sup, insts, sock = _rig_n(asyncio.get_running_loop(), 3, version=3, advert_int=0.05)
    for _ in range(5):
        sock.queue += [(_v3(v), time.time_ns()) for v in (1, 2, 3)]
        sock.batch()  # readiness: one batch reads the socket until it is empty
        assert not sock.queue
    assert sup.rx.full == 3 and sup.rx.fast == 12  # first sight decoded, the rest recognised
    assert sup.rx.batch_last == 3 and sup.rx.batches == 5
    for inst in insts:
        snap = inst.router.snapshot(now=clock.monotonic())
        assert snap.state is ev.State.BACKUP and snap.master_ip == PEER
        assert snap.counters["adverts_rx"] == 5
        assert inst.timer_at == snap.next_deadline
    sock.queue.append((_v3(2, priority=180), time.time_ns()))  # a change: full path again
    sock.batch()
    assert sup.rx.full == 4
    assert insts[1].router.snapshot(now=clock.monotonic()).master_priority == 180


@in_loop
async def test_one_loop_timer_for_every_instance() -> None:
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    sup, insts, sock = _rig_n(loop, 50, version=3, advert_int=0.05)
    assert len(loop._scheduled) - before == 1  # type: ignore[attr-defined]
    for _ in range(3):  # adverts move every deadline later: nothing is pushed or rescheduled
        sock.queue += [(_v3(i.router.config.vrid), time.time_ns()) for i in insts]
        sock.batch()
    assert len(sup._heap) == 50
    assert len(loop._scheduled) - before == 1  # type: ignore[attr-defined]


@in_loop
async def test_instances_that_expire_together_take_over_in_one_sweep() -> None:
    loop = asyncio.get_running_loop()
    sup, insts, sock = _rig_n(loop, 20, version=3, advert_int=0.05)
    stamp = time.time_ns()  # one receive stamp: a stall while queueing must not spread the deadlines
    sock.queue += [(_v3(i.router.config.vrid), stamp) for i in insts]
    sock.batch()  # the master's last adverts; then it dies
    last = max(i.timer_at for i in insts if i.timer_at is not None)
    await asyncio.sleep(last - clock.monotonic() + 0.05)
    assert all(i.router.state is ev.State.MASTER for i in insts)
    assert sup.rx.timers <= 3  # one sweep (plus the spin's re-check), not 20 timer callbacks


@dataclass
class BatchAddresses(FakeAddresses):
    batches: list[int] = field(default_factory=list)

    def add_many(self, items: list[tuple[str, Any, str | None]]) -> list[bool | OSError]:
        self.batches.append(len(items))
        self.journal.append(f"add_many {len(items)}")
        return [self.add(item[0], item[1]) for item in items]


@in_loop
async def test_a_mass_failover_adds_every_vip_in_one_batch_then_one_garp_burst() -> None:
    # Issue 15 item 3: the adverts first, then one netlink batch, then one GARP burst per interface.
    loop = asyncio.get_running_loop()
    sup, insts, sock = _rig_n(loop, 20, version=3, advert_int=0.05)
    assert sup.executor is not None
    journal = sock.journal
    assert journal is not None
    addresses = BatchAddresses(journal)
    sup.executor.netlink = addresses
    stamp = time.time_ns()  # one receive stamp: a stall while queueing must not spread the deadlines
    sock.queue += [(_v3(i.router.config.vrid), stamp) for i in insts]
    sock.batch()
    # deadlines as close together as a master's burst of adverts makes them
    last = max(i.timer_at for i in insts if i.timer_at is not None)
    journal.clear()
    await asyncio.sleep(last - clock.monotonic() + 0.05)
    assert all(i.router.state is ev.State.MASTER for i in insts)
    hot = [j for j in journal if not j.startswith(("state", "add 192"))]
    assert sum(addresses.batches) == 20 and len(addresses.batches) <= 2, addresses.batches
    first_batch = hot.index(f"add_many {addresses.batches[0]}")
    assert hot[:first_batch] == ["advert"] * addresses.batches[0]  # every advert before any VIP
    assert hot.count("garp") == len(addresses.batches)  # one burst per interface and sweep
    assert hot.index("garp") > first_batch


@in_loop
async def test_a_late_timer_drains_every_instance_before_any_takes_over() -> None:
    # Issue 15 item 1, with many instances: the loop is blocked past all deadlines while
    # the master kept advertising; none takes over.
    loop = asyncio.get_running_loop()
    sup, insts, sock = _rig_n(loop, 30, version=3, advert_int=0.05)
    stamp = time.time_ns()  # one receive stamp: a stall while queueing must not spread the deadlines
    sock.queue += [(_v3(i.router.config.vrid), stamp) for i in insts]
    sock.batch()
    last = max(i.timer_at for i in insts if i.timer_at is not None)
    for _ in range(12):  # blocked 240 ms (Master_Down ~0.18 s) while adverts keep arriving
        time.sleep(0.02)
        stamp = time.time_ns()
        sock.queue += [(_v3(i.router.config.vrid), stamp) for i in insts]
    assert clock.monotonic() > last
    await asyncio.sleep(0.01)
    assert all(i.router.state is ev.State.BACKUP for i in insts)
    assert sup.rx.drained_before_timer == 360 and sup.rx.timers_late >= 1
    assert sup.rx_view()["oldest_unread_age_max_s"] >= 0.1  # type: ignore[operator]


# ------------------------------------------------------------------ auth_type AH


def _ah_rig(
    loop: asyncio.AbstractEventLoop, password: str = "secret12"
) -> tuple[Supervisor, Instance, FakeSocket]:
    from pyvrrp.runtime.daemon import ah_session

    sup, inst, journal = _rig(loop, authentication={"auth_type": "AH", "auth_pass": password})
    del sup.sockets[inst.key]
    inst.ah = ah_session(inst.spec)
    sock = FakeSocket(journal=journal, protocol=51)
    inst.sock = sup.sockets[inst.key] = sock  # type: ignore[assignment]
    return sup, inst, sock


def _ah_advert(priority: int, seq: int, password: str = "secret12") -> bytes:
    from pyvrrp.proto.ah import ah_key, build_datagram

    adv = Advertisement(
        version=2,
        vrid=7,
        priority=priority,
        addresses=(ipaddress.ip_address("192.0.2.100"),),
        interval_cs=100,
        auth_type=2,
    )
    return build_datagram(encode(adv), key=ah_key(password), src=PEER, dst=GROUP, seq=seq, ip_id=seq)  # type: ignore[arg-type]


@in_loop
async def test_ah_adverts_are_verified_then_fed_and_replays_dropped() -> None:
    """RX-07 (keepalived AH): a verified advert holds the backup; a replay, a wrong key and a
    plain VRRP advert for the AH instance are counted as auth drops and never reach the engine."""
    sup, inst, sock = _ah_rig(asyncio.get_running_loop())
    assert inst.key == ("eth0", 51)
    sup.feed(inst, ev.Startup())
    sup._dispatch(inst.key, sock, (_ah_advert(200, 5), [], (str(PEER), 0)), None)  # type: ignore[arg-type]
    snap = inst.router.snapshot(now=clock.monotonic())
    assert snap.state is ev.State.BACKUP and snap.master_ip == PEER and snap.master_priority == 200
    assert inst.ah is not None and inst.ah.seq.last == 5
    for bad in (_ah_advert(200, 5), _ah_advert(200, 4), _ah_advert(201, 9, password="otherpw1")):
        sup._dispatch(inst.key, sock, (bad, [], (str(PEER), 0)), None)  # type: ignore[arg-type]
    sup.on_datagram(("eth0", 4), _advert(250), PEER, GROUP, 255)  # no AH header: refused
    snap = inst.router.snapshot(now=clock.monotonic())
    assert snap.drops == {"auth": 4} and snap.master_priority == 200 and inst.ah.seq.last == 5


@in_loop
async def test_ah_master_sends_whole_datagrams_continuing_the_sequence() -> None:
    """A backup that heard seq 5 and takes over sends seq 6, 7, ... (keepalived's one counter)."""
    from pyvrrp.proto.ah import AhDatagram, verify_datagram

    sup, inst, sock = _ah_rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    sup._dispatch(inst.key, sock, (_ah_advert(200, 5), [], (str(PEER), 0)), None)  # type: ignore[arg-type]
    sup.feed(
        inst,
        ev.AdvertReceived(
            advert=Advertisement(2, 7, 0, (ipaddress.ip_address("192.0.2.100"),), 100, 2),
            src=PEER,
            ttl=255,
            dst=GROUP,
        ),
    )
    deadline = inst.router.next_deadline()
    assert deadline is not None
    time.sleep(max(0.0, deadline - clock.monotonic()) + 0.01)
    sup.feed(inst, TIMER)
    assert inst.router.state is ev.State.MASTER
    sent = [d for d, _ in sock.sent]
    assert sent
    got = verify_datagram(sent[0], key=b"secret12", unicast=False)
    assert isinstance(got, AhDatagram) and got.seq == 6
    assert sent[0][9] == 51 and sent[0][12:16] == PRIMARY.packed
@in_loop
async def test_fast_and_full_path_date_the_advert_from_its_kernel_stamp() -> None:
    # One clock anchor per batch: an advert that waited 40 ms in the socket resets
    # Master_Down from its arrival, on the full path (first sight) and the fast one alike.
    sup, insts, sock = _rig_n(asyncio.get_running_loop(), 1, version=3, advert_int=0.05)
    inst = insts[0]
    for expected_full, expected_fast in ((1, 0), (1, 1)):
        sock.queue.append((_v3(1), time.time_ns() - 40_000_000))
        sock.batch()
        assert (sup.rx.full, sup.rx.fast) == (expected_full, expected_fast)
        snap = inst.router.snapshot(now=clock.monotonic())
        arrived = inst.router.next_deadline() - snap.master_down_interval_s  # type: ignore[operator]
        assert 0.035 <= clock.monotonic() - arrived <= 0.5
        assert inst.timer_at == inst.router.next_deadline()


@pytest.mark.parametrize("offset_ns", [10_000_000_000, -2_000_000_000])
@in_loop
async def test_a_batch_dates_an_unusable_stamp_now(offset_ns: int) -> None:
    # A stamp in the future (after re-reading the clocks) or older than the sanity window
    # is a wall-clock step: the advert counts as arriving now, on both paths.
    sup, insts, sock = _rig_n(asyncio.get_running_loop(), 1, version=3, advert_int=0.05)
    inst = insts[0]
    for _ in range(2):
        before = clock.monotonic()
        sock.queue.append((_v3(1), time.time_ns() + offset_ns))
        sock.batch()
        snap = inst.router.snapshot(now=clock.monotonic())
        arrived = inst.router.next_deadline() - snap.master_down_interval_s  # type: ignore[operator]
        assert before <= arrived <= clock.monotonic()
    assert sup.rx.fast == 1


@in_loop
async def test_the_fast_path_keeps_dating_a_lower_priority_master_for_preemption() -> None:
    # nopreempt backup (150) hearing a lower master (100): each advert, fast or full, moves
    # last_lower_rx to its arrival; a higher master's adverts never do.
    sup, insts, sock = _rig_n(
        asyncio.get_running_loop(), 1, version=3, advert_int=0.05, priority=150, preempt=False
    )
    inst = insts[0]
    stamps = []
    for _ in range(3):
        stamps.append(time.time_ns() - 10_000_000)
        sock.queue.append((_v3(1, priority=100), stamps[-1]))
        sock.batch()
        assert inst.last_lower_rx is not None
        assert 0.009 <= clock.monotonic() - inst.last_lower_rx <= 0.5
    assert sup.rx.fast == 2
    inst.last_lower_rx = None
    sock.queue += [(_v3(1, priority=200), time.time_ns()) for _ in range(2)]
    sock.batch()
    assert sup.rx.fast == 3 and inst.last_lower_rx is None


@in_loop
async def test_a_timer_wake_up_with_nothing_due_reads_no_socket() -> None:
    # The heap entry of a backup whose deadline an advert moved later fires at the old
    # time: it goes back in the heap, and the sockets are left to their readiness events.
    # The loop never runs here (blocking sleeps): the timer callback is called by hand.
    sup, insts, sock = _rig_n(asyncio.get_running_loop(), 3, version=3, advert_int=0.2)
    time.sleep(0.3)  # Master_Down ~0.6 s: the adverts below move every deadline 0.3 s later
    sock.queue += [(_v3(i.router.config.vrid, interval_cs=20), time.time_ns()) for i in insts]
    sock.batch()
    assert all(i.heap_at < i.timer_at - TIMER_LEAD_S - 0.2 for i in insts)  # type: ignore[operator]
    time.sleep(max(0.0, max(i.heap_at for i in insts) - clock.monotonic()) + 0.01)  # old entries due
    sock.queue += [(_v3(i.router.config.vrid, interval_cs=20), time.time_ns()) for i in insts]
    sup._on_timer()
    assert len(sock.queue) == 3 and sup.rx.drained_before_timer == 0  # ...and read nothing
    assert all(i.heap_seq >= 0 and i.heap_at == i.timer_at - TIMER_LEAD_S for i in insts)  # type: ignore[operator]
    assert all(i.router.state is ev.State.BACKUP for i in insts)


@in_loop
async def test_the_vrid_demux_follows_an_instance_replaced_or_reconfigured() -> None:
    loop = asyncio.get_running_loop()
    sup, insts, sock = _rig_n(loop, 1, version=3, advert_int=0.05)
    old = insts[0]
    sock.queue.append((_v3(1), time.time_ns()))
    sock.batch()
    spec = _spec(virtual_router_id=1, version=3, advert_int=0.05)
    new = Instance(
        name=old.name,
        spec=spec,
        router=VirtualRouter(router_config(old.name, spec, PRIMARY, in_group=False)),
        sock=sock,  # type: ignore[arg-type]
        log=old.log,
    )
    sup.instances[old.name] = new  # a restart: a new instance under the same name
    sup.feed(new, ev.Startup())
    sock.queue.append((_v3(1), time.time_ns()))
    sock.batch()
    assert new.router.snapshot(now=clock.monotonic()).counters["adverts_rx"] == 1
    assert old.router.snapshot(now=clock.monotonic()).counters["adverts_rx"] == 1
    new.spec = _spec(virtual_router_id=1, version=3, advert_int=0.05)  # a reload's reconfigure
    assert sup._instance_for(new.key, 1) is new
    del sup.instances[new.name]
    assert sup._instance_for(new.key, 1) is None


@in_loop
async def test_a_timer_wake_up_refiles_moved_entries_ahead_and_stops_at_one_that_did_not_move() -> None:
    # _pop_due looks TIMER_REFILE_AHEAD_S ahead: stale entries (deadline moved later by an
    # advert) are re-filed in the same wake-up; an entry that did not move ends the look-ahead.
    sup, insts, sock = _rig_n(asyncio.get_running_loop(), 3, version=3, advert_int=0.2)
    first, second, third = insts
    time.sleep(0.05)
    sock.queue += [(_v3(i.router.config.vrid, interval_cs=20), time.time_ns()) for i in (first, third)]
    sock.batch()  # VI_1 and VI_3 heard their master; VI_2 did not (its entry is exact)
    old = [i.heap_at for i in insts]
    assert old == sorted(old) and second.heap_at == second.timer_at - TIMER_LEAD_S  # type: ignore[operator]
    assert sup._pop_due(old[0] - 0.01) == []  # nothing due yet; VI_1 re-filed, VI_2 ends the look-ahead
    assert first.heap_at == first.timer_at - TIMER_LEAD_S > old[0] + 0.04  # type: ignore[operator]
    assert second.heap_at == old[1] and third.heap_at == old[2]
    due = sup._pop_due(old[2] + 0.0001)  # VI_2 due; VI_3 moved: re-filed at its new time
    assert due == [(second.timer_at, second)]
    assert third.heap_seq >= 0 and third.heap_at == third.timer_at - TIMER_LEAD_S  # type: ignore[operator]
    live = [e for e in sup._heap if e[1] == e[2].heap_seq]
    assert sorted(e[2].name for e in live) == ["VI_1", "VI_3"]


@dataclass
class JournalEpochs:
    journal: list[str]
    saved: dict[str, int] = field(default_factory=dict)

    def save(self, name: str, epoch: int) -> None:
        self.journal.append("epoch")
        self.saved[name] = epoch

    def save_many(self, items: list[tuple[str, int]]) -> None:
        self.journal.append(f"epochs {len(items)}")
        self.saved.update(items)


@in_loop
async def test_the_epochs_of_a_mass_failover_are_written_together_after_its_vips_and_garps() -> None:
    # Two fsyncs per takeover, each holding the loop, made the last VRIDs of a mass failover
    # late (N = 1000): the terms begun in one loop pass are saved in one save_many, off the loop.
    loop = asyncio.get_running_loop()
    sup, insts, sock = _rig_n(loop, 20, version=3, advert_int=0.05)
    assert sup.executor is not None and sock.journal is not None
    journal = sock.journal
    sup.executor.netlink = BatchAddresses(journal)
    epochs = JournalEpochs(journal)
    sup.executor.epochs = epochs  # type: ignore[assignment]
    stamp = time.time_ns()
    sock.queue += [(_v3(i.router.config.vrid), stamp) for i in insts]
    sock.batch()
    last = max(i.timer_at for i in insts if i.timer_at is not None)
    journal.clear()
    await asyncio.sleep(last - clock.monotonic() + 0.05)
    assert all(i.router.state is ev.State.MASTER for i in insts)
    sup.executor.close()  # the writer thread has finished
    assert "epoch" not in journal  # none written one by one
    saves = [j for j in journal if j.startswith("epochs")]
    assert 1 <= len(saves) <= 2 and sum(int(j.split()[1]) for j in saves) == 20, saves
    assert journal.index(saves[0]) > journal.index("garp")
    assert epochs.saved == {i.name: i.router.snapshot(now=clock.monotonic()).epoch for i in insts}
