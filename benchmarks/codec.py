"""Throughput of pyvrrp's VRRP codec beside scapy's, for the same packets.

Usage: ``python benchmarks/codec.py [--iterations N] [--quick]``

Prints packets per second for encode and decode of a VRRPv2, a VRRPv3/IPv4 and
a VRRPv3/IPv6 advert (two addresses each).  Notes on fairness, printed with the
figures:

* scapy needs the IP layer to compute a v3 checksum (pseudo-header), so its v3
  encode builds ``IP()/VRRPv3()`` and its v3 decode dissects the IP header too;
* scapy does not verify checksums when dissecting, pyvrrp's decode does (RX-05)
  and runs every shape check (version, type, length, count, interval, ...);
* pyvrrp memoises decoded address lists, so the "distinct lists" row decodes N
  different payloads (every lookup misses) to show the uncached cost.

``--quick`` runs one iteration of everything (a CI smoke test).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

from pyvrrp.proto.packet import Advertisement, decode, encode

V4_SRC, V4_DST = IPv4Address("192.168.233.10"), IPv4Address("224.0.0.18")
V6_SRC, V6_DST = IPv6Address("fe80::10"), IPv6Address("ff02::12")
V4_ADDRS = ("192.168.233.200", "192.168.233.201")
V6_ADDRS = ("fe80::200", "2001:db8::200")


def rate(fn: Callable[[], object], iterations: int) -> float:
    """Calls per second of ``fn`` over ``iterations`` calls."""
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    elapsed = time.perf_counter() - start
    return iterations / elapsed if elapsed > 0 else float("inf")


def cases() -> list[tuple[str, Advertisement, IPv4Address | IPv6Address, IPv4Address | IPv6Address]]:
    return [
        ("v2", Advertisement(2, 51, 150, tuple(map(ip_address, V4_ADDRS)), 100), V4_SRC, V4_DST),
        ("v3-v4", Advertisement(3, 51, 150, tuple(map(ip_address, V4_ADDRS)), 10), V4_SRC, V4_DST),
        ("v3-v6", Advertisement(3, 51, 150, tuple(map(ip_address, V6_ADDRS)), 10), V6_SRC, V6_DST),
    ]


def scapy_functions(name: str, wire_payload: bytes) -> tuple[Callable[[], object], Callable[[], object]]:
    """(encode, decode) closures doing the same work with scapy."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.vrrp import VRRP, VRRPv3

    if name == "v2":

        def enc() -> bytes:
            return bytes(VRRP(vrid=51, priority=150, adv=1, addrlist=list(V4_ADDRS)))

        def dec() -> object:
            return VRRP(wire_payload)

        return enc, dec
    if name == "v3-v4":
        ip_wire = bytes(IP(src=str(V4_SRC), dst=str(V4_DST), ttl=255, proto=112) / wire_payload)

        def enc() -> bytes:
            pkt = IP(src=str(V4_SRC), dst=str(V4_DST), ttl=255)
            return bytes(pkt / VRRPv3(vrid=51, priority=150, adv=10, addrlist=list(V4_ADDRS)))

        def dec() -> object:
            return IP(ip_wire)

        return enc, dec
    ip6_wire = bytes(IPv6(src=str(V6_SRC), dst=str(V6_DST), hlim=255, nh=112) / wire_payload)

    def enc6() -> bytes:
        pkt = IPv6(src=str(V6_SRC), dst=str(V6_DST), hlim=255)
        return bytes(pkt / VRRPv3(vrid=51, priority=150, adv=10, addrlist=list(V6_ADDRS)))

    def dec6() -> object:
        return IPv6(ip6_wire)

    return enc6, dec6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000, help="calls per figure (default 20000)")
    parser.add_argument("--quick", action="store_true", help="one iteration of everything (CI smoke test)")
    args = parser.parse_args(argv)
    n = 1 if args.quick else max(1, args.iterations)
    n_scapy = n if args.quick else max(1, n // 10)  # scapy is ~10-50x slower; keep the run short

    print(f"VRRP codec throughput, packets/s (pyvrrp: {n} calls per figure, scapy: {n_scapy})")
    print(f"{'packet':<8} {'op':<7} {'pyvrrp':>12} {'scapy':>12} {'ratio':>8}")
    for name, advert, src, dst in cases():
        payload = encode(advert, src=src, dst=dst)
        decoded = decode(payload, src=src, dst=dst)
        if not isinstance(decoded, Advertisement):
            raise SystemExit(f"{name}: pyvrrp cannot decode its own packet: {decoded}")
        scapy_enc, scapy_dec = scapy_functions(name, payload)
        ours_enc = rate(lambda a=advert, s=src, d=dst: encode(a, src=s, dst=d), n)
        ours_dec = rate(lambda p=payload, s=src, d=dst: decode(p, src=s, dst=d), n)
        theirs_enc = rate(scapy_enc, n_scapy)
        theirs_dec = rate(scapy_dec, n_scapy)
        for op, ours, theirs in (("encode", ours_enc, theirs_enc), ("decode", ours_dec, theirs_dec)):
            print(f"{name:<8} {op:<7} {ours:>12,.0f} {theirs:>12,.0f} {ours / theirs:>7.1f}x")

    # Cache misses: N distinct v2 payloads (a flood of valid adverts with varying address lists).
    distinct = [
        encode(Advertisement(2, 51, 150, (IPv4Address(0x0A000000 + i), IPv4Address(0x0B000000 + i)), 100))
        for i in range(min(n, 5000))
    ]
    start = time.perf_counter()
    for i in range(n):
        decode(distinct[i % len(distinct)], src=V4_SRC, dst=V4_DST)
    elapsed = time.perf_counter() - start
    print(f"{'v2':<8} {'decode':<7} {n / elapsed if elapsed else float('inf'):>12,.0f} {'-':>12} {'-':>8}"
          "  (distinct address lists: address-cache misses)")  # fmt: skip
    corrupt = bytearray(distinct[0])
    corrupt[6] ^= 0xFF
    bad = bytes(corrupt)
    drop_rate = rate(lambda: decode(bad, src=V4_SRC, dst=V4_DST), n)
    print(f"{'v2':<8} {'drop':<7} {drop_rate:>12,.0f} {'-':>12} {'-':>8}  (bad checksum, RX-05)")
    print("scapy v3 figures include its IP/IPv6 header (needed for the checksum); scapy's decode")
    print("verifies no checksum, pyvrrp's runs all shape checks (RX-03/04/05/11, PKT-08).")


if __name__ == "__main__":
    main()
