"""The pyroute2 netlink adapter (pyvrrp.adapters.netlink), without root.

pyroute2's messages are built and decoded with its own classes; the request side
runs against a fake ``AsyncIPRoute`` (errors, dumps, NLM_F_DUMP_INTR, timeouts)
and, read-only, against the kernel of the current namespace with ``ip -j`` as the
oracle.  The monitor's overflow resync is driven through a fake socket.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Iterable
from ipaddress import ip_address, ip_interface
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLMSG_ERROR
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink import (
    IFA_F_NODAD,
    IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
    AddressEvent,
    AddrInfo,
    LinkEvent,
    LinkTable,
    Netlink,
    NetlinkMonitor,
    NetlinkOperationError,
    _address_request,
    _Requests,
    addr_info,
    resync_events,
    select_primary,
)

UP = 0x1 | 0x40  # IFF_UP | IFF_RUNNING
ADMIN_UP_NO_CARRIER = 0x1
AF4, AF6 = socket.AF_INET, socket.AF_INET6
NEWLINK, DELLINK, NEWADDR, DELADDR = 16, 17, 20, 21
MULTI, DUMP_INTR = 0x2, 0x10


# ------------------------------------------------------------------ pyroute2 messages


def link_msg(
    index: int,
    name: str,
    flags: int,
    *,
    mac: str | None = "02:00:00:00:00:01",
    kind: int = NEWLINK,
    hflags: int = 0,
) -> ifinfmsg:
    msg = ifinfmsg()
    msg["header"]["type"], msg["header"]["flags"] = kind, hflags
    msg["index"], msg["flags"] = index, flags
    msg["attrs"] = [("IFLA_IFNAME", name)] + ([("IFLA_ADDRESS", mac)] if mac else [])
    msg.encode()
    out = ifinfmsg(msg.data)
    out.decode()
    return out


def addr_msg(
    index: int,
    address: str,
    *,
    local: str | None = None,
    flags: int = 0,
    ext_flags: int | None = None,
    scope: int = 0,
    label: str | None = None,
    kind: int = NEWADDR,
) -> ifaddrmsg:
    iface = ip_interface(address)
    msg = ifaddrmsg()
    msg["header"]["type"] = kind
    msg["family"] = AF4 if iface.version == 4 else AF6
    msg["prefixlen"], msg["flags"], msg["scope"], msg["index"] = iface.network.prefixlen, flags, scope, index
    attrs: list[tuple[str, Any]] = [("IFA_ADDRESS", str(iface.ip))]
    if local is not None:
        attrs.append(("IFA_LOCAL", local))
    if label is not None:
        attrs.append(("IFA_LABEL", label))
    if ext_flags is not None:
        attrs.append(("IFA_FLAGS", ext_flags))
    msg["attrs"] = attrs
    msg.encode()
    out = ifaddrmsg(msg.data)
    out.decode()
    return out


def test_addr_info_prefers_ifa_local_over_peer_address() -> None:
    # "ip addr add 10.0.0.1/32 peer 10.0.0.2": IFA_ADDRESS is the peer, IFA_LOCAL ours
    info = addr_info(addr_msg(4, "10.0.0.2/32", local="10.0.0.1", label="ppp0"))
    assert info == AddrInfo(4, ip_interface("10.0.0.1/32"), 0, 0)
    plain = addr_info(addr_msg(4, "192.0.2.1/24", local="192.0.2.1"))
    assert plain is not None and plain.address == ip_interface("192.0.2.1/24")


def test_addr_info_extended_flags_win() -> None:
    info = addr_info(addr_msg(5, "fe80::1/64", flags=0x80, ext_flags=0x180, scope=253))
    assert info == AddrInfo(5, ip_interface("fe80::1/64"), 0x180, 253)
    tentative = addr_info(addr_msg(5, "fe80::1/64", flags=IFA_F_TENTATIVE))
    assert tentative is not None and tentative.flags == IFA_F_TENTATIVE


# ------------------------------------------------------------------ primary address


def a4(address: str, *, flags: int = 0, scope: int = 0) -> AddrInfo:
    return AddrInfo(1, ip_interface(address), flags, scope)


a6 = a4


def test_primary_ipv4_first_global_non_secondary() -> None:
    addrs = [
        a4("169.254.1.1/16", scope=253),  # link scope: never the advert source
        a4("192.0.2.9/24", flags=IFA_F_SECONDARY),
        a4("192.0.2.1/24"),
        a4("198.51.100.1/24"),
    ]
    assert select_primary(addrs, 4) == ip_address("192.0.2.1")
    assert select_primary(addrs, 4, [ip_address("192.0.2.1")]) == ip_address("198.51.100.1")
    assert select_primary(addrs, 4, [ip_interface("192.0.2.1/24"), ip_address("198.51.100.1")]) is None
    assert select_primary([a6("fe80::1/64")], 4) is None


def test_primary_ipv6_first_link_local_not_tentative() -> None:
    addrs = [
        a6("2001:db8::1/64"),
        a6("fe80::dad/64", flags=IFA_F_TENTATIVE, scope=253),
        a6("fe80::1/64", scope=253),
        a4("192.0.2.1/24"),
    ]
    assert select_primary(addrs, 6) == ip_address("fe80::1")
    assert select_primary(addrs, 6, [ip_address("fe80::1")]) is None
    with pytest.raises(ValueError):
        select_primary(addrs, 5)


# ------------------------------------------------------------------ the pyroute2 pitfall


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_pyroute2_sync_iproute_fails_inside_a_running_loop_and_netlink_does_not() -> None:
    """Why Netlink runs pyroute2 on a private thread: if this canary ever fails, pyroute2's
    own IPRoute works in the daemon's thread and _LoopThread can go."""
    from pyroute2 import IPRoute

    async def main() -> tuple[str, bool, int]:
        try:
            with IPRoute() as ipr:
                ipr.link("dump")
            pyroute2 = "worked"
        except RuntimeError as exc:
            pyroute2 = str(exc)
        with Netlink() as nl:
            return pyroute2, nl.link_is_up("lo"), nl.link_index("lo")

    msg, up, index = asyncio.run(main())
    assert "already running" in msg
    assert up is True  # lo: IFF_UP | IFF_RUNNING
    assert index == socket.if_nametoindex("lo")


def test_facts_agree_with_ip_in_this_namespace() -> None:
    links = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, check=True).stdout)
    with Netlink() as nl:
        assert set(nl.link_names().values()) == {link["ifname"] for link in links}
        for link in links:
            name = link["ifname"]
            assert nl.link_index(name) == link["ifindex"]
            want = [ip_interface(f"{a['local']}/{a['prefixlen']}") for a in link.get("addr_info", [])]
            assert nl.list_addresses(name) == want
            if link.get("address"):
                assert nl.link_mac(name) == link["address"]
        assert nl.primary_address("lo", 4) is None  # 127.0.0.1 has host scope
        with pytest.raises(InterfaceNotFound, match="'pv-no-such0'"):
            nl.link_is_up("pv-no-such0")


# ------------------------------------------------------------------ requests on a fake AsyncIPRoute


class FakeIPR:
    """Answers ``link``/``addr`` calls from canned lists; records every call."""

    def __init__(self, answers: Iterable[Any]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def _answer(self, what: str, command: str, kw: dict[str, Any]) -> Any:
        self.calls.append((what, command, kw))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if answer == "hang":
            await asyncio.sleep(10)
        if command == "dump":

            async def gen() -> AsyncIterator[Any]:
                for msg in answer:
                    yield msg

            return gen()
        return answer

    async def link(self, command: str, **kw: Any) -> Any:
        return await self._answer("link", command, kw)

    async def addr(self, command: str, **kw: Any) -> Any:
        return await self._answer("addr", command, kw)

    def close(self) -> None:
        pass


def netlink_with(*answers: Any, timeout_s: float = 2.0) -> tuple[Netlink, FakeIPR]:
    nl = Netlink(timeout_s=timeout_s)
    nl._req.close()
    fake = FakeIPR(answers)
    nl._req = _Requests(fake)
    return nl, fake


def test_link_queries_and_errors() -> None:
    nl, fake = netlink_with(
        [link_msg(4, "eth0", UP, mac="02:00:00:00:00:09")],
        NetlinkError(errno.ENODEV, "No such device"),
        NetlinkError(errno.EPERM, "Operation not permitted"),
        [link_msg(5, "tun0", UP, mac=None)],
        [link_msg(4, "eth0", ADMIN_UP_NO_CARRIER)],
    )
    with nl:
        assert nl.link_mac("eth0") == "02:00:00:00:00:09"
        with pytest.raises(InterfaceNotFound, match="'nope0'"):
            nl.link_is_up("nope0")
        with pytest.raises(NetlinkOperationError, match="link get 'eth0': Operation not permitted") as exc:
            nl.link_index("eth0")
        assert exc.value.errno == errno.EPERM
        with pytest.raises(NetlinkOperationError, match="no hardware address"):
            nl.link_mac("tun0")
        assert nl.link_is_up("eth0") is False  # admin up without carrier is not usable
        with pytest.raises(InterfaceNotFound):
            nl.link_is_up("a-name-longer-than-15")  # cannot exist: no request sent
    assert [c[2] for c in fake.calls] == [{"ifname": n} for n in ("eth0", "nope0", "eth0", "tun0", "eth0")]


def test_primary_address_filters_the_link_and_asks_one_family() -> None:
    dump = [
        addr_msg(1, "127.0.0.1/8", local="127.0.0.1", scope=254),
        addr_msg(4, "192.0.2.9/24", local="192.0.2.9"),
        addr_msg(4, "192.0.2.1/24", local="192.0.2.1"),
    ]
    nl, fake = netlink_with([link_msg(4, "eth0", UP)], dump, [link_msg(4, "eth0", UP)], dump)
    with nl:
        assert nl.primary_address("eth0", 4, exclude=[ip_interface("192.0.2.9/24")]) == ip_address(
            "192.0.2.1"
        )
        assert fake.calls[1] == ("addr", "dump", {"family": AF4})
        assert nl.list_addresses("eth0") == [ip_interface("192.0.2.9/24"), ip_interface("192.0.2.1/24")]
        assert fake.calls[3] == ("addr", "dump", {})


def test_interrupted_dump_is_repeated() -> None:
    nl, fake = netlink_with(
        [link_msg(1, "lo", UP, hflags=MULTI | DUMP_INTR), link_msg(2, "eth0", UP, hflags=MULTI)],
        [link_msg(1, "lo", UP, hflags=MULTI)],
    )
    with nl:
        assert nl.link_names() == {1: "lo"}
    assert len(fake.calls) == 2


def test_timeout_is_reported() -> None:
    nl, _fake = netlink_with("hang", timeout_s=0.2)
    with nl, pytest.raises(TimeoutError, match=r"longer than 0\.2s"):
        nl.link_is_up("eth0")


class FakeKernelSocket:
    """The kernel end of ``_AddressSocket``: records each request, answers the next queued errno."""

    def __init__(self, codes: Iterable[int]) -> None:
        self.codes = list(codes)
        self.sent: list[ifaddrmsg] = []
        self.last = b""

    def send(self, data: bytes) -> int:
        self.last = data
        msg = ifaddrmsg(data)
        msg.decode()
        self.sent.append(msg)
        return len(data)

    def recv(self, _size: int) -> bytes:
        """An NLMSG_ERROR as the kernel sends it: header, -errno, then the request (an ack: its header)."""
        code = self.codes.pop(0)
        echoed = self.last if code else self.last[:16]
        return struct.pack("=LHHLLi", 20 + len(echoed), NLMSG_ERROR, 0, 0, 0, -code) + echoed

    def settimeout(self, _t: float) -> None:
        pass


def netlink_with_kernel(*codes: int) -> tuple[Netlink, FakeKernelSocket]:
    nl = Netlink()
    nl._addrs.close()
    kernel = FakeKernelSocket(codes)
    nl._addrs._sock = kernel  # type: ignore[assignment]
    return nl, kernel


def test_vip_add_remove_requests_and_errors() -> None:
    nl, kernel = netlink_with_kernel(0, 0, errno.EEXIST, errno.EPERM, 0, errno.EADDRNOTAVAIL, errno.EPERM)
    lo = socket.if_nametoindex("lo")
    v4, v6 = ip_interface("192.0.2.10/24"), ip_interface("2001:db8::10/64")
    with nl:
        assert nl.add("lo", v4, label="lo:vip") is True
        assert nl.add("lo", "2001:db8::10/64", label="ignored") is True
        assert nl.add("lo", v4) is False  # already there
        with pytest.raises(NetlinkOperationError, match=r"to 'lo': Operation not permitted"):
            nl.add("lo", v4)
        with pytest.raises(OSError, match=r"cannot add 192\.0\.2\.10/24 to 'pv-nope0': interface not found"):
            nl.add("pv-nope0", v4)  # no request: the name resolves to nothing
        assert nl.remove("lo", v4) is True
        assert nl.remove("lo", v4) is False  # not there
        assert nl.remove("pv-nope0", v4) is False  # gone with its interface
        with pytest.raises(NetlinkOperationError, match=r"cannot remove 2001:db8::10/64 from 'lo'") as exc:
            nl.remove("lo", v6)
        assert exc.value.errno == errno.EPERM
    assert len(kernel.sent) == 7 and not kernel.codes

    def seen(msg: ifaddrmsg) -> tuple[Any, ...]:
        create = msg["header"]["flags"] & (NLM_F_CREATE | NLM_F_EXCL) == NLM_F_CREATE | NLM_F_EXCL
        return (
            msg["header"]["type"],
            create,
            bool(msg["header"]["flags"] & NLM_F_ACK),
            msg["family"],
            msg["index"],
            msg["prefixlen"],
            msg["flags"],
            dict(msg["attrs"]),
        )

    v4_attrs = {"IFA_ADDRESS": "192.0.2.10", "IFA_LOCAL": "192.0.2.10"}
    assert seen(kernel.sent[0]) == (
        RTM_NEWADDR,
        True,
        True,
        AF4,
        lo,
        24,
        0,
        {**v4_attrs, "IFA_LABEL": "lo:vip"},
    )
    # IPv6: no label, usable at once (NODAD), no IFA_LOCAL
    assert seen(kernel.sent[1]) == (
        RTM_NEWADDR,
        True,
        True,
        AF6,
        lo,
        64,
        IFA_F_NODAD,
        {"IFA_ADDRESS": "2001:db8::10"},
    )
    assert seen(kernel.sent[4]) == (RTM_DELADDR, False, True, AF4, lo, 24, 0, v4_attrs)


def test_vip_requests_are_encoded_once() -> None:
    """A VIP's request bytes are built by pyroute2 once and reused (the hot path sends bytes)."""
    vip = ip_interface("192.0.2.77/32")
    first = _address_request(RTM_NEWADDR, 1, vip, None)
    assert _address_request(RTM_NEWADDR, 1, vip, None) is first
    assert _address_request(RTM_DELADDR, 1, vip, None) != first
    assert _address_request(RTM_NEWADDR, 2, vip, None) != first  # a re-created link has a new index


# ------------------------------------------------------------------ monitor translation


def test_monitor_translate_link_changes_only_and_filter() -> None:
    mon = NetlinkMonitor(["eth0"])
    assert mon.translate(link_msg(4, "eth0", UP)) == LinkEvent("eth0", 4, True)
    assert mon.translate(link_msg(4, "eth0", UP)) is None  # unchanged (e.g. an MTU change)
    assert mon.translate(link_msg(4, "eth0", ADMIN_UP_NO_CARRIER)) == LinkEvent("eth0", 4, False)
    assert mon.is_up("eth0") is False
    assert mon.translate(link_msg(5, "eth1", 0)) is None  # filtered, but tracked
    assert mon.is_up("eth1") is False
    assert mon.translate(link_msg(4, "eth0", 0, kind=DELLINK)) == LinkEvent("eth0", 4, False, deleted=True)
    assert mon.is_up("eth0") is None


def test_monitor_translate_addresses() -> None:
    mon = NetlinkMonitor()
    mon.translate(link_msg(4, "eth0", UP))
    added = mon.translate(addr_msg(4, "192.0.2.10/24", local="192.0.2.10"))
    assert added == AddressEvent("eth0", 4, ip_interface("192.0.2.10/24"), added=True)
    removed = mon.translate(addr_msg(4, "2001:db8::10/64", kind=DELADDR))
    assert removed == AddressEvent("eth0", 4, ip_interface("2001:db8::10/64"), added=False)
    unknown = mon.translate(addr_msg(9, "10.9.9.9/8", label="eth9"))
    assert unknown is not None and unknown.ifname == "eth9"
    filtered = NetlinkMonitor(["eth1"])
    filtered.translate(link_msg(4, "eth0", UP))
    assert filtered.translate(addr_msg(4, "192.0.2.1/24")) is None


# ------------------------------------------------------------------ overflow resync


def table(
    up: dict[int, bool], names: dict[int, str], addrs: dict[int, list[str]], flt: Any = None
) -> LinkTable:
    return LinkTable(flt, names, up, {i: {ip_interface(a) for a in al} for i, al in addrs.items()})


def test_resync_events_rebuild_lost_link_changes() -> None:
    old = table({1: True, 2: True, 3: False}, {1: "lo", 2: "eth0", 3: "eth1"}, {})
    new = table(
        {1: True, 2: False, 4: True}, {1: "lo", 2: "eth0", 4: "eth2"}, {}, frozenset({"eth0", "eth1", "eth2"})
    )
    assert resync_events(old, new) == [
        LinkEvent("eth0", 2, False),
        LinkEvent("eth2", 4, True),
        LinkEvent("eth1", 3, False, deleted=True),
    ]
    assert resync_events(old, table(new.up, new.names, {}, frozenset({"lo"}))) == []


def test_resync_events_replay_lost_address_changes_after_the_links() -> None:
    """The old monitors replayed link changes only: a VIP deleted during a storm went unnoticed."""
    old = table(
        {2: True, 3: True},
        {2: "eth0", 3: "eth1"},
        {2: ["192.0.2.1/24", "192.0.2.200/24", "fe80::1/64"], 3: ["198.51.100.1/24"]},
    )
    new = table({2: False}, {2: "eth0"}, {2: ["192.0.2.1/24", "192.0.2.201/24"]})
    assert resync_events(old, new) == [
        LinkEvent("eth0", 2, False),
        LinkEvent("eth1", 3, False, deleted=True),
        AddressEvent("eth0", 2, ip_interface("192.0.2.200/24"), added=False),
        AddressEvent("eth0", 2, ip_interface("fe80::1/64"), added=False),
        AddressEvent("eth0", 2, ip_interface("192.0.2.201/24"), added=True),
        AddressEvent("eth1", 3, ip_interface("198.51.100.1/24"), added=False),  # gone with its link
    ]
    eth1_only = table(new.up, new.names, {2: ["192.0.2.1/24"]}, frozenset({"eth1"}))
    assert resync_events(old, eth1_only) == [
        LinkEvent("eth1", 3, False, deleted=True),
        AddressEvent("eth1", 3, ip_interface("198.51.100.1/24"), added=False),
    ]


def test_link_table_follows_address_events_so_a_resync_replays_only_the_lost_ones() -> None:
    links = LinkTable.watching(None)
    links.seed(2, "eth0", True)
    links.seed_address(2, ip_interface("192.0.2.1/24"))
    links.address(2, None, ip_interface("192.0.2.200/24"), added=True)  # seen: no replay
    links.address(2, None, ip_interface("192.0.2.1/24"), added=False)  # seen: no replay
    old = links.forget()
    assert (links.names, links.up, links.addrs) == ({}, {}, {})
    links.seed(2, "eth0", True)  # the fresh dump: .200 was deleted meanwhile, unseen
    assert resync_events(old, links) == [AddressEvent("eth0", 2, ip_interface("192.0.2.200/24"), added=False)]


class FakeMonitorSocket:
    """``get()`` yields one batch per call; an exception in the script is raised instead."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.closed = False

    async def get(self) -> AsyncIterator[Any]:
        if not self.script:
            await asyncio.Event().wait()  # nothing more: block like a quiet socket
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        for msg in item:
            yield msg

    def close(self) -> None:
        self.closed = True


class ScriptedMonitor(NetlinkMonitor):
    """A monitor whose kernel is a list of (socket script, link dump, address dump) per open."""

    def __init__(self, opens: list[tuple[list[Any], list[ifinfmsg], list[ifaddrmsg]]], **kw: Any) -> None:
        super().__init__(**kw)
        self.opens = opens
        self.sockets: list[FakeMonitorSocket] = []

    async def _open(self) -> None:
        script, links, addrs = self.opens.pop(0)
        self._ipr = FakeMonitorSocket(script)
        self.sockets.append(self._ipr)
        for msg in links:
            self._links.seed(
                int(msg["index"]), str(msg.get_attr("IFLA_IFNAME")), bool(msg["flags"] & UP == UP)
            )
        for a in addrs:
            info = addr_info(a)
            assert info is not None
            self._links.seed_address(info.ifindex, info.address)


def test_monitor_resyncs_after_enobufs_and_keeps_reading() -> None:
    vip = "192.0.2.200/24"
    opens = [
        (  # first socket: one event, then the overflow
            [[addr_msg(2, "192.0.2.201/24")], OSError(errno.ENOBUFS, "No buffer space available")],
            [link_msg(2, "eth0", UP)],
            [addr_msg(2, "192.0.2.1/24"), addr_msg(2, vip)],
        ),
        (  # the fresh dump: the VIP was deleted and the link went down while events were lost
            [[link_msg(2, "eth0", UP)]],
            [link_msg(2, "eth0", ADMIN_UP_NO_CARRIER)],
            [addr_msg(2, "192.0.2.1/24"), addr_msg(2, "192.0.2.201/24")],
        ),
    ]

    async def main() -> tuple[list[Any], ScriptedMonitor]:
        mon = ScriptedMonitor(opens, ifnames=["eth0"])
        got: list[Any] = []
        agen = mon.events()
        for _ in range(4):
            got.append(await asyncio.wait_for(agen.__anext__(), 2))
        await agen.aclose()
        mon.close()
        return got, mon

    got, mon = asyncio.run(main())
    assert got == [
        AddressEvent("eth0", 2, ip_interface("192.0.2.201/24"), added=True),
        LinkEvent("eth0", 2, False),  # lost: rebuilt from the dump
        AddressEvent("eth0", 2, ip_interface(vip), added=False),  # lost: rebuilt from the dump
        LinkEvent("eth0", 2, True),  # the new socket delivers again
    ]
    assert mon.resyncs == 1
    assert [s.closed for s in mon.sockets] == [True, True]


def test_closed_monitor_stops_without_resync() -> None:
    async def main() -> tuple[list[Any], int]:
        mon = ScriptedMonitor([([OSError(errno.EBADF, "closed")], [], [])])
        await mon.start()
        agen = mon.events()
        mon._closed = True  # close() raced the read: the error is the close, not an overflow
        return [ev async for ev in agen], mon.resyncs

    assert asyncio.run(main()) == ([], 0)
