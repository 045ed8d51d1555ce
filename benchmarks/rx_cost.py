"""Receive cost: process CPU per received advert on a BACKUP, no root, no network (issue 15).

Usage::

    python benchmarks/rx_cost.py [--vrids 50] [--adverts 200000] [--batch 50]
                                 [--version 3] [--socket fake|unix] [--profile] [--top 25]

It drives exactly the daemon's receive code, not a copy: a real
:class:`~pyvrrp.adapters.vrrp_socket.VrrpSocket` (never opened) whose OS socket is
replaced by a stand-in, registered with a real
:class:`~pyvrrp.runtime.supervisor.Supervisor` by ``read_sockets()``; every round queues
``--batch`` adverts and calls the socket's readiness handler, as the event loop does when
epoll says the socket is readable.  That walks ``VrrpSocket._on_readable`` ->
``Supervisor.drain`` -> ``VrrpSocket.recv_raw`` (SO_TIMESTAMPNS, SO_RXQ_OVFL) ->
``Supervisor._dispatch`` -> ``VirtualRouter.refresh`` (or parse / decode / ``feed`` when
the datagram is not the one its instance last accepted).

``--vrids`` BACKUP instances (priority 100, VRIDs 1..N on one interface) hear a master
(priority 150) advertise each VRID in turn, the same bytes every time, as on the wire.

``--socket``:

* ``fake`` (default): ``recvmsg`` / ``recvmsg_into`` hand out pre-built datagrams with a
  fresh SO_TIMESTAMPNS control message: the Python cost alone.
* ``unix``: an AF_UNIX datagram socketpair with SO_TIMESTAMPNS: adds the real syscalls
  (what a raw socket costs in the kernel is not modelled: that is the same for keepalived).
  The kernel queues at most ``net.unix.max_dgram_qlen`` datagrams, so ``--batch`` is capped.
* ``--pace RATE`` (implies ``unix``): the daemon's event loop instead of hand-made rounds.
  A forked child sends the adverts at RATE per second for ``--seconds``; the parent runs
  a real asyncio loop with the socket registered by ``Supervisor.read_sockets()`` (epoll
  readiness, the one timer heap live, Master_Down at 3 intervals of ``--vrids`` / RATE),
  and its process CPU over the run is divided by the adverts it read: the loop's own
  per-wakeup cost is in the figure, as in the daemon's.  ``--tick``: the child sends in
  bursts this far apart (default 1 ms), i.e. how many adverts one wake-up finds.

Reported: µs of process CPU (``time.process_time_ns``) per advert, measured around the
readiness calls only (queueing the datagrams is not counted), and how many took the fast
path.  ``--profile`` runs the same loop under cProfile and prints the top functions by
own time.  Not a test: nothing asserts on the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ipaddress
import os
import pstats
import socket
import struct
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import structlog  # noqa: E402

from pyvrrp.adapters.notify import NotifyRunner  # noqa: E402
from pyvrrp.adapters.vrrp_socket import SO_TIMESTAMPNS, VrrpSocket  # noqa: E402
from pyvrrp.config.models import VrrpInstance  # noqa: E402
from pyvrrp.proto import events as ev  # noqa: E402
from pyvrrp.proto.packet import Advertisement, encode  # noqa: E402
from pyvrrp.proto.router import VirtualRouter  # noqa: E402
from pyvrrp.runtime.daemon import router_config  # noqa: E402
from pyvrrp.runtime.executor import Executor  # noqa: E402
from pyvrrp.runtime.instance import Instance  # noqa: E402
from pyvrrp.runtime.supervisor import Supervisor  # noqa: E402

PRIMARY = ipaddress.IPv4Address("192.0.2.2")
MASTER = ipaddress.IPv4Address("192.0.2.1")
GROUP = ipaddress.IPv4Address("224.0.0.18")
IFNAME = "bench0"
_PEER = (str(MASTER), 0)


def ipv4_datagram(payload: bytes, src: ipaddress.IPv4Address, ttl: int = 255) -> bytes:
    """An IPv4 datagram as a raw IPPROTO_VRRP socket delivers it (header + VRRP message)."""
    total = 20 + len(payload)
    header = bytes([0x45, 0xC0, total >> 8, total & 0xFF, 0, 0, 0x40, 0, ttl, 112, 0, 0])
    return header + src.packed + GROUP.packed + payload


def adverts(vrids: int, version: int, interval_cs: int = 100) -> list[bytes]:
    """The master's advert of each VRID 1..``vrids`` (one /32 VIP each)."""
    out = []
    for vrid in range(1, vrids + 1):
        vip = ipaddress.IPv4Address(f"198.51.{vrid // 256}.{vrid % 256}")
        adv = Advertisement(
            version=version, vrid=vrid, priority=150, addresses=(vip,), interval_cs=interval_cs
        )
        out.append(ipv4_datagram(encode(adv, src=MASTER, dst=GROUP), MASTER))
    return out


def _stamp_cmsg() -> tuple[int, int, bytes]:
    ns = time.time_ns()
    return (socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("=qq", ns // 1_000_000_000, ns % 1_000_000_000))


class FakeRawSocket:
    """``recvmsg`` / ``recvmsg_into`` over a queue of datagrams, EAGAIN when empty."""

    def __init__(self) -> None:
        self.queue: deque[tuple[bytes, list[tuple[int, int, bytes]]]] = deque()

    def push(self, data: bytes) -> None:
        self.queue.append((data, [_stamp_cmsg()]))

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[Any, ...]:
        if not self.queue:
            raise BlockingIOError
        data, anc = self.queue.popleft()
        return data[:bufsize], anc, 0, _PEER

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> tuple[Any, ...]:
        if not self.queue:
            raise BlockingIOError
        data, anc = self.queue.popleft()
        buf = memoryview(buffers[0])
        n = min(len(data), len(buf))
        buf[:n] = data[:n]
        return n, anc, 0, _PEER

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class UnixRawSocket:
    """The receiving end of an AF_UNIX datagram socketpair, stamped by the kernel."""

    def __init__(self) -> None:
        self.rx, self.tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.rx.setblocking(False)

    def push(self, data: bytes) -> None:
        self.tx.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rx, name)


class _Null:
    """Executor adapters the receive path never reaches on a BACKUP hearing its master."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the receive path called {name!r}: this is no longer a steady BACKUP")


def build(vrids: int, version: int, raw: Any, *, advert_int: float = 1.0) -> tuple[Supervisor, VrrpSocket]:
    """A supervisor with ``vrids`` BACKUP instances sharing one VrrpSocket over ``raw``."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sup = Supervisor(loop)
    executor = Executor(
        loop=loop,
        netlink=_Null(),  # type: ignore[arg-type]
        announcer=_Null(),  # type: ignore[arg-type]
        notifier=NotifyRunner(timeout_s=1.0),
        epochs=None,
        feed=sup.feed,
        on_takeover_pending=lambda inst, action: None,
        on_state_changed=lambda inst, action: None,
    )
    sup.bind(executor)
    vsock = VrrpSocket(IFNAME, 4, src=PRIMARY)
    vsock._sock = raw  # the only stand-in: everything above the OS socket is the daemon's
    key = (IFNAME, 4)
    sup.add_socket(key, vsock)
    for vrid in range(1, vrids + 1):
        spec = VrrpInstance.model_validate(
            {
                "interface": IFNAME,
                "virtual_router_id": vrid,
                "priority": 100,
                "version": version,
                "advert_int": advert_int,
                "virtual_ipaddress": [f"198.51.{vrid // 256}.{vrid % 256}/32"],
            }
        )
        name = f"VI_{vrid}"
        router = VirtualRouter(router_config(name, spec, PRIMARY, in_group=False))
        inst = Instance(name=name, spec=spec, router=router, sock=vsock, log=structlog.get_logger().bind())
        sup.instances[name] = inst
        sup.feed(inst, ev.Startup())
        assert router.state is ev.State.BACKUP
    # the daemon's add_reader without a loop registration (the fd is not real)
    vsock._callback = lambda *item: sup.on_datagram(key, *item)
    vsock._batch = lambda: sup._on_readable(key)
    sup._readers.add(key)
    sup._reading = True
    return sup, vsock


def run(sup: Supervisor, vsock: VrrpSocket, raw: Any, datagrams: list[bytes], total: int, batch: int) -> int:
    """Queue ``batch`` adverts, call the readiness handler; CPU ns spent in the handler."""
    spent = 0
    i, n = 0, len(datagrams)
    on_readable = vsock._on_readable
    while total > 0:
        k = min(batch, total)
        for _ in range(k):
            raw.push(datagrams[i])
            i = i + 1 if i + 1 < n else 0
        t0 = time.process_time_ns()
        on_readable()
        spent += time.process_time_ns() - t0
        total -= k
    return spent


def paced(args: argparse.Namespace) -> int:
    """The event-loop variant (``--pace``): a child sends, the daemon's loop reads."""
    interval_cs = max(1, round(args.vrids / args.pace * 100))
    raw = UnixRawSocket()
    raw.tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sup, vsock = build(args.vrids, 3, raw, advert_int=interval_cs / 100)
    datagrams = adverts(args.vrids, 3, interval_cs)
    vsock._batch = None
    sup._readers.clear()
    pid = os.fork()
    if pid == 0:  # child: send at the pace, in bursts --tick apart
        try:
            start, sent, i = time.monotonic(), 0, 0
            while (elapsed := time.monotonic() - start) < args.seconds + 1.0:
                due = int(elapsed * args.pace)
                while sent < due:
                    try:
                        raw.tx.send(datagrams[i])
                    except BlockingIOError:
                        break
                    sent, i = sent + 1, (i + 1) % len(datagrams)
                time.sleep(args.tick)
        finally:
            os._exit(0)
    loop = sup.loop
    split: list[float] = []

    async def measure() -> tuple[int, int, int]:
        sup.read_sockets()  # the daemon's registration: loop.add_reader -> Supervisor._on_readable
        await asyncio.sleep(0.5)  # every instance has had its first advert
        n0, t0, u0 = sup.rx.fast + sup.rx.full, time.process_time_ns(), os.times()
        await asyncio.sleep(args.seconds)
        u1 = os.times()
        split[:] = [u1.user - u0.user, u1.system - u0.system]
        return sup.rx.fast + sup.rx.full - n0, time.process_time_ns() - t0, sup.rx.batches

    prof = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not wall
    if prof is not None:
        prof.enable()
    n, spent, batches = loop.run_until_complete(measure())
    if prof is not None:
        prof.disable()
    os.waitpid(pid, 0)
    states = sorted({i.router.state.value for i in sup.instances.values()})
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"rx_cost: {spent / max(n, 1) / 1000:.2f} us/advert  (paced {args.pace:.0f}/s, {n} adverts in "
        f"{args.seconds:.0f} s; user {split[0] * 1e6 / max(n, 1):.1f} "
        f"+ system {split[1] * 1e6 / max(n, 1):.1f}; {args.vrids} VRIDs at {interval_cs * 10} ms, "
        f"event loop, unix socketpair; fast {sup.rx.fast}, full {sup.rx.full}, batches {batches}, "
        f"timers {sup.rx.timers}, tick {args.tick * 1000:g} ms; "
        f"states {states}; "
        f"load {load}{'; under cProfile' if prof is not None else ''})"
    )
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--vrids", type=int, default=50)
    ap.add_argument("--adverts", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=50, help="adverts queued per readiness event")
    ap.add_argument("--version", type=int, default=3, choices=(2, 3))
    ap.add_argument("--socket", default="fake", choices=("fake", "unix"))
    ap.add_argument("--pace", type=float, default=0.0, help="adverts/s from a child process (event loop)")
    ap.add_argument("--seconds", type=float, default=10.0, help="--pace: run length")
    ap.add_argument("--tick", type=float, default=0.001, help="--pace: seconds between bursts")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # as quiet as the daemon's hot path
    if args.pace:
        return paced(args)
    raw: Any = FakeRawSocket() if args.socket == "fake" else UnixRawSocket()
    batch = args.batch
    if args.socket == "unix":
        qlen = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
        batch = min(batch, qlen)
    sup, vsock = build(args.vrids, args.version, raw)
    datagrams = adverts(args.vrids, args.version)
    run(sup, vsock, raw, datagrams, len(datagrams) * 2, batch)  # warm-up: every instance's first advert
    fast0, full0 = sup.rx.fast, sup.rx.full
    if args.profile:
        prof = cProfile.Profile(time.process_time)  # CPU, not wall
        prof.enable()
    spent = run(sup, vsock, raw, datagrams, args.adverts, batch)
    if args.profile:
        prof.disable()
    fast, full = sup.rx.fast - fast0, sup.rx.full - full0
    states = {i.router.state for i in sup.instances.values()}
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"rx_cost: {spent / args.adverts / 1000:.2f} us/advert  ({args.adverts} adverts, {args.vrids} VRIDs, "
        f"v{args.version}, batch {batch}, socket {args.socket}; fast {fast}, full {full}; "
        f"states {sorted(s.value for s in states)}; load {load}{'; under cProfile' if args.profile else ''})"
    )
    if args.profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
