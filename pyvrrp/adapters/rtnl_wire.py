"""rtnetlink wire format and the blocking VIP add/remove (stdlib only).

Split from :mod:`pyvrrp.adapters.rtnl` so that ``pyvrrp.runtime.fast_start`` can
add and remove VIPs in the first milliseconds of ``pyvrrp run``, before asyncio
and structlog are imported.  :mod:`pyvrrp.adapters.rtnl` re-exports everything.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enums cost ~1 ms (fast-start path)
import errno
import os
import struct
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
IFNAMSIZ = 16
_NLA_TYPE_MASK = 0x3FFF  # strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
SO_RCVBUFFORCE = 33  # linux/asm-generic/socket.h; not exported by the socket module

SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_ERR = struct.Struct("=i")


def _attr(kind: int, data: bytes) -> bytes:
    raw = _RTATTR.pack(_RTATTR.size + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def build_addr_request(
    op: int,
    seq: int,
    index: int,
    address: IPv4Interface | IPv6Interface,
    *,
    label: str | None = None,
    scope: str | None = None,
) -> bytes:
    """Encode one RTM_NEWADDR / RTM_DELADDR request (pure; tested without root)."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    flags = NLM_F_REQUEST | NLM_F_ACK
    if op == RTM_NEWADDR:
        flags |= NLM_F_CREATE | NLM_F_EXCL
    ifa_flags = IFA_F_NODAD if address.version == 6 else 0
    body = _IFADDRMSG.pack(family, address.network.prefixlen, ifa_flags, SCOPES[scope or "global"], index)
    packed = address.ip.packed
    body += _attr(IFA_LOCAL, packed) if address.version == 4 else b""
    body += _attr(IFA_ADDRESS, packed)
    if label and address.version == 4 and op == RTM_NEWADDR:
        body += _attr(IFA_LABEL, label.encode() + b"\0")
    if address.version == 6 and op == RTM_NEWADDR:
        body += _attr(IFA_FLAGS, struct.pack("=I", IFA_F_NODAD))
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), op, flags, seq, 0) + body


class FastAddr:
    """Blocking VIP add/remove with one netlink round trip each (sub-millisecond)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sock.settimeout(2.0)
        self._seq = 0

    def _request(
        self, msg_op: int, ifname: str, address: IPv4Interface | IPv6Interface, **kw: str | None
    ) -> int:
        try:
            index = socket.if_nametoindex(ifname)
        except OSError:
            raise OSError(errno.ENODEV, f"interface {ifname!r} not found") from None
        self._seq += 1
        seq = self._seq
        self._sock.send(build_addr_request(msg_op, seq, index, address, **kw))
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, rseq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if kind == NLMSG_ERROR and rseq == seq:
                    return -int(_ERR.unpack_from(data, offset + _NLMSGHDR.size)[0])
                offset += max(length, _NLMSGHDR.size) + (-length % 4)

    def add(
        self,
        ifname: str,
        address: IPv4Interface | IPv6Interface | str,
        *,
        label: str | None = None,
        scope: str | None = None,
    ) -> bool:
        """Add ``address``; True if added, False if it was already there."""
        addr = ip_interface(address) if isinstance(address, str) else address
        code = self._request(RTM_NEWADDR, ifname, addr, label=label, scope=scope)
        if code == 0:
            return True
        if code == errno.EEXIST:
            return False
        raise OSError(code, f"cannot add {addr} to {ifname}: {os.strerror(code)}")

    def remove(self, ifname: str, address: IPv4Interface | IPv6Interface | str) -> bool:
        """Remove ``address``; True if removed, False if it was not there."""
        addr = ip_interface(address) if isinstance(address, str) else address
        code = self._request(RTM_DELADDR, ifname, addr)
        if code == 0:
            return True
        if code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
            return False
        raise OSError(code, f"cannot remove {addr} from {ifname}: {os.strerror(code)}")

    def close(self) -> None:
        self._sock.close()
