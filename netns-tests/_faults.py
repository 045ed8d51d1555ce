"""The split-brain fault matrix (issue #4 §5): faults, measurement and one scenario run.

Shared by ``netns-tests/test_splitbrain_matrix.py`` (pyvrrp, short intervals, asserted
targets) and ``benchmarks/splitbrain.py`` (keepalived beside pyvrrp, printed table).

Lab: ``Lab(gateway=True, real_servers=False)``: client .20, lb1 .10 (priority 150), lb2 .11
(priority 100), gateway .1, one bridge ``br0`` in the switch namespace.  Both LBs run a tiny
HTTP responder on port 8080 that answers on the VIP 192.168.233.200 while they hold it.

Faults are driven from inside the lab's namespaces, never the root namespace:

* nftables *bridge* rules in the switch namespace (``hook forward``): the network drops
  frames between ports, the hosts' sockets (raw VRRP, AF_PACKET ARP) are untouched;
* ``ip link set p-<host> down/up`` on the switch port (carrier loss on the host's eth0);
* SIGSTOP / SIGCONT to the daemon's processes.

Measurement, all on the wall clock (``time.time()``) so the namespaces' helpers and the
test process share a time base:

* VIP holders: ``ip -n <lb> -o -4 addr show dev eth0`` for both LBs every ~20 ms;
  two holders = dual master (nodes' view), none = outage;
* the client's ARP view: a prober in the client namespace broadcasts an ARP request for
  the VIP every ``arp_period_s`` and records which MACs answer (two MACs = dual master as a
  client sees it), plus the client's ``/proc/net/arp`` entry for the VIP;
* client requests: the client probe (:mod:`pyvrrp.lab.probe`) in the client namespace, one
  HTTP GET to the VIP per ~50 ms (new TCP connection each, 0.5 s timeout); failures are
  counted;
* transitions: state changes logged by both daemons between fault and end of settling
  (pyvrrp ``state_changed`` JSON log lines, keepalived ``Entering X STATE``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyvrrp.lab import probe
from pyvrrp.lab.keepalived import KeepalivedNode, keepalived_conf
from pyvrrp.lab.topology import (
    HTTPD_SRC,
    LAB_IFNAME,
    SWITCH,
    VIP4,
    DaemonNode,
    InstanceSpec,
    Lab,
    PyvrrpNode,
    pyvrrp_toml,
    wait_for,
)

HTTP_PORT = 8080
PRIO = {"lb1": 150, "lb2": 100}
LBS = ("lb1", "lb2")
NFT_TABLE = "pvfault"

SCENARIOS: dict[str, str] = {
    "S1": "VRRP (proto 112) dropped between the schedulers, both reach the gateway",
    "S2": "multicast dropped, unicast allowed (unicast peers configured)",
    "S3": "the master loses the gateway, adverts still flow",
    "S4": "lb2 (backup) cut off from the bridge (link up), then reconnected",
    "S5": "the master's daemon frozen (SIGSTOP) for 2 x Master_Down_Interval",
    "S6": "one-way loss: adverts lb1 -> lb2 dropped, lb2 -> lb1 delivered",
    "S7": "the master's link flaps (down/up every period) for the flap duration",
}

# --------------------------------------------------------------------------- helpers run
# inside the client namespace (stdlib only; JSON lines on stdout; stop with SIGTERM).

ARP_PROBER_SRC = r"""
import json, signal, socket, struct, sys, time
ifname, vip, my_ip, period = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0x0806))
mac = s.getsockname()[4]
vip_b, my_b = socket.inet_aton(vip), socket.inet_aton(my_ip)
req = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
       + mac + my_b + b"\x00" * 6 + vip_b)
def neigh():
    try:
        for line in open("/proc/net/arp").read().splitlines()[1:]:
            f = line.split()
            if f[0] == vip and f[2] != "0x0":
                return f[3]
    except OSError:
        pass
    return None
while True:
    t0 = time.time()
    s.send(req)
    macs = set()
    end = t0 + period
    while True:
        left = end - time.time()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            frame = s.recv(128)
        except (socket.timeout, BlockingIOError):
            break
        if len(frame) >= 42 and frame[12:14] == b"\x08\x06":
            op = struct.unpack("!H", frame[20:22])[0]
            if op == 2 and frame[28:32] == vip_b and frame[38:42] == my_b:
                macs.add(frame[22:28].hex(":"))
    print(json.dumps({"t": t0, "t_end": time.time(), "macs": sorted(macs), "neigh": neigh()}), flush=True)
"""


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class Timing:
    """Protocol and fault timings of one matrix run (seconds).

    ``advert_int_s`` applies to both daemons (VRRPv3, RFC 5798 §5.2.7).  The gateway check
    is tuned so that a cut-off node is isolated well before its Master_Down_Interval
    (``fall * gw_interval_s + gw_timeout_s`` < 3 x advert_int) and so that a flapping link
    stays isolated through an up-phase (``rise * gw_interval_s`` > ``flap_period_s``).
    """

    advert_int_s: float = 1.0
    fault_s: float = 12.0
    settle_s: float = 8.0
    flap_period_s: float = 1.0
    flap_total_s: float = 20.0
    gw_interval_s: float = 0.5
    gw_timeout_s: float = 0.4
    gw_fall: int = 2
    gw_rise: int = 5
    conflict_interval_s: float = 1.0
    ka_script_interval_s: int = 1
    baseline_s: float = 1.0
    arp_period_s: float = 0.05
    sample_period_s: float = 0.02

    @property
    def master_down_s(self) -> float:
        """Master_Down_Interval of lb2 (priority 100), RFC 5798 §6.1: 3 x MAI + skew."""
        return 3 * self.advert_int_s + (256 - PRIO["lb2"]) * self.advert_int_s / 256


TEST_TIMING = Timing(
    advert_int_s=0.2,
    fault_s=3.0,
    settle_s=3.0,
    flap_period_s=1.0,
    flap_total_s=6.0,
    gw_interval_s=0.1,
    gw_timeout_s=0.08,
    gw_fall=2,
    gw_rise=15,
    conflict_interval_s=0.5,
    baseline_s=0.6,
)


@dataclass(frozen=True, slots=True)
class Guards:
    """Which pyvrrp guards are on (issue #4 §2-§4).  keepalived ignores this."""

    gateway_check: bool = True
    conflict_detection: bool = True
    probe_vip: bool = True
    unicast: bool = True
    witness: bool = False
    """The quorum witness (issue 13): ``witness = true`` and ``global_defs.witness`` on one etcd
    member at ``_etcd.ENDPOINT`` (the caller starts it: ``_etcd.Etcd(lab).start()``)."""
    witness_ttl: int = 4
    witness_margin: float = 1.0

    @property
    def label(self) -> str:
        if self.witness:
            base = dataclasses.replace(self, witness=False).label
            return f"{base}+witness"
        if self.gateway_check and self.conflict_detection and self.probe_vip:
            return "all guards"
        parts = [
            n
            for n, on in (
                ("gw", self.gateway_check),
                ("conflict", self.conflict_detection),
                ("probe", self.probe_vip),
            )
            if on
        ]
        return "+".join(parts) or "no guards"


ALL_GUARDS = Guards()
NO_PROBE = Guards(probe_vip=False)


# --------------------------------------------------------------------------- faults


class Faults:
    """nftables tables (``pvfault``) added in lab namespaces; ``clear()`` removes them all.

    Bridge rules in the switch namespace rather than host input rules: the network drops the
    frame, so every socket of the host (raw VRRP, AF_PACKET ARP, which sees frames before
    netfilter) is affected alike, as with a real switch or cable fault.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.tables: list[tuple[str, str]] = []  # (host, family)

    def bridge_drop(self, rules: Sequence[str]) -> None:
        """Drop frames forwarded by br0 that match any of ``rules`` (bridge family, switch ns)."""
        body = "\n".join(f"        {r} drop" for r in rules)
        script = (
            f"table bridge {NFT_TABLE} {{\n    chain pv_fwd {{\n"
            f"        type filter hook forward priority -200; policy accept;\n{body}\n    }}\n}}\n"
        )
        self._load(SWITCH, "bridge", script)

    def _load(self, host: str, family: str, script: str) -> None:
        self.lab.exec(host, ["nft", "-f", "-"], input=script)
        self.tables.append((host, family))

    def clear(self) -> None:
        while self.tables:
            host, family = self.tables.pop()
            self.lab.exec(host, ["nft", "delete", "table", family, NFT_TABLE], check=False)


def port(host: str) -> str:
    """The switch-side veth of ``host`` (``p-<host>``, see pyvrrp/lab/topology.py)."""
    return f"p-{host}"


# --------------------------------------------------------------------------- recorders


class HolderSampler(threading.Thread):
    """Samples both LBs' ``ip addr`` every ``period_s``; ``samples`` = [(t, lb1, lb2)]."""

    def __init__(self, lab: Lab, period_s: float = 0.02, vip: str = VIP4) -> None:
        super().__init__(daemon=True, name="holder-sampler")
        self.lab, self.period_s, self.vip = lab, period_s, vip
        self.samples: list[tuple[float, bool, bool]] = []
        self._stop_evt = threading.Event()

    def _holds(self, host: str) -> bool:
        proc = subprocess.run(
            ["ip", "-n", self.lab.ns(host), "-o", "-4", "addr", "show", "dev", LAB_IFNAME],
            capture_output=True,
            text=True,
            check=False,
        )
        return f" {self.vip}/" in proc.stdout

    def run(self) -> None:
        while not self._stop_evt.is_set():
            t0 = time.time()
            a = self._holds("lb1")
            b = self._holds("lb2")
            self.samples.append(((t0 + time.time()) / 2, a, b))
            self._stop_evt.wait(max(0.0, self.period_s - (time.time() - t0)))

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=5.0)


class LineRecorder:
    """A helper process (``argv``) in a lab namespace writing JSON lines to ``path``."""

    def __init__(self, lab: Lab, host: str, name: str, argv: Sequence[str]) -> None:
        self.path = lab.run_dir / f"{name}.jsonl"
        self._out = open(self.path, "w")  # noqa: SIM115 (the child writes it)
        self.proc = lab.popen(host, argv, stdout=self._out, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3.0)
        self._out.close()

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out


# --------------------------------------------------------------------------- metrics


def _intervals(
    samples: list[tuple[float, bool, bool]], t0: float, t1: float
) -> list[tuple[float, float, bool, bool]]:
    """Each sample's value held until the next sample, clipped to [t0, t1]."""
    out = []
    for i, (t, a, b) in enumerate(samples):
        t_next = samples[i + 1][0] if i + 1 < len(samples) else t1
        lo, hi = max(t, t0), min(t_next, t1)
        if hi > lo:
            out.append((lo, hi, a, b))
    return out


@dataclass
class Result:
    """One scenario run for one implementation: the row of the matrix."""

    impl: str
    scenario: str
    dual_nodes_s: float = 0.0  # both LBs have the VIP configured
    dual_client_s: float = 0.0  # two MACs answer the client's ARP request for the VIP
    outage_s: float = 0.0  # no LB has the VIP configured
    transitions: int = 0  # state changes of both daemons, fault start to end of settling
    transitions_fault: int = 0  # ... of which while the fault was applied
    requests: int = 0
    failed: int = 0
    client_mac_flips: int = 0
    held_s: dict[str, float] = field(default_factory=dict)  # per LB, within the window
    held_while_faulted_s: dict[str, float] = field(default_factory=dict)  # [fault, revert]
    dual_after_revert_s: float = 0.0  # two holders after the fault was reverted (healing time)
    dual_episodes: int = 0  # separate periods with two holders (nodes' view)
    dual_longest_s: float = 0.0  # the longest of them
    first_dual_s: float | None = None  # seconds after the fault start of the first dual master
    flaps: int = 0
    takeover_requests: int = 0  # pyvrrp: takeover gate consulted (Master_Down fired) in the window
    conflicts: int = 0  # pyvrrp: dual_master_conflict log lines in the window
    window_s: float = 0.0
    fault_s: float = 0.0
    final: dict[str, str | None] = field(default_factory=dict)  # states at the end
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute(
    result: Result,
    samples: list[tuple[float, bool, bool]],
    arp: list[dict[str, Any]],
    http: list[probe.Reply],
    t_fault: float,
    t_revert: float,
    t_end: float,
) -> Result:
    """Fill the time-based metrics of ``result`` for the window [t_fault, t_end]."""
    result.window_s = t_end - t_fault
    held = {"lb1": 0.0, "lb2": 0.0}
    held_f = {"lb1": 0.0, "lb2": 0.0}
    episode_start: float | None = None
    for lo, hi, a, b in _intervals(samples, t_fault, t_end):
        d = hi - lo
        if a and b:
            result.dual_nodes_s += d
            if result.first_dual_s is None:
                result.first_dual_s = round(lo - t_fault, 3)
            if episode_start is None:
                episode_start = lo
                result.dual_episodes += 1
            result.dual_longest_s = max(result.dual_longest_s, round(hi - episode_start, 3))
        else:
            episode_start = None
        if not a and not b:
            result.outage_s += d
        held["lb1"] += d if a else 0.0
        held["lb2"] += d if b else 0.0
    for lo, hi, a, b in _intervals(samples, t_revert, t_end):
        result.dual_after_revert_s += (hi - lo) if a and b else 0.0
    result.dual_after_revert_s = round(result.dual_after_revert_s, 3)
    for lo, hi, a, b in _intervals(samples, t_fault, t_revert):
        held_f["lb1"] += (hi - lo) if a else 0.0
        held_f["lb2"] += (hi - lo) if b else 0.0
    result.held_s = {k: round(v, 3) for k, v in held.items()}
    result.held_while_faulted_s = {k: round(v, 3) for k, v in held_f.items()}
    last_mac: str | None = None  # the client's neighbour entry for the VIP, before each round
    for rec in arp:
        if rec["t"] > t_end:
            break
        in_window = rec["t"] >= t_fault
        if in_window and len(rec["macs"]) >= 2:
            result.dual_client_s += rec["t_end"] - rec["t"]
        if rec["neigh"]:
            if in_window and last_mac is not None and rec["neigh"] != last_mac:
                result.client_mac_flips += 1
            last_mac = rec["neigh"]
    requests = probe.tally(http, since=t_fault, until=t_end)
    result.requests, result.failed = requests.requests, requests.failed
    result.dual_nodes_s = round(result.dual_nodes_s, 3)
    result.dual_client_s = round(result.dual_client_s, 3)
    result.outage_s = round(result.outage_s, 3)
    return result


# --------------------------------------------------------------------------- nodes

_PV_TRANSITION = re.compile(r'"event":\s*"state_changed"')
_KA_TRANSITION = re.compile(r"\) Entering (MASTER|BACKUP|FAULT) STATE")


def _instance(host: str, t: Timing, guards: Guards) -> InstanceSpec:
    peer = "lb2" if host == "lb1" else "lb1"
    me_ip = f"192.168.233.{10 if host == 'lb1' else 11}"
    peer_ip = f"192.168.233.{10 if peer == 'lb1' else 11}"
    return InstanceSpec(
        priority=PRIO[host],
        version=3,
        advert_int_s=t.advert_int_s,
        unicast_src=me_ip if guards.unicast else None,
        unicast_peers=(peer_ip,) if guards.unicast else (),
        extra={"witness": True} if guards.witness else {},
    )


def pyvrrp_config(lab: Lab, host: str, t: Timing, guards: Guards, *, gateway: str | None = None) -> str:
    """pyvrrp TOML for ``host``: unicast peers plus the configured guards.

    ``gateway``: the gateway_check target (default: the lab's ``gw``; the two-site lab gives
    each scheduler its own site's gateway)."""
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    text = pyvrrp_toml(
        host,
        [_instance(host, t, guards)],
        control_socket=str(node_dir / "control.sock"),
        state_dir=str(node_dir),
    )
    if guards.witness:
        from _etcd import ENDPOINT

        table = f'endpoints = ["{ENDPOINT}"], ttl = {guards.witness_ttl}, margin = {guards.witness_margin}'
        text = text.replace("[global_defs]\n", f"[global_defs]\nwitness = {{ {table} }}\n", 1)
    gw = gateway or lab.ip("gw")
    lines = []
    if guards.gateway_check:
        lines.append(
            f'gateway_check = {{ targets = ["{gw}"], method = "icmp", interval = {t.gw_interval_s}, '
            f"timeout = {t.gw_timeout_s}, min_reachable = 1, rise = {t.gw_rise}, fall = {t.gw_fall}, "
            f'on_isolated = "fault" }}'
        )
    if guards.conflict_detection:
        lines.append(f"conflict_detection = {{ interval = {t.conflict_interval_s}, resolve = true }}")
    if guards.probe_vip:
        lines.append("probe_vip_before_takeover = true")
    return text + "\n".join(lines) + ("\n" if lines else "")


def keepalived_config(lab: Lab, host: str, t: Timing, *, gateway: str | None = None) -> str:
    """keepalived best practice: unicast peers plus a gateway-ping track_script, weight -60.

    lb1 150 - 60 = 90 < lb2's 100, so a master that loses the gateway loses the election
    while adverts flow (keepalived documents weights, not FAULT, as the usual choice).
    """
    inst = _instance(host, t, ALL_GUARDS)
    inst = dataclasses.replace(inst, extra={"track_script": "{\n        chk_gw\n    }"})
    text = keepalived_conf(host, [inst])
    script = (
        "vrrp_script chk_gw {\n"
        f'    script "{gateway_ping_command(gateway or lab.ip("gw"))}"\n'
        f"    interval {t.ka_script_interval_s}\n"
        "    timeout 2\n"
        "    fall 2\n"
        "    rise 2\n"
        "    weight -60\n"
        "}\n"
    )
    text = text.replace(
        "global_defs {\n", "global_defs {\n    script_user root\n    enable_script_security\n", 1
    )
    return text.replace("\nvrrp_instance", "\n" + script + "\nvrrp_instance", 1)


def gateway_ping_command(gw: str) -> str:
    """The track_script command: ``ping`` (iputils-ping) if installed, else ``arping``.

    The gateway is on the LAN, so one ARP reply proves the same reachability as one echo
    reply (iputils arping exits 1 when nothing answered within ``-w``).
    """
    ping = shutil.which("ping")
    if ping:
        return f"{ping} -n -q -c 1 -W 1 {gw}"
    arping = shutil.which("arping") or "/usr/bin/arping"
    return f"{arping} -q -c 1 -w 1 -I {LAB_IFNAME} {gw}"


def transitions_in(node: DaemonNode, start: int, end: int | None = None) -> int:
    """State changes logged by ``node`` between byte offsets ``start`` and ``end``."""
    text = node.log_path.read_bytes()[start:end].decode(errors="replace")
    pattern = _KA_TRANSITION if isinstance(node, KeepalivedNode) else _PV_TRANSITION
    return len(pattern.findall(text))


def events_in(node: DaemonNode, start: int, event: str) -> int:
    """pyvrrp log lines with ``"event": "<event>"`` after byte offset ``start`` (0 for keepalived)."""
    if isinstance(node, KeepalivedNode):
        return 0
    text = node.log_path.read_bytes()[start:].decode(errors="replace")
    return len(re.findall(r'"event":\s*"' + re.escape(event) + '"', text))


def log_size(node: DaemonNode) -> int:
    return node.log_path.stat().st_size if node.log_path.exists() else 0


def daemon_pids(node: DaemonNode) -> list[int]:
    """Every process of the daemon (keepalived: VRRP child and parent; pyvrrp: the one pid)."""
    return list(node.pids())


def start_http(lab: Lab) -> None:
    """A tiny HTTP responder on each LB (port 8080, all addresses, body = host name)."""
    for host in LBS:
        ready = lab.run_dir / f"httpd-{host}.ready"
        ready.unlink(missing_ok=True)
        lab.popen(
            host,
            [sys.executable, "-I", "-c", HTTPD_SRC, str(HTTP_PORT), host, str(ready)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    for host in LBS:
        ready = lab.run_dir / f"httpd-{host}.ready"
        wait_for(ready.exists, 10.0, what=f"httpd on {host}")


def _pv_ready(node: DaemonNode, want: str, witness: bool = False) -> bool:
    """In state ``want``, not isolated, and (``witness``, MASTER) holding its witness key."""
    if node.state() != want:
        return False
    if isinstance(node, PyvrrpNode):
        inst = node.instance() or {}
        if inst.get("isolated", False):
            return False
        if witness and want == "MASTER":
            return bool((inst.get("witness") or {}).get("revision"))
    return True


def start_nodes(
    lab: Lab, nodes: dict[str, DaemonNode], timeout_s: float, *, witness: bool = False
) -> None:
    """lb1 first until MASTER with the VIP, then lb2 until BACKUP (the logs on a timeout)."""
    try:
        nodes["lb1"].start()
        wait_for(
            lambda: _pv_ready(nodes["lb1"], "MASTER", witness) and lab.holds_vip("lb1"),
            timeout_s,
            0.05,
            what="lb1 MASTER",
        )
        nodes["lb2"].start()
        wait_for(
            lambda: _pv_ready(nodes["lb2"], "BACKUP") and _pv_ready(nodes["lb1"], "MASTER"),
            timeout_s,
            0.05,
            what="lb2 BACKUP",
        )
    except TimeoutError as exc:
        logs = "\n".join(f"--- {h}:\n{n.log_text()[-1500:]}" for h, n in nodes.items())
        raise TimeoutError(f"{exc}\n{logs}") from exc


def start_pair(
    lab: Lab, impl: str, t: Timing, guards: Guards, timeout_s: float = 30.0
) -> dict[str, DaemonNode]:
    """Start lb1, wait until it is MASTER with the VIP, then lb2, until BACKUP; none isolated.

    lb1 starts first so that the initial election never depends on which node proves its
    gateway first (a lower-priority node that wins the start-up race must later be
    preempted, which is not what the matrix measures).
    """
    nodes: dict[str, DaemonNode] = {}
    for host in LBS:
        if impl == "keepalived":
            nodes[host] = KeepalivedNode(lab, host, keepalived_config(lab, host, t))
        else:
            nodes[host] = PyvrrpNode(lab, host, pyvrrp_config(lab, host, t, guards))
    start_nodes(lab, nodes, timeout_s)
    # keepalived's track_script starts "failed" until rise: let the priorities settle too.
    time.sleep(max(2 * t.advert_int_s, 0.3) + (2 * t.ka_script_interval_s if impl == "keepalived" else 0))
    if not (lab.holds_vip("lb1") and not lab.holds_vip("lb2")):
        raise RuntimeError(f"{impl}: the pair did not settle with lb1 holding the VIP\n{node_logs(lab)}")
    return nodes


# --------------------------------------------------------------------------- one scenario


def _apply(
    scenario: str, lab: Lab, faults: Faults, nodes: dict[str, DaemonNode], t: Timing, result: Result
) -> float:
    """Apply the fault, wait for its duration, revert it.  Returns the revert time."""
    p1, p2, pgw = port("lb1"), port("lb2"), port("gw")
    if scenario == "S1":
        faults.bridge_drop(["ip protocol 112"])
        time.sleep(t.fault_s)
        faults.clear()
    elif scenario == "S2":
        faults.bridge_drop(["ip daddr 224.0.0.0/4"])
        time.sleep(t.fault_s)
        faults.clear()
    elif scenario == "S3":
        faults.bridge_drop([f'iifname "{p1}" oifname "{pgw}"', f'iifname "{pgw}" oifname "{p1}"'])
        time.sleep(t.fault_s)
        faults.clear()
    elif scenario == "S4":
        faults.bridge_drop([f'iifname "{p2}"', f'oifname "{p2}"'])
        time.sleep(t.fault_s)
        faults.clear()
    elif scenario == "S5":
        pids = daemon_pids(nodes["lb1"])
        freeze_s = 2 * t.master_down_s
        result.notes.append(f"froze pids {pids} for {freeze_s:.2f} s")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(freeze_s)
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
    elif scenario == "S6":
        faults.bridge_drop([f'iifname "{p1}" oifname "{p2}" ip protocol 112'])
        time.sleep(t.fault_s)
        faults.clear()
    elif scenario == "S7":
        end = time.time() + t.flap_total_s
        try:
            while time.time() < end:
                lab.ip_cmd(SWITCH, "link", "set", p1, "down")
                result.flaps += 1
                time.sleep(t.flap_period_s)
                lab.ip_cmd(SWITCH, "link", "set", p1, "up")
                time.sleep(t.flap_period_s)
        finally:
            lab.ip_cmd(SWITCH, "link", "set", p1, "up", check=False)
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return time.time()


def run_scenario(
    lab: Lab,
    scenario: str,
    impl: str = "pyvrrp",
    timing: Timing = TEST_TIMING,
    guards: Guards = ALL_GUARDS,
    *,
    on_revert: Callable[[dict[str, DaemonNode]], None] | None = None,
) -> Result:
    """Run one scenario in ``lab`` (up, with gateway, no real servers) and measure it.

    The window measured is [fault start, revert + ``settle_s``]; the daemons, helpers and
    nft tables are stopped/removed before returning (the namespaces are the caller's).
    """
    label = impl if impl == "keepalived" else f"pyvrrp ({guards.label})"
    result = Result(impl=label, scenario=scenario)
    faults = Faults(lab)
    recorders: list[LineRecorder] = []
    sampler: HolderSampler | None = None
    nodes: dict[str, DaemonNode] = {}
    try:
        start_http(lab)
        nodes = start_pair(lab, impl, timing, guards)
        sampler = HolderSampler(lab, timing.sample_period_s)
        sampler.start()
        arp_args = [LAB_IFNAME, VIP4, lab.ip("client"), str(timing.arp_period_s)]
        arp = LineRecorder(lab, "client", "arp", [sys.executable, "-I", "-c", ARP_PROBER_SRC, *arp_args])
        recorders.append(arp)
        http_argv = probe.command(VIP4, port=HTTP_PORT, interval_s=0.05, timeout_s=0.5)
        http = LineRecorder(lab, "client", "http", http_argv)
        recorders.append(http)
        time.sleep(timing.baseline_s)
        offsets = {h: log_size(n) for h, n in nodes.items()}
        t_fault = time.time()
        t_revert = _apply(scenario, lab, faults, nodes, timing, result)
        result.fault_s = round(t_revert - t_fault, 3)
        at_revert = {h: log_size(n) for h, n in nodes.items()}
        if on_revert is not None:
            on_revert(nodes)
        time.sleep(timing.settle_s)
        t_end = time.time()
        result.transitions = sum(transitions_in(n, offsets[h]) for h, n in nodes.items())
        result.transitions_fault = sum(transitions_in(n, offsets[h], at_revert[h]) for h, n in nodes.items())
        result.final = {h: n.state() for h, n in nodes.items()}
        result.takeover_requests = sum(events_in(n, offsets[h], "takeover_pending") for h, n in nodes.items())
        result.conflicts = sum(events_in(n, offsets[h], "dual_master_conflict") for h, n in nodes.items())
        for h, n in nodes.items():
            if not n.alive():
                result.errors.append(f"{impl} on {h} died: {n.log_text()[-800:]}")
        sampler.stop()
        for rec in recorders:
            rec.stop()
        compute(result, sampler.samples, arp.records(), probe.read(http.path), t_fault, t_revert, t_end)
        return result
    finally:
        faults.clear()
        with contextlib.suppress(Exception):
            lab.ip_cmd(SWITCH, "link", "set", port("lb1"), "up", check=False)
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        for rec in recorders:
            with contextlib.suppress(Exception):
                rec.stop()
        for node in nodes.values():
            for pid in daemon_pids(node):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                node.stop(timeout_s=5.0)


def node_logs(lab: Lab) -> str:
    """The tail of every daemon log in ``lab.run_dir`` (for assertion messages)."""
    parts = []
    for path in sorted(Path(lab.run_dir).glob("*-lb*/console.log")):
        parts.append(f"--- {path.parent.name}:\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)
