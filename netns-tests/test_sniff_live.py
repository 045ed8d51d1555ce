"""``pyvrrp sniff -i IFACE``: live AF_PACKET capture inside a namespace pair (root only)."""

from __future__ import annotations

import json
import subprocess

from _ns import PYTHON, REPO, veth_pair

SENDER = """
import socket, time
from ipaddress import ip_address
from pyvrrp.proto.packet import Advertisement, encode
ifindex = socket.if_nametoindex({ifname!r})
v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
v4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
v4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton({ip_b!r}))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
adv4 = encode(Advertisement(3, 42, 120, (ip_address("192.0.2.100"),), 20), src=ip_address({ip_b!r}))
adv6 = encode(Advertisement(3, 42, 120, (ip_address("fe80::42"),), 20), src=ip_address({ll_b!r}))
for _ in range(100):  # until the sniffer has what it needs and the test stops us
    v4.sendto(adv4, ("224.0.0.18", 0))
    v6.sendto(adv6, ("ff02::12", 0, 0, ifindex))
    time.sleep(0.1)
"""


def test_live_sniff_sees_both_families() -> None:
    """PKT-01, PKT-02, PKT-07: a live capture decodes v3/IPv4 and v3/IPv6 adverts with pyvrrp's codec."""
    with veth_pair() as p:
        argv = ["sniff", "-i", p.if_a, "--json", "--count", "6", "--timeout", "20"]
        sniffer = subprocess.Popen(
            ["ip", "netns", "exec", p.a, PYTHON, "-m", "pyvrrp", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        code = SENDER.format(ifname=p.if_b, ip_b=p.ip_b, ll_b=p.ll_b)
        sender = subprocess.Popen(["ip", "netns", "exec", p.b, PYTHON, "-c", code], cwd=REPO)
        try:
            out, err = sniffer.communicate(timeout=30)
        finally:
            sender.kill()
            sender.wait()
            if sniffer.poll() is None:
                sniffer.kill()
                sniffer.wait()
        assert sniffer.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        packets, summary = lines[:-1], lines[-1]
        assert len(packets) == 6
        assert all(pk["valid"] and pk["vrid"] == 42 and pk["ttl"] == 255 for pk in packets), packets
        by_src = {pk["src"]: pk for pk in packets}
        assert set(by_src) == {p.ip_b, p.ll_b}
        assert by_src[p.ip_b]["checksum_form"] == "v3-pseudo"
        assert by_src[p.ll_b]["checksum_form"] == "v3-ipv6"
        assert by_src[p.ll_b]["addresses"] == ["fe80::42"]
        assert by_src[p.ip_b]["interval_s"] == 0.2
        assert summary["type"] == "summary"
        assert {(g["family"], g["vrid"]) for g in summary["groups"]} == {(4, 42), (6, 42)}
        assert summary["conflicts"] == 0
