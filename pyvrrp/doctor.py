"""``pyvrrp doctor``: a preflight of what breaks VRRP on a real host, with a fix for each.

A config that check-config accepts can still fail on the machine it runs on: the daemon
lacks CAP_NET_RAW, the interface is down or has no address to send from, the firewall
drops IP protocol 112, the switch never delivers the peer's adverts, another cluster
uses the same VRID, the director's ARP sysctls leak VIPs.  keepalived users find these
one outage at a time; ``doctor`` looks for all of them before the first start.

Every check is a small pure function from what was read to a :class:`Check` (name,
status ok/warn/fail/skip, a one-line detail, a fix hint).  The reading is done by a
:class:`Probes` object whose members are plain callables (read a file, run a command,
look up a link, listen on the wire), so the unit tests pass fakes and the checks run
without root or a network.  :func:`run_checks` ties config, probes and checks together.

"unknown" is an answer: when doctor cannot tell (no nft, no permission), the check says
so with status ``skip`` rather than guessing ``ok``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any, Literal

from pyvrrp.proto.constants import IPPROTO_VRRP

Status = Literal["ok", "warn", "fail", "skip"]
IPAddress = IPv4Address | IPv6Address

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
IFF_UP = 0x1
IFF_MULTICAST = 0x1000


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What doctor needs to know about one interface."""

    name: str
    flags: int
    operstate: str  # "up", "down", "unknown" (dummy, lo), "lowerlayerdown"
    mtu: int
    addresses: tuple[IPAddress, ...] = ()

    @property
    def admin_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def multicast(self) -> bool:
        return bool(self.flags & IFF_MULTICAST)


@dataclass(frozen=True, slots=True)
class Heard:
    """One advert received while listening: who sent it, on which interface, decoded."""

    ifname: str
    src: IPAddress
    dst: IPAddress
    ttl: int | None
    payload: bytes
    time_s: float


# ------------------------------------------------------------------------ pure checks


def parse_capeff(status_text: str) -> int | None:
    """The effective capability mask from ``/proc/self/status``; None if absent."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return None
    return None


def check_capabilities(status_text: str | None) -> Check:
    """CAP_NET_RAW (raw VRRP socket) and CAP_NET_ADMIN (VIPs, routes, IPVS)."""
    mask = parse_capeff(status_text) if status_text is not None else None
    if mask is None:
        return Check("capabilities", "skip", "unknown: cannot read CapEff from /proc/self/status")
    missing = [
        name
        for bit, name in ((CAP_NET_RAW, "CAP_NET_RAW"), (CAP_NET_ADMIN, "CAP_NET_ADMIN"))
        if not mask >> bit & 1
    ]
    if missing:
        return Check(
            "capabilities",
            "fail",
            f"missing {', '.join(missing)} (CapEff {mask:#x}): no raw VRRP socket / no VIPs",
            "run as root (with sudo where it is installed), or grant them: "
            "systemd AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        )
    return Check("capabilities", "ok", "CAP_NET_RAW and CAP_NET_ADMIN present")


def check_interface(
    ifname: str,
    link: LinkInfo | None,
    *,
    family: int,
    sends: bool,
    multicast: bool,
    src: IPAddress | None = None,
    vips: Sequence[IPAddress] = (),
    link_checks: bool = True,
) -> list[Check]:
    """Exists, up, MTU, multicast flag and (for the VRRP interface) an address to send from.

    ``link_checks=False``: only the per-family part (source address, multicast), for an
    interface already reported once.
    """
    name = f"interface {ifname}"
    if link is None:
        if not link_checks:
            return []
        return [
            Check(
                name,
                "fail",
                f"{ifname!r} does not exist",
                f"fix the interface name in the config (see `ip -br link`), or create {ifname}",
            )
        ]
    out: list[Check] = []
    if not link_checks:
        pass
    elif not link.admin_up:
        out.append(Check(name, "fail", f"{ifname} is administratively down", f"ip link set {ifname} up"))
    elif link.operstate in ("down", "lowerlayerdown", "notpresent"):
        out.append(
            Check(
                name,
                "fail",
                f"{ifname} is up but has no carrier ({link.operstate})",
                "check the cable / switch port / the peer end of the veth or bond",
            )
        )
    else:
        out.append(Check(name, "ok", f"{ifname} is up ({link.operstate}), MTU {link.mtu}"))
    min_mtu = 1280 if family == 6 else 576
    if link_checks and link.mtu < min_mtu:
        out.append(
            Check(
                f"mtu {ifname}",
                "warn",
                f"MTU {link.mtu} is below the IPv{family} minimum {min_mtu}",
                f"ip link set {ifname} mtu 1500 (or what the network uses)",
            )
        )
    if not sends:
        return out
    if multicast and not link.multicast:
        out.append(
            Check(
                f"multicast {ifname}",
                "fail",
                f"{ifname} has no MULTICAST flag: adverts to the group are neither sent nor received",
                f"ip link set {ifname} multicast on (or use unicast_peer)",
            )
        )
    source = f"source {ifname}" + (" IPv6" if family == 6 else "")
    own = [a for a in link.addresses if a.version == family and a not in set(vips)]
    if family == 6:
        own = [a for a in own if a.is_link_local]
    if src is not None:
        if src in link.addresses:
            out.append(Check(source, "ok", f"sends from {src} (configured)"))
        else:
            out.append(
                Check(
                    source,
                    "fail",
                    f"configured source {src} is not on {ifname}",
                    f"ip addr add {src}/<prefix> dev {ifname}, or fix unicast_src_ip / mcast_src_ip",
                )
            )
    elif own:
        out.append(Check(source, "ok", f"sends from {own[0]}"))
    else:
        kind = "IPv6 link-local" if family == 6 else "IPv4"
        out.append(
            Check(
                source,
                "fail",
                f"{ifname} has no {kind} address other than a VIP to send from",
                f"give {ifname} its own {kind} address (the VIP moves, the source must not)",
            )
        )
    return out


# --- firewall: nftables JSON (``nft -j list ruleset``) or ``iptables-save``


def _expr_is_vrrp(expr: Any) -> bool:
    """Does one nft JSON match expression select IP protocol 112?"""
    if not isinstance(expr, dict) or "match" not in expr:
        return False
    m = expr["match"]
    left = m.get("left")
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    meta = left.get("meta", {}) if isinstance(left, dict) else {}
    selects_proto = payload.get("field") in ("protocol", "nexthdr") or meta.get("key") == "l4proto"
    if not selects_proto or m.get("op", "==") not in ("==", "in"):
        return False
    right = m.get("right")
    values = (
        right.get("set", []) if isinstance(right, dict) else right if isinstance(right, list) else [right]
    )
    return any(v in (IPPROTO_VRRP, "vrrp", str(IPPROTO_VRRP)) for v in values)


def _verdict(rule_exprs: list[Any]) -> str | None:
    for e in rule_exprs:
        if isinstance(e, dict):
            for key in ("accept", "drop", "reject"):
                if key in e:
                    return key
    return None


def check_nft(ruleset: dict[str, Any]) -> Check:
    """Protocol 112 in this host's nftables input hooks: an explicit verdict, else the policy."""
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[list[Any]]] = {}
    for item in ruleset.get("nftables", []):
        if "chain" in item:
            c = item["chain"]
            chains[(c.get("family", ""), c.get("table", ""), c.get("name", ""))] = c
        elif "rule" in item:
            r = item["rule"]
            key = (r.get("family", ""), r.get("table", ""), r.get("chain", ""))
            rules.setdefault(key, []).append(r.get("expr", []))
    inputs = [
        k for k, c in chains.items() if c.get("hook") == "input" and c.get("family") in ("ip", "ip6", "inet")
    ]
    if not inputs:
        return Check("firewall", "ok", "nftables: no input chain: protocol 112 is not filtered")
    # (certain, text): a rule dropping 112 or a catch-all drop is certain; a drop policy is
    # not (a rule doctor does not interpret, e.g. ``iifname eth0 accept``, may let it in).
    drops: list[tuple[bool, str]] = []
    for key in inputs:
        where = f"{key[0]} {key[1]} {key[2]}"
        for exprs in rules.get(key, []):
            verdict = _verdict(exprs)
            if any(_expr_is_vrrp(e) for e in exprs):
                if verdict == "accept":
                    break
                if verdict in ("drop", "reject"):
                    drops.append((True, f"{where}: a rule {verdict}s protocol 112"))
                    break
            elif verdict in ("drop", "reject") and not any(
                isinstance(e, dict) and "match" in e for e in exprs
            ):
                drops.append((True, f"{where}: a catch-all {verdict} before any rule accepting protocol 112"))
                break
        else:
            if chains[key].get("policy") == "drop":
                drops.append((False, f"{where}: policy drop and no rule accepting protocol 112"))
    if drops:
        return Check(
            "firewall",
            "fail" if any(certain for certain, _ in drops) else "warn",
            "nftables: " + "; ".join(text for _, text in drops),
            "nft add rule <family> <table> <input chain> ip protocol vrrp accept "
            "(and meta l4proto vrrp for IPv6), before any drop",
        )
    return Check("firewall", "ok", "nftables: protocol 112 accepted in every input chain")


def check_iptables(save_text: str) -> Check:
    """The same from ``iptables-save`` output (the filter table's INPUT chain)."""
    policy = "ACCEPT"
    table = ""
    for line in save_text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
        elif table == "filter" and line.startswith(":INPUT "):
            policy = line.split()[1]
        elif table == "filter" and line.startswith("-A INPUT "):
            words = line.split()
            proto = words[words.index("-p") + 1] if "-p" in words else None
            target = words[words.index("-j") + 1] if "-j" in words else None
            if proto in ("vrrp", str(IPPROTO_VRRP)) and target in ("ACCEPT", "DROP", "REJECT"):
                if target == "ACCEPT":
                    return Check("firewall", "ok", "iptables: INPUT accepts protocol 112")
                return Check(
                    "firewall",
                    "fail",
                    f"iptables: INPUT {target}s protocol 112",
                    "iptables -I INPUT -p vrrp -j ACCEPT",
                )
    if policy in ("DROP", "REJECT"):
        return Check(
            "firewall",
            "warn",
            f"iptables: INPUT policy {policy} and no rule for protocol 112",
            "iptables -I INPUT -p vrrp -j ACCEPT",
        )
    return Check("firewall", "ok", "iptables: protocol 112 not filtered in INPUT")


def check_firewall(nft_json: str | None, iptables_save: str | None) -> Check:
    """nftables when ``nft -j list ruleset`` answered, else iptables-save, else unknown."""
    if nft_json is not None:
        try:
            return check_nft(json.loads(nft_json))
        except (ValueError, AttributeError, TypeError) as exc:
            return Check("firewall", "skip", f"unknown: cannot parse `nft -j list ruleset`: {exc}")
    if iptables_save is not None:
        return check_iptables(iptables_save)
    return Check(
        "firewall",
        "skip",
        "unknown: neither nft nor iptables-save answered",
        "check by hand that IP protocol 112 reaches this host",
    )


# --- sysctls of a director


def check_sysctls(
    read: Callable[[str], str | None],
    vrrp_ifs: Sequence[str],
    *,
    vip_ifs: Sequence[str] = (),
    vip_families: Iterable[int] = (),
    unicast: bool = False,
) -> list[Check]:
    """rp_filter, arp_ignore, arp_announce and ip_nonlocal_bind as a director wants them.

    rp_filter on the VRRP interfaces, the ARP pair on the interfaces holding IPv4 VIPs
    (``vip_ifs``), ip_nonlocal_bind for each family a VIP has.  ``read(key)`` returns a
    sysctl by its dotted name, None when absent.  The kernel uses the max of ``all`` and
    the interface for the three per-interface keys.
    """

    def eff(key: str, ifname: str) -> int | None:
        vals = [read(f"net.ipv4.conf.{dev}.{key}") for dev in ("all", ifname)]
        nums = [int(v) for v in vals if v is not None and v.strip().lstrip("-").isdigit()]
        return max(nums) if nums else None

    out: list[Check] = []
    for ifname in vrrp_ifs:
        rp = eff("rp_filter", ifname)
        if rp is None:
            out.append(Check(f"rp_filter {ifname}", "skip", "unknown: sysctl not readable"))
        elif rp == 1 and unicast:
            out.append(
                Check(
                    f"rp_filter {ifname}",
                    "warn",
                    "strict reverse-path filter (1): unicast adverts from a peer routed via "
                    "another interface are dropped",
                    f"sysctl -w net.ipv4.conf.{ifname}.rp_filter=2 (loose) and all.rp_filter=2",
                )
            )
        else:
            out.append(Check(f"rp_filter {ifname}", "ok", f"rp_filter {rp}"))
    for ifname in vip_ifs:
        ai, aa = eff("arp_ignore", ifname), eff("arp_announce", ifname)
        if aa is None or ai is None:
            out.append(Check(f"arp {ifname}", "skip", "unknown: arp sysctls not readable"))
        elif aa < 2 or ai < 1:
            out.append(
                Check(
                    f"arp {ifname}",
                    "warn",
                    f"arp_ignore {ai}, arp_announce {aa}: this host may answer ARP for addresses "
                    f"of other interfaces and send ARP from a VIP (ARP flux)",
                    f"sysctl -w net.ipv4.conf.{ifname}.arp_ignore=1 net.ipv4.conf.{ifname}.arp_announce=2",
                )
            )
        else:
            out.append(Check(f"arp {ifname}", "ok", f"arp_ignore {ai}, arp_announce {aa}"))
    for family in sorted(set(vip_families)):
        key = f"net.ipv{family}.ip_nonlocal_bind"
        name = "ip_nonlocal_bind" + (" IPv6" if family == 6 else "")
        nl = read(key)
        if nl is None:
            out.append(Check(name, "skip", f"unknown: {key} not readable"))
        elif nl.strip() != "1":
            out.append(
                Check(
                    name,
                    "warn",
                    "0: a service bound to a VIP fails to start on the backup (the VIP is not here)",
                    f"sysctl -w {key}=1 (persist in /etc/sysctl.d/)",
                )
            )
        else:
            out.append(Check(name, "ok", "1: services can bind VIPs this node does not hold"))
    return out


def check_ipvs(available: bool | None, reason: str) -> Check:
    if available is None:
        return Check("ip_vs", "skip", f"unknown: {reason}")
    if available:
        return Check("ip_vs", "ok", "IPVS reachable over generic netlink")
    return Check(
        "ip_vs",
        "fail",
        f"{reason}: virtual_server entries will not be programmed",
        "modprobe ip_vs (persist in /etc/modules-load.d/), or a kernel with CONFIG_IP_VS",
    )


# --- what was heard on the wire


@dataclass(slots=True)
class _Seen:
    adverts: int = 0
    priorities: set[int] = field(default_factory=set)
    intervals_cs: set[int] = field(default_factory=set)
    addresses: set[tuple[str, ...]] = field(default_factory=set)
    versions: set[int] = field(default_factory=set)
    ttls: set[int] = field(default_factory=set)
    multicast: int = 0  # adverts sent to the group (the others came by unicast to this host)


@dataclass(frozen=True, slots=True)
class InstanceWire:
    """The part of a configured instance the wire checks compare against."""

    name: str
    ifname: str
    family: int
    vrid: int
    version: int
    advert_int_cs: int
    vips: tuple[str, ...]
    unicast_peers: tuple[IPAddress, ...] = ()


def summarize(
    heard: Iterable[Heard], local: set[IPAddress]
) -> dict[tuple[str, int, int], dict[IPAddress, _Seen]]:
    """(ifname, family, vrid) -> source -> what it sent; own addresses and invalid packets left out."""
    from pyvrrp.proto.packet import Advertisement, decode

    out: dict[tuple[str, int, int], dict[IPAddress, _Seen]] = {}
    for h in heard:
        if h.src in local:
            continue
        adv = decode(h.payload, src=h.src, dst=h.dst)
        if not isinstance(adv, Advertisement):
            continue
        seen = out.setdefault((h.ifname, h.src.version, adv.vrid), {}).setdefault(h.src, _Seen())
        seen.adverts += 1
        seen.priorities.add(adv.priority)
        seen.intervals_cs.add(adv.interval_cs)
        seen.addresses.add(tuple(str(a) for a in adv.addresses))
        seen.versions.add(adv.version)
        seen.multicast += h.dst.is_multicast
        if h.ttl is not None:
            seen.ttls.add(h.ttl)
    return out


def check_adverts(
    inst: InstanceWire,
    wire: dict[tuple[str, int, int], dict[IPAddress, _Seen]],
    listened_s: float,
) -> list[Check]:
    """Did the peers' adverts arrive, and do they agree with this instance (and with each other)?"""
    name = f"adverts {inst.name}"
    peers = wire.get((inst.ifname, inst.family, inst.vrid), {})
    out: list[Check] = []
    if inst.unicast_peers:
        missing = [p for p in inst.unicast_peers if p not in peers]
        heard = [p for p in inst.unicast_peers if p in peers]
        if missing:
            out.append(
                Check(
                    name,
                    "warn",
                    f"no advert from unicast peer {', '.join(map(str, missing))} in {listened_s:g} s"
                    + (f" (heard {', '.join(map(str, heard))})" if heard else ""),
                    "is the peer running and its unicast_peer list naming this host? "
                    "is protocol 112 allowed on both hosts and on the path?",
                )
            )
        else:
            out.append(Check(name, "ok", "heard every unicast peer: " + _describe(peers)))
    elif peers:
        out.append(Check(name, "ok", f"heard on {inst.ifname} VRID {inst.vrid}: " + _describe(peers)))
    else:
        out.append(
            Check(
                name,
                "warn",
                f"no advert for VRID {inst.vrid} on {inst.ifname} in {listened_s:g} s",
                "fine when no peer runs yet; else check the peer, protocol 112 in the firewalls, "
                "and IGMP snooping on the switch (224.0.0.18 / ff02::12 must be flooded)",
            )
        )
    mine = tuple(inst.vips)
    for src, seen in sorted(peers.items(), key=lambda kv: str(kv[0])):
        if inst.unicast_peers and seen.multicast == seen.adverts:
            out.append(
                Check(
                    f"vrid {inst.vrid} {inst.ifname}",
                    "warn",
                    f"{src} advertises by multicast; this instance is configured for unicast peers",
                    "use unicast_peer on every router of the VRID, or on none",
                )
            )
        elif not inst.unicast_peers and not seen.multicast:
            out.append(
                Check(
                    f"vrid {inst.vrid} {inst.ifname}",
                    "warn",
                    f"{src} sends its adverts by unicast to this host; this instance is multicast",
                    "use unicast_peer on every router of the VRID, or on none",
                )
            )
        if seen.versions and inst.version not in seen.versions:
            out.append(
                Check(
                    f"vrid {inst.vrid} {inst.ifname}",
                    "fail",
                    f"{src} sends VRRPv{'/'.join(map(str, sorted(seen.versions)))}, "
                    f"this instance v{inst.version}",
                    "use the same version on every router of the VRID",
                )
            )
        others = {a for a in seen.addresses if set(a) != set(mine)}
        if others:
            out.append(
                Check(
                    f"vrid {inst.vrid} {inst.ifname}",
                    "fail",
                    f"VRID {inst.vrid} is also used by {src} with addresses "
                    f"{' | '.join(','.join(a) or '-' for a in sorted(others))} "
                    f"(this instance: {','.join(mine) or '-'}): duplicate VRID or a VIP list mismatch",
                    "give each cluster on the link its own virtual_router_id; "
                    "routers of one VRID list the same VIPs",
                )
            )
        if seen.intervals_cs and inst.advert_int_cs not in seen.intervals_cs:
            shown = "/".join(f"{cs / 100:g}s" for cs in sorted(seen.intervals_cs))
            out.append(
                Check(
                    f"vrid {inst.vrid} {inst.ifname}",
                    "warn",
                    f"{src} advertises every {shown}, this instance {inst.advert_int_cs / 100:g}s",
                    "use the same advert_int on every router of the VRID (v2 drops the others)",
                )
            )
        if not inst.unicast_peers and seen.ttls and seen.ttls != {255}:
            out.append(
                Check(
                    f"vrid {inst.vrid} {inst.ifname}",
                    "fail",
                    f"{src} arrives with TTL {'/'.join(map(str, sorted(seen.ttls)))}, not 255: "
                    "receivers drop it (RFC 5798 §7.1)",
                    "something routes the adverts: keep peers on one link",
                )
            )
    return out


# Conflicts between the other routers, as ``pyvrrp sniff`` finds them; "ttl" is left to
# check_adverts (per source, against this instance's mode).
_WIRE_FAIL = {"two-masters", "duplicate-owner", "address-mismatch", "version-mismatch", "auth-mismatch"}
_WIRE_HINT = {
    "two-masters": "split brain between the peers: check the link between them, their firewalls, "
    "and that they share version, VRID and authentication",
    "duplicate-owner": "only the router that owns the VIP may use priority 255",
}


def check_wire_conflicts(heard: Iterable[Heard], local: set[IPAddress]) -> list[Check]:
    """Run the sniffer's analysis (:class:`pyvrrp.sniff.Analyzer`) on what the peers sent."""
    from pyvrrp.proto.packet import decode
    from pyvrrp.sniff import Analyzer, SniffRecord

    analyzer = Analyzer()
    for h in heard:
        if h.src not in local:
            result = decode(h.payload, src=h.src, dst=h.dst)
            ttl = 255 if h.ttl is None else h.ttl
            analyzer.add(SniffRecord(h.time_s, h.src, h.dst, ttl, result, h.payload))
    out = []
    for family, vrid in analyzer.groups():
        for c in analyzer.conflicts(family, vrid):
            if c.kind == "ttl":
                continue
            status: Status = "fail" if c.kind in _WIRE_FAIL else "warn"
            hint = _WIRE_HINT.get(c.kind, "make every router of the VRID agree (see `pyvrrp sniff`)")
            out.append(Check(f"wire IPv{family} VRID {vrid}", status, f"{c.kind}: {c.detail}", hint))
    return out


def check_foreign_vrids(
    wire: dict[tuple[str, int, int], dict[IPAddress, _Seen]], configured: set[tuple[str, int, int]]
) -> list[Check]:
    """VRIDs seen on our interfaces that no instance here uses: the free ones are the others."""
    out = []
    for (ifname, family, vrid), peers in sorted(wire.items()):
        if (ifname, family, vrid) in configured:
            continue
        out.append(
            Check(
                f"vrid {vrid} {ifname}",
                "ok",
                f"IPv{family} VRID {vrid} in use on {ifname} by {', '.join(map(str, sorted(peers, key=str)))}"
                " (not configured here: do not reuse it)",
            )
        )
    return out


def _describe(peers: dict[IPAddress, _Seen]) -> str:
    return "; ".join(
        f"{src} prio {'/'.join(map(str, sorted(s.priorities)))} ({s.adverts} adverts)"
        for src, s in sorted(peers.items(), key=lambda kv: str(kv[0]))
    )


def check_time_sync() -> Check:
    return Check(
        "time sync",
        "skip",
        "clock offsets do not matter: VRRP timers and the etcd witness's deadline use monotonic clocks "
        "(only clock-rate drift counts, covered by witness.margin; docs/split-brain.md §5)",
    )


def exit_code(checks: Iterable[Check]) -> int:
    """0 when everything is ok or only warns, 1 on any failure."""
    return 1 if any(c.status == "fail" for c in checks) else 0


# ------------------------------------------------------------------------ probes


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _run(argv: Sequence[str]) -> str | None:
    """stdout of ``argv`` when it exists and succeeds, else None."""
    exe = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/sbin:/sbin")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def read_link(ifname: str) -> LinkInfo | None:
    """Flags, operstate and MTU from /sys, addresses over netlink; None if there is no such link."""
    base = Path("/sys/class/net") / ifname
    if not ifname or "/" in ifname or not base.is_dir():
        return None
    try:
        flags = int((base / "flags").read_text(), 16)
        mtu = int((base / "mtu").read_text())
        oper = (base / "operstate").read_text().strip()
        index = socket.if_nametoindex(ifname)
    except (OSError, ValueError):
        return None
    addrs: list[IPAddress] = []
    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            for msg in ipr.get_addr(index=index):
                value = msg.get_attr("IFA_ADDRESS")
                if value:
                    addrs.append(ip_address(value))
    except Exception:  # no netlink: report the link without addresses rather than nothing
        pass
    return LinkInfo(ifname, flags, oper, mtu, tuple(addrs))


def read_sysctl(key: str) -> str | None:
    return _read_text("/proc/sys/" + key.replace(".", "/"))


def probe_ipvs() -> tuple[bool | None, str]:
    try:
        from pyvrrp.ipvs.kernel import ipvs_available

        status = ipvs_available(try_modprobe=False)
    except Exception as exc:
        return None, f"could not probe IPVS ({exc})"
    return bool(status), status.reason


def listen(sockets: Sequence[tuple[str, int]], seconds: float) -> tuple[list[Heard], list[Check]]:
    """Open one VRRP socket per (ifname, family) and collect adverts for ``seconds``.

    Uses the daemon's own socket (same group join, device binding, TTL parsing), so what
    doctor hears is what ``pyvrrp run`` would hear.  A socket that cannot be opened is a
    ``multicast`` check failure (join refused, no permission).
    """
    import asyncio

    from pyvrrp.adapters.vrrp_socket import VrrpSocket

    opened: list[VrrpSocket] = []
    checks: list[Check] = []

    async def open_all() -> None:
        for ifname, family in sockets:
            sock = VrrpSocket(ifname, family)
            try:
                await sock.open()
            except OSError as exc:
                checks.append(
                    Check(
                        f"multicast {ifname}",
                        "fail",
                        f"cannot open the IPv{family} VRRP socket on {ifname}: {exc}",
                        "run as root; check the interface exists and has multicast on",
                    )
                )
                continue
            opened.append(sock)
            checks.append(
                Check(
                    f"multicast {ifname}" + (" IPv6" if family == 6 else ""),
                    "ok",
                    f"IPv{family} VRRP socket open on {ifname}, joined {sock.group}",
                )
            )

    asyncio.run(open_all())
    heard: list[Heard] = []
    try:
        deadline = time.monotonic() + seconds
        by_fd = {s.fileno(): s for s in opened}
        while by_fd:
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            ready, _, _ = select.select(list(by_fd), [], [], wait)
            for fd in ready:
                sock = by_fd[fd]
                while (item := sock.recv_one()) is not None:
                    if item is False:
                        continue
                    payload, src, dst, ttl = item
                    heard.append(Heard(sock.ifname, src, dst, ttl, payload, time.time()))
    finally:
        for s in opened:
            s.close()
    return heard, checks


@dataclass
class Probes:
    """Every way doctor looks at the host; tests replace them with fakes."""

    proc_status: Callable[[], str | None] = lambda: _read_text("/proc/self/status")
    link: Callable[[str], LinkInfo | None] = read_link
    sysctl: Callable[[str], str | None] = read_sysctl
    nft_ruleset: Callable[[], str | None] = lambda: _run(["nft", "-j", "list", "ruleset"])
    iptables_save: Callable[[], str | None] = lambda: _run(["iptables-save"])
    ipvs: Callable[[], tuple[bool | None, str]] = probe_ipvs
    listen: Callable[[Sequence[tuple[str, int]], float], tuple[list[Heard], list[Check]]] = listen


def default_listen_s(advert_ints_cs: Iterable[int]) -> float:
    """Three of the slowest advert interval listened for, at least 1 s and at most 10 s."""
    return min(10.0, max(1.0, 3 * max(advert_ints_cs, default=100) / 100))


def run_checks(cfg: Any, probes: Probes, *, listen_s: float | None = None) -> list[Check]:
    """Every check for a loaded config, in report order."""
    checks = [check_capabilities(probes.proc_status())]
    links: dict[str, LinkInfo | None] = {}
    sends: set[tuple[str, int]] = set()
    wire_insts: list[InstanceWire] = []
    local: set[IPAddress] = set()
    for name, inst in cfg.vrrp_instance.items():
        src = inst.unicast_src_ip or inst.mcast_src_ip
        for ifname in inst.vip_interfaces:
            first = ifname not in links
            if first:
                links[ifname] = probes.link(ifname)
            is_vrrp_if = ifname == inst.interface
            key = (ifname, inst.family)
            if first or (is_vrrp_if and key not in sends):
                checks += check_interface(
                    ifname,
                    links[ifname],
                    link_checks=first,
                    family=inst.family,
                    sends=is_vrrp_if,
                    multicast=not inst.unicast_peer,
                    src=src if is_vrrp_if else None,
                    vips=[v.ip for v in inst.vips],
                )
            if is_vrrp_if:
                sends.add(key)
        link = links.get(inst.interface)
        if link is not None:
            local.update(link.addresses)
        wire_insts.append(
            InstanceWire(
                name,
                inst.interface,
                inst.family,
                inst.virtual_router_id,
                inst.version,
                inst.advert_int_cs,
                tuple(str(v.ip) for v in inst.vips),
                tuple(inst.unicast_peer),
            )
        )
    checks.append(check_firewall(probes.nft_ruleset(), probes.iptables_save()))
    # Listen where the link exists: one socket per (interface, family), always joined to the
    # group.  It receives unicast adverts sent to this host too, and so also hears a peer
    # that advertises by multicast to an instance configured for unicast (or the reverse).
    sockets = sorted({(w.ifname, w.family) for w in wire_insts if links.get(w.ifname) is not None})
    listened = [w.advert_int_cs for w in wire_insts if links.get(w.ifname) is not None]
    seconds = default_listen_s(listened) if listen_s is None else listen_s
    if sockets and seconds > 0:
        heard, sock_checks = probes.listen(sockets, seconds)
        checks += sock_checks
        wire = summarize(heard, local)
        for w in wire_insts:
            if links.get(w.ifname) is None:
                checks.append(Check(f"adverts {w.name}", "skip", f"{w.ifname} does not exist"))
            else:
                checks += check_adverts(w, wire, seconds)
        checks += check_foreign_vrids(wire, {(w.ifname, w.family, w.vrid) for w in wire_insts})
        checks += check_wire_conflicts(heard, local)
    elif wire_insts:
        checks.append(Check("adverts", "skip", "not listened (--listen 0 or no interface exists)"))
    vrrp_ifs = sorted({w.ifname for w in wire_insts if links.get(w.ifname) is not None})
    vips = [
        (inst.vip_dev(v), v.family) for inst in cfg.vrrp_instance.values() for v in inst.virtual_ipaddress
    ]
    checks += check_sysctls(
        probes.sysctl,
        vrrp_ifs,
        vip_ifs=sorted({dev for dev, fam in vips if fam == 4 and links.get(dev) is not None}),
        vip_families={fam for _, fam in vips},
        unicast=any(w.unicast_peers for w in wire_insts),
    )
    if getattr(cfg, "virtual_server", None):
        checks.append(check_ipvs(*probes.ipvs()))
    else:
        checks.append(Check("ip_vs", "skip", "no virtual_server configured"))
    checks.append(check_time_sync())
    return checks


def is_root() -> bool:
    return os.geteuid() == 0
