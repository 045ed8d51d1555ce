"""``pyvrrp sniff --read``: link/IP parsing, per-packet output, and the conflict summary.

Captures are generated with scapy in tmp_path; the CLI runs through typer's CliRunner.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Packet, Padding, Raw
from scapy.utils import PcapNgWriter, wrpcap
from typer.testing import CliRunner

from pyvrrp.cli.app import app
from pyvrrp.sniff import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    Analyzer,
    ip_from_frame,
    parse_ip,
    read_pcap,
    records,
)

runner = CliRunner()
T0 = 1_795_734_955.0  # a capture time like KEEPALIVED-BASELINE.md's


VIP = ("192.168.233.200",)


def eth(ethertype: int = 0x0800) -> Packet:
    """Ethernet with explicit MACs: scapy must never ARP for a destination from this host."""
    return Ether(src="02:00:00:00:00:10", dst="01:00:5e:00:00:12", type=ethertype)


def v2(src: str, prio: int, *, t: float, vrid: int = 51, adv: int = 1, ttl: int = 255, **kw: Any) -> Packet:
    kw.setdefault("addrlist", list(VIP))
    pkt = eth() / IP(src=src, dst="224.0.0.18", ttl=ttl) / VRRP(vrid=vrid, priority=prio, adv=adv, **kw)
    pkt.time = t
    return pkt


def v3(src: str, prio: int, *, t: float, vrid: int = 51, adv: int = 100, ttl: int = 255) -> Packet:
    pkt = (
        eth()
        / IP(src=src, dst="224.0.0.18", ttl=ttl)
        / VRRPv3(vrid=vrid, priority=prio, adv=adv, addrlist=VIP)
    )
    pkt.time = t
    return pkt


def pcap(tmp_path: Path, packets: list[Packet], name: str = "cap.pcap") -> str:
    path = tmp_path / name
    wrpcap(str(path), packets)
    return str(path)


def run(*args: str) -> Any:
    return runner.invoke(app, ["sniff", *args])


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def summary_of(packets: list[Packet], tmp_path: Path) -> dict[str, Any]:
    result = run("--read", pcap(tmp_path, packets), "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.output)[-1]
    assert summary["type"] == "summary"
    return summary


def kinds(summary: dict[str, Any], vrid: int = 51, family: int = 4) -> list[str]:
    group = next(g for g in summary["groups"] if g["vrid"] == vrid and g["family"] == family)
    return [c["kind"] for c in group["conflicts"]]


# ------------------------------------------------------------------ link and IP layers


def test_ip_from_frame_link_types() -> None:
    """PKT-01: Ethernet, 802.1Q, Linux cooked (SLL) and raw-IP frames all yield the IP packet."""
    ip = bytes(IP(src="10.0.0.1", dst="224.0.0.18") / VRRPv3(addrlist=["10.0.0.9"]))
    assert ip_from_frame(bytes(eth() / Raw(ip)), LINKTYPE_ETHERNET) == ip
    assert ip_from_frame(bytes(eth(0x8100) / Dot1Q(vlan=5, type=0x0800) / Raw(ip)), LINKTYPE_ETHERNET) == ip
    assert ip_from_frame(bytes(CookedLinux(proto=0x0800) / Raw(ip)), LINKTYPE_LINUX_SLL) == ip
    assert ip_from_frame(ip, LINKTYPE_RAW) == ip
    arp = bytes(eth(0x0806)) + bytes(28)
    assert ip_from_frame(arp, LINKTYPE_ETHERNET) is None
    assert ip_from_frame(b"\x01", LINKTYPE_ETHERNET) is None
    assert ip_from_frame(ip, 9999) is None


def test_parse_ip_cuts_ethernet_padding() -> None:
    """RX-04: the VRRP payload is cut to the IP total length, so Ethernet padding never reaches decode."""
    frame = bytes(
        eth() / IP(src="10.0.0.1", dst="224.0.0.18") / VRRPv3(addrlist=["10.0.0.9"]) / Padding(b"\0" * 14)
    )
    ip = parse_ip(ip_from_frame(frame, LINKTYPE_ETHERNET) or b"")
    assert ip is not None
    assert len(ip.payload) == 12
    assert (str(ip.src), str(ip.dst), ip.protocol) == ("10.0.0.1", "224.0.0.18", 112)


def test_parse_ip_rejects_fragments_and_truncation() -> None:
    """Fragments and truncated IP headers are skipped, never decoded as VRRP."""
    whole = bytes(IP(src="10.0.0.1", dst="224.0.0.18") / VRRPv3(addrlist=["10.0.0.9"]))
    assert parse_ip(whole) is not None
    assert (
        parse_ip(bytes(IP(src="10.0.0.1", dst="224.0.0.18", flags="MF") / VRRPv3(addrlist=["10.0.0.9"])))
        is None
    )
    assert parse_ip(whole[:19]) is None
    assert parse_ip(whole[:25]) is None  # total length says 32 bytes
    assert parse_ip(b"") is None
    assert parse_ip(b"\x50" + bytes(40)) is None
    six = bytes(IPv6(src="fe80::1", dst="ff02::12", hlim=7) / VRRPv3(addrlist=["fe80::9"]))
    parsed = parse_ip(six)
    assert parsed is not None
    assert (parsed.ttl, parsed.protocol, len(parsed.payload)) == (7, 112, 24)
    assert parse_ip(six[:50]) is None


def test_read_pcap_stdlib_both_byte_orders(tmp_path: Path) -> None:
    """The stdlib reader handles little- and big-endian classic pcap with µs and ns timestamps."""
    frame = bytes(eth() / IP(src="10.0.0.1", dst="224.0.0.18") / VRRPv3(addrlist=["10.0.0.9"]))
    # little-endian microsecond pcap, big-endian nanosecond pcap
    for order, magic, frac in (("<", 0xA1B2C3D4, 250_000), (">", 0xA1B23C4D, 250_000_000)):
        head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
        rec = struct.pack(order + "IIII", 100, frac, len(frame), len(frame)) + frame
        path = tmp_path / f"{order == '<'}.pcap"
        path.write_bytes(head + rec + rec[:10])  # plus a torn last record
        got = list(read_pcap(path))
        assert got == [(pytest.approx(100.25), 1, frame)]


# ------------------------------------------------------------------ per-packet output


def test_text_lines_and_summary(tmp_path: Path) -> None:
    """One line per VRRP packet (non-VRRP ignored), decoded by pyvrrp's codec, then a summary."""
    packets = [
        v2("192.168.233.10", 150, t=T0),
        eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(),
        v3("192.168.233.10", 150, t=T0 + 1, vrid=52, adv=10),
    ]
    result = run("--read", pcap(tmp_path, packets))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "192.168.233.10 > 224.0.0.18 ttl 255 VRRPv2 vrid 51 prio 150 int 1s addrs 192.168.233.200" in lines[0]
    )
    assert lines[0].endswith("auth none [v2]")
    assert "VRRPv3 vrid 52 prio 150 int 0.1s" in lines[1]
    assert lines[1].endswith("[v3-pseudo]")
    assert lines[2].startswith("--- 2 VRRP packets, 2 valid, 0 invalid")
    assert "IPv4 VRID 51:" in lines
    assert "  no conflicts" in lines


def test_json_lines_fields(tmp_path: Path) -> None:
    """--json: one object per packet with the documented keys, valid and invalid alike."""
    bad = (
        eth()
        / IP(src="192.168.233.11", dst="224.0.0.18")
        / VRRP(vrid=51, chksum=0x1234, addrlist=["1.2.3.4"])
    )
    bad.time = T0 + 1
    six = eth(0x86DD) / IPv6(src="fe80::10", dst="ff02::12", hlim=255)
    six /= VRRPv3(vrid=9, priority=200, adv=50, addrlist=["fe80::1", "2001:db8::1"])
    six.time = T0 + 2
    result = run("--read", pcap(tmp_path, [v2("192.168.233.10", 150, t=T0), bad, six]), "--json")
    assert result.exit_code == 0, result.output
    first, second, third, summary = json_lines(result.output)
    required = {
        "src",
        "dst",
        "ttl",
        "version",
        "vrid",
        "priority",
        "addresses",
        "interval_s",
        "valid",
        "reason",
        "time",
    }
    for obj in (first, second, third):
        assert required <= obj.keys()
    assert first == first | {
        "src": "192.168.233.10", "dst": "224.0.0.18", "ttl": 255, "version": 2, "vrid": 51, "priority": 150,
        "addresses": ["192.168.233.200"], "interval_s": 1.0, "valid": True, "reason": None, "time": T0,
        "checksum_form": "v2", "auth_type": 0,
    }  # fmt: skip
    assert second["valid"] is False
    assert second["reason"] == "checksum"
    assert "0x1234" in second["detail"]
    assert (second["vrid"], second["priority"], second["version"]) == (51, 100, 2)
    assert third["addresses"] == ["fe80::1", "2001:db8::1"]
    assert (third["interval_s"], third["checksum_form"], third["src"]) == (0.5, "v3-ipv6", "fe80::10")
    assert summary["packets"] == 3
    assert summary["invalid_by_reason"] == {"checksum": 1}


def test_count_and_vrid_filter(tmp_path: Path) -> None:
    """--vrid keeps one VRID; --count stops after N VRRP packets."""
    packets = [v2("192.168.233.10", 150, t=T0 + i, vrid=51 + i % 2) for i in range(6)]
    path = pcap(tmp_path, packets)
    only = json_lines(run("--read", path, "--json", "--vrid", "52").output)
    assert [p["vrid"] for p in only[:-1]] == [52, 52, 52]
    two = json_lines(run("--read", path, "--json", "--count", "2", "--no-summary").output)
    assert len(two) == 2
    assert all(p["type"] == "packet" for p in two)


def test_pcapng_read_through_scapy(tmp_path: Path) -> None:
    """pcapng files (tcpdump/tshark default on some systems) are read through scapy."""
    path = tmp_path / "cap.pcapng"
    writer = PcapNgWriter(str(path))
    writer.write(v3("192.168.233.10", 150, t=T0))
    writer.close()
    lines = json_lines(run("--read", str(path), "--json").output)
    assert lines[0]["vrid"] == 51
    assert lines[0]["valid"] is True
    assert lines[0]["time"] == pytest.approx(T0)


def test_linux_cooked_capture(tmp_path: Path) -> None:
    """`tcpdump -i any` writes Linux cooked (SLL) frames."""
    pkt = (
        CookedLinux(proto=0x0800)
        / IP(src="10.0.0.1", dst="224.0.0.18", ttl=255)
        / VRRPv3(addrlist=["10.0.0.9"])
    )
    pkt.time = T0
    lines = json_lines(run("--read", pcap(tmp_path, [pkt]), "--json").output)
    assert lines[0]["src"] == "10.0.0.1"
    assert lines[0]["valid"] is True


# ------------------------------------------------------------------ usage errors


def test_usage_and_file_errors(tmp_path: Path) -> None:
    """Exit 2 without exactly one source; exit 1 for an unreadable or non-pcap file or a missing interface."""
    assert run().exit_code == 2
    assert run("--read", "x.pcap", "-i", "eth0").exit_code == 2
    missing = run("--read", str(tmp_path / "nope.pcap"))
    assert missing.exit_code == 1
    assert "cannot open" in missing.output
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert run("--read", str(junk)).exit_code == 1
    no_iface = run("-i", "pv-no-such-if0", "--timeout", "0.1")
    assert no_iface.exit_code == 1
    assert "no such interface" in no_iface.output


# ------------------------------------------------------------------ conflicts


def test_split_brain_two_masters_flagged(tmp_path: Path) -> None:
    """KEEPALIVED-BASELINE §5: both nodes MASTER while the link between them is cut."""
    packets = []
    for i in range(5):
        packets += [v2("192.168.233.10", 150, t=T0 + i), v2("192.168.233.11", 100, t=T0 + i + 0.3)]
    summary = summary_of(packets, tmp_path)
    assert kinds(summary) == ["two-masters"]
    conflict = summary["groups"][0]["conflicts"][0]
    assert conflict["sources"] == ["192.168.233.10", "192.168.233.11"]
    assert "prio 150" in conflict["detail"]
    assert "prio 100" in conflict["detail"]


def test_normal_failover_not_flagged(tmp_path: Path) -> None:
    """SM-09, TMR-03: master stops (kill -9), backup takes over after Master_Down_Interval: no conflict."""
    packets = [v2("192.168.233.10", 150, t=T0 + i) for i in range(4)]
    packets += [v2("192.168.233.11", 100, t=T0 + 3 + 3.61 + i) for i in range(4)]
    assert kinds(summary_of(packets, tmp_path)) == []


def test_sigterm_handover_and_preemption_not_flagged(tmp_path: Path) -> None:
    """SM-09: prio-0 advert then the backup advertises; later the old master preempts with one
    pair of crossing adverts (RFC 5798 §6.4.3).  Neither is split brain."""
    packets = [v2("192.168.233.10", 150, t=T0 + i) for i in range(3)]
    packets.append(v2("192.168.233.10", 0, t=T0 + 2.5))
    packets += [v2("192.168.233.11", 100, t=T0 + 3.1 + i) for i in range(5)]  # last at +7.1
    packets.append(v2("192.168.233.10", 150, t=T0 + 7.05))  # preempts; .11's +7.1 advert crossed it
    packets += [v2("192.168.233.10", 150, t=T0 + 8.05 + i) for i in range(3)]
    summary = summary_of(packets, tmp_path)
    assert kinds(summary) == []
    r10 = summary["groups"][0]["routers"][0]
    assert (r10["src"], r10["priority_zero"], r10["priorities"]) == ("192.168.233.10", 1, [0, 150])


def test_split_after_priority_zero_is_still_flagged(tmp_path: Path) -> None:
    """A router that said goodbye (prio 0) and came back while the other kept advertising is a split."""
    packets = [v2("192.168.233.10", 0, t=T0)]
    for i in range(4):
        packets += [v2("192.168.233.10", 150, t=T0 + 1 + i), v2("192.168.233.11", 100, t=T0 + 1.5 + i)]
    assert kinds(summary_of(packets, tmp_path)) == ["two-masters"]


def test_interval_address_ttl_version_owner_mismatches(tmp_path: Path) -> None:
    """RX-01, RX-02, RX-06, RX-08, RX-10: mismatches between the routers of one VRID are flagged."""
    packets = [
        v2("192.168.233.10", 255, t=T0, addrlist=["192.168.233.200", "192.168.233.201"]),
        v2("192.168.233.11", 255, t=T0 + 10, adv=2, addrlist=["192.168.233.202"], ttl=64),
        v3("192.168.233.12", 90, t=T0 + 20),
    ]
    summary = summary_of(packets, tmp_path)
    got = kinds(summary)
    assert got == ["version-mismatch", "interval-mismatch", "address-mismatch", "duplicate-owner", "ttl"]
    details = {c["kind"]: c["detail"] for c in summary["groups"][0]["conflicts"]}
    assert "192.168.233.11: 2s" in details["interval-mismatch"]
    assert "TTL/hop limit 64 (1 packets)" in details["ttl"]


def test_address_order_and_auth_mismatch(tmp_path: Path) -> None:
    """PKT-10: same addresses in another order; RX-07: different v2 passwords."""
    packets = [
        v2("192.168.233.10", 150, t=T0, addrlist=["10.0.0.1", "10.0.0.2"], authtype=1, auth1=0x61626364),
        v2("192.168.233.11", 100, t=T0 + 10, addrlist=["10.0.0.2", "10.0.0.1"], authtype=1, auth1=0x61626365),
    ]
    summary = summary_of(packets, tmp_path)
    assert kinds(summary) == ["address-order", "auth-mismatch"]


def test_invalid_packets_counted_per_vrid(tmp_path: Path) -> None:
    """RX-03/05: invalid packets are listed with their reasons, also for a VRID with no valid advert."""
    bad_sum = eth() / IP(src="10.0.0.1", dst="224.0.0.18") / VRRP(vrid=51, chksum=1, addrlist=["1.2.3.4"])
    bad_type = eth() / IP(src="10.0.0.1", dst="224.0.0.18") / VRRPv3(type=2, vrid=77, addrlist=["1.2.3.4"])
    packets = [v2("192.168.233.10", 150, t=T0), bad_sum, bad_type]
    result = run("--read", pcap(tmp_path, packets))
    assert result.exit_code == 0, result.output
    assert "INVALID v3 vrid 77 prio 100: type: type 2" in result.output
    assert "CONFLICT invalid: packets dropped by the codec: checksum 1" in result.output
    assert "IPv4 VRID 77: only invalid: type 1" in result.output
    summary = summary_of(packets, tmp_path)
    assert summary["invalid_without_valid_group"] == {"4/77": {"type": 1}}
    assert summary["invalid"] == 2


def test_analyzer_direct() -> None:
    """The Analyzer works on records without the CLI (used by the lab harness)."""
    frames = [(T0 + i, LINKTYPE_ETHERNET, bytes(v2("192.168.233.10", 150, t=T0 + i))) for i in range(3)]
    analyzer = Analyzer()
    for rec in records(frames):
        analyzer.add(rec)
    assert analyzer.groups() == [(4, 51)]
    assert analyzer.conflicts(4, 51) == []
    assert analyzer.to_json()["valid"] == 3


def test_sniff_module_does_not_import_scapy() -> None:
    """scapy (about a second to import) loads only when a pcapng file is read."""
    import subprocess
    import sys

    code = "import sys, pyvrrp.sniff, pyvrrp.cli.sniff; print(sorted(m for m in sys.modules if 'scapy' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_multicast_advert_with_bad_ttl_is_invalid_per_packet(tmp_path: Path) -> None:
    """RX-01: a multicast advert with TTL/Hop Limit != 255 is valid: false, reason ttl; unicast is exempt."""
    low_ttl = v2("192.168.233.11", 100, t=T0, ttl=64)
    six = eth(0x86DD) / IPv6(src="fe80::11", dst="ff02::12", hlim=1)
    six /= VRRPv3(vrid=9, priority=100, adv=100, addrlist=["fe80::1"])
    six.time = T0 + 1
    unicast = eth() / IP(src="192.168.233.11", dst="192.168.233.10", ttl=64)
    unicast /= VRRP(vrid=51, priority=100, addrlist=["192.168.233.200"])
    unicast.time = T0 + 2
    good = v2("192.168.233.10", 150, t=T0 + 3)
    path = pcap(tmp_path, [low_ttl, six, unicast, good])
    lines = json_lines(run("--read", path, "--json").output)
    packets, summary = lines[:-1], lines[-1]
    assert [(p["valid"], p["reason"]) for p in packets] == [
        (False, "ttl"),
        (False, "ttl"),
        (True, None),
        (True, None),
    ]
    assert "64 != 255" in packets[0]["detail"] and "RX-01" in packets[0]["detail"]
    assert packets[0]["addresses"] == ["192.168.233.200"]  # still decoded
    assert summary["valid"] == 2 and summary["invalid"] == 2
    assert summary["invalid_by_reason"] == {"ttl": 2}
    conflicts = [c["kind"] for g in summary["groups"] for c in g["conflicts"]]
    assert "ttl" in conflicts
    text = run("--read", path).output.splitlines()
    assert "INVALID ttl: TTL/hop limit 64 != 255" in text[0]
    assert "INVALID" not in text[3]
