"""A two-site lab for the quorum witness (issue 13): two switches joined by one trunk.

Shared by ``netns-tests/test_split_heal.py`` and ``benchmarks/witness.py``::

    site A (switch swa, bridge br0)            site B (switch swb, bridge br0)
      gwa 192.168.233.1   ─┐                  ┌─ gwb 192.168.233.2
      ca  192.168.233.20  ─┤   trunk veth     ├─ cb  192.168.233.21
      lb1 192.168.233.10  ─┼── t-a ═══ t-b ───┼─ lb2 192.168.233.11
      e1  192.168.233.31  ─┘                  └─ e2  192.168.233.32
            gwa wa0 10.77.1.1 ── a0 ┐  witness site  ┌ b0 ── 10.77.2.1 wb0 gwb
                                    └─ e3 10.77.0.3 ─┘  (on lo; 10.77.1.2, 10.77.2.2)

One LAN (192.168.233.0/24) spread over two switches; each side keeps its own path out
(lb1, ca, e1 route via gwa; lb2, cb, e2 via gwb).  The third etcd member e3 sits at a
routed witness site linked to both gateways; it routes the LAN via gwa (``witness_with("A")``)
or via gwb (``witness_with("B")``), so a fault decides which side keeps the etcd majority:

* ``cut_trunk()``: the trunk veth down on both switches (an inter-switch link failure); the
  hosts keep their carrier, each side keeps its clients and its gateway;
* ``isolate_witness_from(side)``: the witness site's link to that side's gateway down
  (with ``cut_trunk`` and ``witness_with`` of the other side: W1 when the master's side keeps
  e3, W2 when the master is left with e1 alone);
* ``heal()``: everything back (trunk up, both witness links up, e3 via gwa).

etcd (Debian's etcd-server, ``--pre-vote``, plain HTTP) runs one member per namespace
(``TwoSiteEtcd``).  Nothing is added to the root namespace: every veth is created inside a
lab namespace with its peer moved straight into another.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _faults import ALL_GUARDS, Guards, Timing, keepalived_config, pyvrrp_config, start_nodes

from pyvrrp.lab.keepalived import KeepalivedNode
from pyvrrp.lab.topology import LAB_IFNAME, DaemonNode, HostSpec, Lab, LabError, PyvrrpNode, wait_for

SITE_A, SITE_B = "A", "B"
SWITCHES = {SITE_A: "swa", SITE_B: "swb"}
BRIDGE = "br0"
TRUNK = {SITE_A: "t-a", SITE_B: "t-b"}
WITNESS = "e3"

LAN_HOSTS: tuple[tuple[HostSpec, str], ...] = (
    (HostSpec("gwa", "gw", 1), SITE_A),
    (HostSpec("gwb", "gw", 2), SITE_B),
    (HostSpec("lb1", "lb", 10), SITE_A),
    (HostSpec("lb2", "lb", 11), SITE_B),
    (HostSpec("ca", "client", 20), SITE_A),
    (HostSpec("cb", "client", 21), SITE_B),
    (HostSpec("e1", "etcd", 31), SITE_A),
    (HostSpec("e2", "etcd", 32), SITE_B),
)
SITE_OF = {spec.name: site for spec, site in LAN_HOSTS}
GATEWAY_OF = {SITE_A: "gwa", SITE_B: "gwb"}
CLIENTS = {SITE_A: "ca", SITE_B: "cb"}

E3_IP = "10.77.0.3"
W_LINK = {  # side -> (gateway if, gateway address, e3 if, e3 address)
    SITE_A: ("wa0", "10.77.1.1", "a0", "10.77.1.2"),
    SITE_B: ("wb0", "10.77.2.1", "b0", "10.77.2.2"),
}
ETCD_MEMBERS = ("e1", "e2", "e3")


def gateway_for(host: str) -> str:
    """The gateway host of ``host``'s site (``gwa`` for lb1, ``gwb`` for lb2)."""
    return GATEWAY_OF[SITE_OF[host]]


class TwoSiteLab(Lab):
    """The namespace lab of the module docstring.  ``with TwoSiteLab() as lab: ...``."""

    def __init__(
        self, *, prefix: str | None = None, run_dir: str | Path | None = None, keep_run_dir: bool = False
    ) -> None:
        super().__init__(
            prefix=prefix, gateway=False, real_servers=False, run_dir=run_dir, keep_run_dir=keep_run_dir
        )
        self.hosts = {spec.name: spec for spec, _ in LAN_HOSTS}
        self.trunk_up = True
        self.witness_side = SITE_A

    # ----------------------------------------------------------------- names
    def ns(self, host: str) -> str:
        if host in SWITCHES.values() or host == WITNESS:
            return f"{self.prefix}-{host}"
        return super().ns(host)

    @property
    def namespaces(self) -> list[str]:
        return [*(self.ns(s) for s in SWITCHES.values()), self.ns(WITNESS), *(self.ns(h) for h in self.hosts)]

    def site(self, host: str) -> str:
        return SITE_OF[host]

    # ------------------------------------------------------------- lifecycle
    def _up(self, wait_s: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ip", "-batch", "-"],
            input="".join(f"netns add {n}\n" for n in self.namespaces),
            text=True,
            check=True,
            capture_output=True,
        )
        common = {
            "net.ipv6.conf.all.disable_ipv6": 1,
            "net.ipv6.conf.default.disable_ipv6": 1,
            "net.ipv4.conf.all.rp_filter": 0,
            "net.ipv4.conf.default.rp_filter": 0,
        }
        for name in [*SWITCHES.values(), WITNESS, *self.hosts]:
            extra: dict[str, str | int] = {}
            if name in GATEWAY_OF.values() or name == WITNESS:
                extra = {
                    "net.ipv4.ip_forward": 1,
                    "net.ipv4.conf.all.send_redirects": 0,
                    "net.ipv4.conf.default.send_redirects": 0,
                }
            self._sysctl(name, {**common, **extra})
        for site, sw in SWITCHES.items():
            lines = [
                f"link add {BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                f"link set {BRIDGE} up",
            ]
            for spec, host_site in LAN_HOSTS:
                if host_site != site:
                    continue
                lines += [
                    f"link add p-{spec.name} type veth peer name {LAB_IFNAME} address {spec.mac} "
                    f"netns {self.ns(spec.name)}",
                    f"link set p-{spec.name} master {BRIDGE} up",
                ]
            if site == SITE_A:
                lines.append(
                    f"link add {TRUNK[SITE_A]} type veth peer name {TRUNK[SITE_B]} netns {self.ns('swb')}"
                )
            lines.append(f"link set {TRUNK[site]} master {BRIDGE} up" if site == SITE_B else "")
            self._ip_batch(sw, [x for x in lines if x])
        self._ip_batch("swa", [f"link set {TRUNK[SITE_A]} master {BRIDGE} up"])
        for spec, site in LAN_HOSTS:
            lines = [
                "link set lo up",
                f"addr add {spec.ipv4}/24 dev {LAB_IFNAME}",
                f"link set {LAB_IFNAME} up",
            ]
            if spec.role != "gw":
                gw = self.hosts[GATEWAY_OF[site]].ipv4
                lines.append(f"route add default via {gw}")
            self._ip_batch(spec.name, lines)
        # the witness site: e3 on its loopback, one routed /30 to each gateway
        w = ["link set lo up", f"addr add {E3_IP}/32 dev lo"]
        for side, (gif, gaddr, wif, waddr) in W_LINK.items():
            gw = GATEWAY_OF[side]
            self._ip_batch(WITNESS, [f"link add {wif} type veth peer name {gif} netns {self.ns(gw)}"])
            self._ip_batch(
                gw,
                [f"addr add {gaddr}/30 dev {gif}", f"link set {gif} up", f"route add {E3_IP}/32 via {waddr}"],
            )
            w += [f"addr add {waddr}/30 dev {wif}", f"link set {wif} up"]
        w.append(f"route add 192.168.233.0/24 via {W_LINK[SITE_A][1]}")
        self._ip_batch(WITNESS, w)

    # ----------------------------------------------------------------- faults
    def cut_trunk(self) -> None:
        """The inter-switch link fails: both ends of the trunk veth down (L2 splits)."""
        for site, sw in SWITCHES.items():
            self.ip_cmd(sw, "link", "set", TRUNK[site], "down")
        self.trunk_up = False

    def restore_trunk(self) -> None:
        for site, sw in SWITCHES.items():
            self.ip_cmd(sw, "link", "set", TRUNK[site], "up")
        self.trunk_up = True

    def witness_with(self, side: str) -> None:
        """e3 routes the LAN via ``side``'s gateway and loses its link to the other side."""
        other = SITE_B if side == SITE_A else SITE_A
        self.ip_cmd(WITNESS, "route", "replace", "192.168.233.0/24", "via", W_LINK[side][1])
        self.isolate_witness_from(other)
        self.witness_side = side

    def isolate_witness_from(self, side: str) -> None:
        gif, _, wif, _ = W_LINK[side]
        self.ip_cmd(GATEWAY_OF[side], "link", "set", gif, "down")
        self.ip_cmd(WITNESS, "link", "set", wif, "down")

    def split(self, master_side_keeps_majority: bool = True, master_site: str = SITE_A) -> None:
        """Cut the trunk and leave e3 with the master's side (W1) or the other side (W2)."""
        other = SITE_B if master_site == SITE_A else SITE_A
        self.cut_trunk()
        self.witness_with(master_site if master_side_keeps_majority else other)

    def heal(self) -> None:
        """Trunk back, both witness links back, e3 via gwa again (the lab as built)."""
        for side, (gif, _, wif, waddr) in W_LINK.items():
            self.ip_cmd(GATEWAY_OF[side], "link", "set", gif, "up", check=False)
            self.ip_cmd(WITNESS, "link", "set", wif, "up", check=False)
            self.ip_cmd(GATEWAY_OF[side], "route", "replace", f"{E3_IP}/32", "via", waddr, check=False)
        self.ip_cmd(WITNESS, "route", "replace", "192.168.233.0/24", "via", W_LINK[SITE_A][1], check=False)
        self.witness_side = SITE_A
        self.restore_trunk()

    def reaches(self, src: str, dst_ip: str, timeout_s: float = 1.0) -> bool:
        proc = self.exec(
            src, ["ping", "-n", "-q", "-c", "1", "-W", str(max(1, round(timeout_s))), dst_ip], check=False
        )
        return proc.returncode == 0


# --------------------------------------------------------------------------- etcd


class TwoSiteEtcd:
    """Three etcd members (plain HTTP, ``--pre-vote``): e1 at site A, e2 at site B, e3 at the witness site."""

    def __init__(self, lab: TwoSiteLab, *, election_ms: int = 1000, heartbeat_ms: int = 100) -> None:
        self.lab = lab
        self.dir = lab.run_dir / "etcd"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.election_ms, self.heartbeat_ms = election_ms, heartbeat_ms

    def ip(self, member: str) -> str:
        return E3_IP if member == WITNESS else self.lab.ip(member)

    def url(self, member: str) -> str:
        return f"http://{self.ip(member)}:2379"

    def endpoints_for(self, host: str) -> list[str]:
        """Own site's member first, then the witness site, then the other site."""
        own, other = ("e1", "e2") if SITE_OF[host] == SITE_A else ("e2", "e1")
        return [self.url(own), self.url(WITNESS), self.url(other)]

    def start(self, *members: str, wait_s: float = 30.0) -> TwoSiteEtcd:
        self.dir.mkdir(parents=True, exist_ok=True)
        cluster = ",".join(f"{m}=http://{self.ip(m)}:2380" for m in ETCD_MEMBERS)
        todo = members or ETCD_MEMBERS
        for m in todo:
            log = open(self.dir / f"{m}.log", "ab")  # noqa: SIM115 (the child owns it)
            ip = self.ip(m)
            self.procs[m] = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.lab.ns(m),
                    "etcd",
                    "--name",
                    m,
                    "--data-dir",
                    str(self.dir / f"{m}.data"),
                    "--listen-client-urls",
                    self.url(m),
                    "--advertise-client-urls",
                    self.url(m),
                    "--listen-peer-urls",
                    f"http://{ip}:2380",
                    "--initial-advertise-peer-urls",
                    f"http://{ip}:2380",
                    "--initial-cluster",
                    cluster,
                    "--initial-cluster-state",
                    "new",
                    "--pre-vote",
                    "--heartbeat-interval",
                    str(self.heartbeat_ms),
                    "--election-timeout",
                    str(self.election_ms),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
        for m in todo:
            wait_for(lambda m=m: self.healthy(m), wait_s, 0.2, what=f"etcd {m} healthy")  # type: ignore[misc]
        return self

    def healthy(self, member: str) -> bool:
        proc = self.lab.exec(member, ["curl", "-s", "-m", "1", f"{self.url(member)}/health"], check=False)
        return '"health":"true"' in (proc.stdout or "")

    def leader(self) -> str | None:
        """The member etcd reports as leader (asked of each member in turn), or None."""
        for m in self.procs:
            proc = self.lab.exec(
                m,
                ["curl", "-s", "-m", "1", "-X", "POST", "-d", "{}", f"{self.url(m)}/v3/maintenance/status"],
                check=False,
            )
            with contextlib.suppress(json.JSONDecodeError, KeyError, ValueError):
                data = json.loads(proc.stdout)
                leader = int(data["leader"])
                member = int(data["header"]["member_id"])
                if leader == member:
                    return m
        return None

    def kill(self, member: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(member)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for m in list(self.procs):
            self.kill(m)

    def destroy(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()


# --------------------------------------------------------------------------- the client's view

# Each client broadcasts an ARP request for the VIP every period and logs the MACs that answer
# (see _faults.ARP_PROBER_SRC); both clients together give the client's view of two holders.


@dataclass(frozen=True, slots=True)
class ClientView:
    """Seconds during which the two sites' clients were answered by two different MACs."""

    dual_s: float
    a_only_s: float
    b_only_s: float


def client_dual(
    a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], t0: float, t1: float, bin_s: float = 0.1
) -> ClientView:
    """Bin [t0, t1] by ``bin_s``: a bin is dual when the MACs answering ca's and cb's ARP
    requests in it are two or more distinct ones (each client on its own side of a split)."""
    n = max(0, int((t1 - t0) / bin_s))
    macs: list[set[str]] = [set() for _ in range(n)]
    seen: list[list[bool]] = [[False, False] for _ in range(n)]
    for side, recs in ((0, a), (1, b)):
        for rec in recs:
            i = int((rec["t"] - t0) / bin_s)
            if 0 <= i < n:
                macs[i].update(rec["macs"])
                seen[i][side] = seen[i][side] or bool(rec["macs"])
    dual = sum(1 for m in macs if len(m) >= 2) * bin_s
    a_only = sum(1 for s in seen if s[0] and not s[1]) * bin_s
    b_only = sum(1 for s in seen if s[1] and not s[0]) * bin_s
    return ClientView(round(dual, 3), round(a_only, 3), round(b_only, 3))


# --------------------------------------------------------------------------- the pair of schedulers


@dataclass(frozen=True, slots=True)
class Impl:
    """One implementation of the pair: keepalived, or pyvrrp with ``guards`` and the witness or not."""

    kind: str  # keepalived | pyvrrp
    guards: Guards = ALL_GUARDS
    witness: bool = False


@dataclass(frozen=True, slots=True)
class WTiming:
    """VRRP and guard timings (:class:`_faults.Timing`) plus the witness lease ttl and margin."""

    vrrp: Timing
    ttl_s: int = 5
    margin_s: float = 1.0


def node_config(lab: TwoSiteLab, etcd: TwoSiteEtcd, host: str, impl: Impl, wt: WTiming, policy: str) -> str:
    gw = lab.ip(gateway_for(host))
    if impl.kind == "keepalived":
        return keepalived_config(lab, host, wt.vrrp, gateway=gw)
    text = pyvrrp_config(lab, host, wt.vrrp, impl.guards, gateway=gw)
    if impl.witness:
        table = (
            f"endpoints = {json.dumps(etcd.endpoints_for(host))}, ttl = {wt.ttl_s}, "
            f'margin = {wt.margin_s}, on_unavailable = "{policy}"'
        )
        text = text.replace("[global_defs]\n", f"[global_defs]\nwitness = {{ {table} }}\n", 1)
        text = text.replace("[vrrp_instance.VI_51]\n", "[vrrp_instance.VI_51]\nwitness = true\n", 1)
    return text


def start_pair(
    lab: TwoSiteLab,
    etcd: TwoSiteEtcd,
    impl: Impl,
    wt: WTiming,
    policy: str = "release",
    timeout_s: float = 30.0,
) -> dict[str, DaemonNode]:
    """lb1 first until MASTER with the VIP (and its witness key), then lb2 until BACKUP."""
    nodes: dict[str, DaemonNode] = {}
    for host in ("lb1", "lb2"):
        text = node_config(lab, etcd, host, impl, wt, policy)
        nodes[host] = (
            KeepalivedNode(lab, host, text) if impl.kind == "keepalived" else PyvrrpNode(lab, host, text)
        )
    start_nodes(lab, nodes, timeout_s, witness=impl.witness)
    t = wt.vrrp
    time.sleep(
        max(2 * t.advert_int_s, 0.3) + (2 * t.ka_script_interval_s if impl.kind == "keepalived" else 0)
    )
    if not (lab.holds_vip("lb1") and not lab.holds_vip("lb2")):
        raise RuntimeError("the pair did not settle with lb1 holding the VIP")
    return nodes


def python() -> str:
    return sys.executable


def require_tools() -> list[str]:
    """Missing binaries this lab needs (etcd, curl, ping), for a skip message."""
    import shutil

    return [t for t in ("etcd", "curl", "ping") if shutil.which(t) is None]


__all__ = [
    "CLIENTS",
    "ETCD_MEMBERS",
    "SITE_A",
    "SITE_B",
    "ClientView",
    "Impl",
    "LabError",
    "TwoSiteEtcd",
    "TwoSiteLab",
    "WTiming",
    "client_dual",
    "gateway_for",
    "node_config",
    "require_tools",
    "start_pair",
]


def _smoke() -> int:  # pragma: no cover - a manual check: python netns-tests/_twosite.py
    with TwoSiteLab() as lab:
        etcd = TwoSiteEtcd(lab).start()
        try:
            print("lb2 -> e3", lab.reaches("lb2", E3_IP), "lb1 -> lb2", lab.reaches("lb1", lab.ip("lb2")))
            print("leader", etcd.leader())
            t = time.time()
            lab.split(master_side_keeps_majority=False)
            print(
                "split W2: lb1->e3",
                lab.reaches("lb1", E3_IP),
                "lb2->e3",
                lab.reaches("lb2", E3_IP),
                "lb1->lb2",
                lab.reaches("lb1", lab.ip("lb2")),
                "e2->e3",
                lab.reaches("e2", E3_IP),
            )
            lab.heal()
            lab.split(master_side_keeps_majority=True)
            print(
                "split W1: lb1->e3",
                lab.reaches("lb1", E3_IP),
                "lb2->e3",
                lab.reaches("lb2", E3_IP),
                "e1->e3",
                lab.reaches("e1", E3_IP),
            )
            lab.heal()
            print(
                "healed: lb2->e3",
                lab.reaches("lb2", E3_IP),
                "lb1->lb2",
                lab.reaches("lb1", lab.ip("lb2")),
                f"({time.time() - t:.1f} s)",
            )
        finally:
            etcd.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(_smoke())
