"""Adverts leave with IPv4 TOS / IPv6 Traffic Class 0xc0 (network control), like keepalived and FRR.

Issue 14 item 8: QoS on a congested link drops best-effort (TOS 0) traffic
first; VRRP adverts must not be among it.  A VrrpSocket in namespace ``a``
sends to the group and unicast; an AF_PACKET capture on the veth peer in
namespace ``b`` reads the byte off the wire.  Namespaces: netns-tests/_ns.py.
"""

from __future__ import annotations

import json
import os

import pytest
from _ns import veth_pair

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.timeout(60),
]

CAPTURE = """
import json, socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(({ifname!r}, 0))
s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + 5
seen = 0
while time.monotonic() < end and seen < {count}:
    try:
        frame = s.recv(65535)
    except socket.timeout:
        continue
    ethertype = int.from_bytes(frame[12:14], "big")
    ip = frame[14:]
    if ethertype == 0x0800 and ip[9] == 112:
        seen += 1
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
        print(json.dumps(dict(family=4, tos=ip[1], ttl=ip[8], dst=dst)))
    elif ethertype == 0x86DD and ip[6] == 112:
        seen += 1
        tclass = ((ip[0] & 0x0F) << 4) | (ip[1] >> 4)
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        print(json.dumps(dict(family=6, tos=tclass, ttl=ip[7], dst=dst)))
"""

SENDER = """
import asyncio
from ipaddress import ip_address
from pyvrrp.adapters.vrrp_socket import VrrpSocket
from pyvrrp.proto.packet import encode, Advertisement
async def main():
    s = await VrrpSocket({ifname!r}, {family}, src={src!r}, unicast_peers={peers!r}).open()
    src = ip_address({src!r})
    adv = Advertisement(version=3, vrid=51, priority=100, addresses=(ip_address({vip!r}),), interval_cs=100)
    for dst in s.destinations():
        s.send(encode(adv, src=src, dst=dst), dst, src=src)
    s.close()
asyncio.run(main())
"""


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("mode", ["multicast", "unicast"])
def test_adverts_leave_with_network_control_tos(family: int, mode: str) -> None:
    with veth_pair() as p:
        src_a, src_b = (p.ip_a, p.ip_b) if family == 4 else (p.ll_a, p.ll_b)
        vip = "192.0.2.100" if family == 4 else "fe80::100"
        peers = (src_b,) if mode == "unicast" else ()
        cap = p.spawn("b", CAPTURE.format(ifname=p.if_b, count=1))
        try:
            line = cap.stdout.readline().strip() if cap.stdout else ""
            assert line == "ready", line
            p.run("a", SENDER.format(ifname=p.if_a, family=family, src=src_a, peers=peers, vip=vip))
            out, err = cap.communicate(timeout=15)
        finally:
            if cap.poll() is None:
                cap.kill()
                cap.communicate(timeout=5)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert rows, f"no advert captured\n{err}"
        want_dst = src_b if mode == "unicast" else ("224.0.0.18" if family == 4 else "ff02::12")
        assert rows[0] == {"family": family, "tos": 0xC0, "ttl": 255, "dst": want_dst}, rows


def test_capture_helper_sees_tos_zero_from_a_plain_socket() -> None:
    """The capture really reads the TOS byte: a raw socket without the option shows 0."""
    with veth_pair() as p:
        cap = p.spawn("b", CAPTURE.format(ifname=p.if_b, count=1))
        plain = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, {p.if_a!r}.encode())\n"
            f"s.sendto(bytes(20), ({p.ip_b!r}, 0))\n"
        )
        try:
            assert cap.stdout is not None and cap.stdout.readline().strip() == "ready"
            p.run("a", plain)
            out, _err = cap.communicate(timeout=15)
        finally:
            if cap.poll() is None:
                cap.kill()
                cap.communicate(timeout=5)
        assert json.loads(out.splitlines()[0])["tos"] == 0
