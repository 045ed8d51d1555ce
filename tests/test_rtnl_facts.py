"""The hand-written rtnetlink queries and monitor (pyvrrp.adapters.rtnl), without root.

Parsers are fed hand-built netlink messages; :class:`RtnlFacts` is checked
against a fake socket (errors, multi-part dumps, NLM_F_DUMP_INTR) and, read-only,
against pyroute2's answers in the current namespace.
"""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
import sys
from collections.abc import Iterable
from ipaddress import ip_address, ip_interface

import pytest

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink_events import AddressEvent, LinkEvent, NetlinkOperationError
from pyvrrp.adapters.rtnl import (
    IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    AddrInfo,
    Reply,
    RtnlFacts,
    RtnlMonitor,
    build_getaddr_dump,
    build_getlink_request,
    parse_addr,
    parse_link,
    select_primary,
    split_messages,
)

UP = 0x1 | 0x40  # IFF_UP | IFF_RUNNING
ADMIN_UP_NO_CARRIER = 0x1
AF4, AF6 = socket.AF_INET, socket.AF_INET6


# ------------------------------------------------------------------ hand-built messages


def rta(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def nlmsg(kind: int, body: bytes, *, seq: int = 1, flags: int = 0) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body
    return raw + b"\0" * (-len(raw) % 4)


def link_body(index: int, name: str, flags: int, mac: bytes | None = b"\x02\x00\x00\x00\x00\x01") -> bytes:
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, flags, 0)
    body += rta(3, name.encode() + b"\0")  # IFLA_IFNAME
    if mac is not None:
        body += rta(1, mac)  # IFLA_ADDRESS
    body += rta(4, struct.pack("=I", 1500))  # IFLA_MTU: ignored
    return body


def addr_body(
    index: int,
    family: int,
    address: str,
    prefixlen: int,
    *,
    local: str | None = None,
    flags: int = 0,
    ext_flags: int | None = None,
    scope: int = 0,
    label: str | None = None,
) -> bytes:
    body = struct.pack("=BBBBI", family, prefixlen, flags & 0xFF, scope, index)
    body += rta(1, ip_address(address).packed)  # IFA_ADDRESS
    if local is not None:
        body += rta(2, ip_address(local).packed)  # IFA_LOCAL
    if label is not None:
        body += rta(3, label.encode() + b"\0")  # IFA_LABEL
    if ext_flags is not None:
        body += rta(8, struct.pack("=I", ext_flags))  # IFA_FLAGS
    return body


def error(code: int, *, seq: int = 1) -> bytes:
    return nlmsg(NLMSG_ERROR, struct.pack("=i", -code) + b"\0" * 16, seq=seq)


def done(*, seq: int = 1) -> bytes:
    return nlmsg(NLMSG_DONE, struct.pack("=i", 0), seq=seq, flags=NLM_F_MULTI)


# ------------------------------------------------------------------ parsers


def test_parse_link_name_mac_and_up_state() -> None:
    info = parse_link(link_body(7, "eth0", UP, b"\xaa\xbb\xcc\x00\x11\x22"))
    assert (info.ifindex, info.ifname, info.mac, info.up) == (7, "eth0", "aa:bb:cc:00:11:22", True)
    assert parse_link(link_body(7, "eth0", ADMIN_UP_NO_CARRIER)).up is False  # no carrier
    assert parse_link(link_body(7, "eth0", 0x40)).up is False  # carrier, admin down
    assert parse_link(link_body(9, "wg0", UP, mac=None)).mac is None


def test_parse_link_masks_nested_flag_and_rejects_short_payload() -> None:
    body = struct.pack("=BxHiII", 0, 1, 3, UP, 0) + struct.pack("=HH", 8, 3 | 0x8000) + b"ab\0\0"
    assert parse_link(body).ifname == "ab"
    with pytest.raises(ValueError):
        parse_link(b"\0" * 8)


def test_parse_addr_prefers_ifa_local_over_peer_address() -> None:
    # "ip addr add 10.0.0.1/32 peer 10.0.0.2": IFA_ADDRESS is the peer, IFA_LOCAL ours
    info = parse_addr(addr_body(4, AF4, "10.0.0.2", 32, local="10.0.0.1", label="ppp0"))
    assert info.address == ip_interface("10.0.0.1/32")
    assert (info.ifindex, info.family, info.label) == (4, AF4, "ppp0")
    plain = parse_addr(addr_body(4, AF4, "192.0.2.1", 24, local="192.0.2.1"))
    assert plain.address == ip_interface("192.0.2.1/24")


def test_parse_addr_ipv6_and_extended_flags() -> None:
    info = parse_addr(addr_body(5, AF6, "fe80::1", 64, flags=0x80, ext_flags=0x80 | 0x100, scope=253))
    assert info.address == ip_interface("fe80::1/64")
    assert info.flags == 0x180  # IFA_FLAGS (32 bits) wins over the 8-bit ifa_flags
    assert info.scope == 253
    assert parse_addr(addr_body(5, AF6, "fe80::1", 64, flags=IFA_F_TENTATIVE)).flags == IFA_F_TENTATIVE


def test_parse_addr_unknown_family_has_no_address() -> None:
    body = struct.pack("=BBBBI", 44, 0, 0, 0, 1) + rta(1, b"\x01\x02")
    assert parse_addr(body).address is None


def test_split_messages_alignment_and_truncated_tail() -> None:
    one = nlmsg(RTM_NEWLINK, link_body(1, "lo", UP), flags=NLM_F_MULTI)
    two = nlmsg(RTM_NEWADDR, addr_body(1, AF4, "127.0.0.1", 8), seq=2)
    msgs = split_messages(one + two + b"\x40\0\0\0")  # a header fragment at the end is dropped
    assert [(k, f, s) for k, f, s, _ in msgs] == [(RTM_NEWLINK, NLM_F_MULTI, 1), (RTM_NEWADDR, 0, 2)]
    assert parse_link(msgs[0][3]).ifname == "lo"


# ------------------------------------------------------------------ replies


def test_reply_multipart_dump_until_done() -> None:
    reply = Reply(5)
    first = nlmsg(RTM_NEWLINK, link_body(1, "lo", UP), seq=5, flags=NLM_F_MULTI)
    second = nlmsg(RTM_NEWLINK, link_body(2, "eth0", 0), seq=5, flags=NLM_F_MULTI)
    stale = nlmsg(RTM_NEWLINK, link_body(3, "old0", UP), seq=4, flags=NLM_F_MULTI)
    assert reply.feed(stale + first) is False
    assert reply.feed(second) is False
    assert reply.feed(done(seq=5)) is True
    assert [parse_link(p).ifname for _k, p in reply.messages] == ["lo", "eth0"]
    assert not reply.interrupted


def test_reply_single_answer_ack_and_errors() -> None:
    single = Reply(1)
    assert single.feed(nlmsg(RTM_NEWLINK, link_body(2, "eth0", UP))) is True
    assert len(single.messages) == 1
    ack = Reply(1)
    assert ack.feed(error(0)) is True and ack.messages == []
    with pytest.raises(OSError) as exc:
        Reply(1).feed(error(errno.ENODEV))
    assert exc.value.errno == errno.ENODEV
    with pytest.raises(OSError) as exc:  # NLMSG_DONE may carry the dump's error
        Reply(1).feed(nlmsg(NLMSG_DONE, struct.pack("=i", -errno.EINVAL), flags=NLM_F_MULTI))
    assert exc.value.errno == errno.EINVAL
    assert Reply(1).feed(error(errno.ENODEV, seq=99)) is False  # not ours


def test_reply_flags_an_interrupted_dump() -> None:
    reply = Reply(1)
    reply.feed(nlmsg(RTM_NEWLINK, link_body(1, "lo", UP), flags=NLM_F_MULTI | NLM_F_DUMP_INTR) + done())
    assert reply.done and reply.interrupted


def test_requests_decode_in_pyroute2() -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    by_name = ifinfmsg(build_getlink_request(3, ifname="eth0"))
    by_name.decode()
    assert by_name["header"]["type"] == RTM_GETLINK
    assert by_name["header"]["flags"] == NLM_F_REQUEST
    assert by_name.get_attr("IFLA_IFNAME") == "eth0"
    dump = ifinfmsg(build_getlink_request(4))
    dump.decode()
    assert dump["header"]["flags"] == NLM_F_REQUEST | NLM_F_DUMP
    addrs = ifaddrmsg(build_getaddr_dump(5, AF6, 7))
    addrs.decode()
    assert addrs["header"]["type"] == RTM_GETADDR
    assert (addrs["family"], addrs["index"], addrs["header"]["sequence_number"]) == (AF6, 7, 5)


def test_parsers_read_pyroute2_encoded_messages() -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    link = ifinfmsg()
    link["index"], link["flags"] = 12, UP
    link["attrs"] = [("IFLA_IFNAME", "veth-x"), ("IFLA_ADDRESS", "0a:0b:0c:0d:0e:0f")]
    link.encode()
    info = parse_link(bytes(link.data)[16:])
    assert (info.ifindex, info.ifname, info.mac, info.up) == (12, "veth-x", "0a:0b:0c:0d:0e:0f", True)
    addr = ifaddrmsg()
    addr["family"], addr["prefixlen"], addr["index"], addr["scope"] = AF4, 24, 12, 0
    addr["attrs"] = [("IFA_LOCAL", "198.51.100.7"), ("IFA_ADDRESS", "198.51.100.7")]
    addr.encode()
    assert parse_addr(bytes(addr.data)[16:]).address == ip_interface("198.51.100.7/24")


# ------------------------------------------------------------------ primary address


def a4(address: str, *, flags: int = 0, scope: int = 0) -> AddrInfo:
    iface = ip_interface(address)
    return AddrInfo(1, AF4, iface.network.prefixlen, flags, scope, iface)


def a6(address: str, *, flags: int = 0, scope: int = 0) -> AddrInfo:
    iface = ip_interface(address)
    return AddrInfo(1, AF6, iface.network.prefixlen, flags, scope, iface)


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


# ------------------------------------------------------------------ RtnlFacts on a fake socket


class FakeSock:
    """Answers each request with canned datagrams; ``answers(seq)`` -> list of datagrams."""

    def __init__(self, answers: Iterable[object]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []
        self.queue: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        seq = struct.unpack_from("=IHHII", data)[3]
        make = self.answers.pop(0)
        self.queue.extend(make(seq))  # type: ignore[operator]
        return len(data)

    def recv(self, _size: int) -> bytes:
        if not self.queue:
            raise TimeoutError("timed out")
        return self.queue.pop(0)

    def close(self) -> None:
        pass


def facts_with(*answers: object) -> tuple[RtnlFacts, FakeSock]:
    facts = RtnlFacts()
    facts._sock.close()
    fake = FakeSock(answers)
    facts._sock = fake  # type: ignore[assignment]
    return facts, fake


def test_facts_link_queries_and_missing_interface() -> None:
    facts, fake = facts_with(
        lambda s: [nlmsg(RTM_NEWLINK, link_body(4, "eth0", UP, b"\x02\x00\x00\x00\x00\x09"), seq=s)],
        lambda s: [error(errno.ENODEV, seq=s)],
        lambda s: [error(errno.EPERM, seq=s)],
        lambda s: [nlmsg(RTM_NEWLINK, link_body(5, "tun0", UP, None), seq=s)],
    )
    assert facts.link_mac("eth0") == "02:00:00:00:00:09"
    with pytest.raises(InterfaceNotFound, match="'nope0'"):
        facts.link_is_up("nope0")
    with pytest.raises(NetlinkOperationError) as exc:
        facts.link_index("eth0")
    assert exc.value.errno == errno.EPERM
    with pytest.raises(NetlinkOperationError):
        facts.link_mac("tun0")  # no hardware address, as SyncNetlink
    with pytest.raises(InterfaceNotFound):
        facts.link_is_up("a-name-longer-than-15")  # cannot exist: no request sent
    assert len(fake.sent) == 4


def test_facts_primary_address_filters_index_and_uses_multipart_dump() -> None:
    def addr_dump(seq: int) -> list[bytes]:
        m = NLM_F_MULTI
        return [
            nlmsg(RTM_NEWADDR, addr_body(1, AF4, "127.0.0.1", 8, local="127.0.0.1"), seq=seq, flags=m)
            + nlmsg(RTM_NEWADDR, addr_body(4, AF4, "192.0.2.9", 24, local="192.0.2.9"), seq=seq, flags=m),
            nlmsg(RTM_NEWADDR, addr_body(4, AF4, "192.0.2.1", 24, local="192.0.2.1"), seq=seq, flags=m),
            done(seq=seq),
        ]

    facts, fake = facts_with(
        lambda s: [nlmsg(RTM_NEWLINK, link_body(4, "eth0", UP), seq=s)],
        addr_dump,
        lambda s: [nlmsg(RTM_NEWLINK, link_body(4, "eth0", UP), seq=s)],
        addr_dump,
    )
    assert facts.primary_address("eth0", 4, exclude=[ip_interface("192.0.2.9/24")]) == ip_address("192.0.2.1")
    assert struct.unpack_from("=BBBBI", fake.sent[1], 16)[0] == AF4  # the dump asked for IPv4 only
    assert facts.list_addresses("eth0") == [ip_interface("192.0.2.9/24"), ip_interface("192.0.2.1/24")]


def test_facts_dump_retried_when_interrupted() -> None:
    intr = NLM_F_MULTI | NLM_F_DUMP_INTR
    facts, fake = facts_with(
        lambda s: [nlmsg(RTM_NEWLINK, link_body(1, "lo", UP), seq=s, flags=intr), done(seq=s)],
        lambda s: [nlmsg(RTM_NEWLINK, link_body(1, "lo", UP), seq=s, flags=NLM_F_MULTI), done(seq=s)],
    )
    assert facts.link_names() == {1: "lo"}
    assert len(fake.sent) == 2


def test_facts_timeout_is_reported() -> None:
    facts, _fake = facts_with(lambda s: [])
    with pytest.raises(TimeoutError, match="longer than"):
        facts.link_is_up("eth0")


# ------------------------------------------------------------------ monitor translation


def test_monitor_translate_link_changes_only_and_filter() -> None:
    mon = RtnlMonitor(["eth0"])
    new = RTM_NEWLINK
    assert mon.translate(new, link_body(4, "eth0", UP)) == LinkEvent("eth0", 4, True)
    assert mon.translate(new, link_body(4, "eth0", UP)) is None  # unchanged (e.g. an MTU change)
    assert mon.translate(new, link_body(4, "eth0", ADMIN_UP_NO_CARRIER)) == LinkEvent("eth0", 4, False)
    assert mon.is_up("eth0") is False
    assert mon.translate(new, link_body(5, "eth1", 0)) is None  # filtered, but tracked
    assert mon.is_up("eth1") is False
    assert mon.translate(RTM_DELLINK, link_body(4, "eth0", 0)) == LinkEvent("eth0", 4, False, deleted=True)
    assert mon.is_up("eth0") is None


def test_monitor_translate_addresses() -> None:
    mon = RtnlMonitor()
    mon.translate(RTM_NEWLINK, link_body(4, "eth0", UP))
    added = mon.translate(RTM_NEWADDR, addr_body(4, AF4, "192.0.2.10", 24, local="192.0.2.10"))
    assert added == AddressEvent("eth0", 4, ip_interface("192.0.2.10/24"), added=True)
    removed = mon.translate(RTM_DELADDR, addr_body(4, AF6, "2001:db8::10", 64))
    assert removed == AddressEvent("eth0", 4, ip_interface("2001:db8::10/64"), added=False)
    unknown = mon.translate(RTM_NEWADDR, addr_body(9, AF4, "10.9.9.9", 8, label="eth9"))
    assert unknown is not None and unknown.ifname == "eth9"
    assert mon.translate(RTM_NEWADDR, b"\0\0") is None  # malformed: ignored
    filtered = RtnlMonitor(["eth1"])
    filtered.translate(RTM_NEWLINK, link_body(4, "eth0", UP))
    assert filtered.translate(RTM_NEWADDR, addr_body(4, AF4, "192.0.2.1", 24)) is None


# ------------------------------------------------------------------ the real kernel, read-only


def test_facts_agree_with_pyroute2_in_this_namespace() -> None:
    from pyvrrp.adapters.netlink import SyncNetlink

    oracle = SyncNetlink()
    try:
        with RtnlFacts() as facts:
            names = facts.link_names()
            assert "lo" in names.values()
            for name in names.values():
                assert facts.link_index(name) == oracle.link_index(name)
                assert facts.link_is_up(name) == oracle.link_is_up(name)
                assert facts.list_addresses(name) == oracle.list_addresses(name)
                for family in (4, 6):
                    assert facts.primary_address(name, family) == oracle.primary_address(name, family)
            assert facts.link_mac("lo") == oracle.link_mac("lo")
            with pytest.raises(InterfaceNotFound):
                facts.link_is_up("pv-no-such0")
    finally:
        oracle.close()


def test_daemon_start_path_does_not_import_pyroute2() -> None:
    code = (
        "import sys, pyvrrp.runtime.daemon, pyvrrp.adapters.rtnl, pyvrrp.adapters.netlink_events\n"
        "import pyvrrp.adapters.arp, pyvrrp.adapters.notify, pyvrrp.adapters.vrrp_socket\n"
        "print('pyroute2' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resync_events_rebuild_lost_link_changes() -> None:
    """Both monitors (rtnl and pyroute2) rebuild lost link events with this after an overflow."""
    from pyvrrp.adapters.netlink_events import LinkEvent, resync_events

    old_up, old_names = {1: True, 2: True, 3: False}, {1: "lo", 2: "eth0", 3: "eth1"}
    up, names = {1: True, 2: False, 4: True}, {1: "lo", 2: "eth0", 4: "eth2"}
    got = resync_events(old_up, old_names, up, names, lambda n: n != "lo")
    assert got == [
        LinkEvent("eth0", 2, False),
        LinkEvent("eth2", 4, True),
        LinkEvent("eth1", 3, False, deleted=True),
    ]
    assert resync_events(old_up, old_names, up, names, lambda n: n == "lo") == []
