"""A routed lab (issue 17): BIRD 2 router, two directors each running pyvrrp + ExaBGP, a client.

    client (10.1.0.2) --- router (BIRD 2, ECMP) --- br0 10.0.0.0/24 --- d1 (10.0.0.11), d2 (10.0.0.12)

The service IP 198.51.100.10 is *not* on any router subnet: the router reaches it only through
the BGP routes the directors announce (ExaBGP 4.2, fed by ``pyvrrp exabgp-process``).  Each
director answers HTTP on :80 with its name; its "real server" health check is a TCP check of
127.0.0.1:8081 (a listener the test kills to fail the health).

Measured and printed (the figures in docs/benchmarks.md, "BGP announcement"):
- active-active: the split of 1,000 new connections; the time from a director's health
  failure to its route leaving the router's FIB; requests failed meanwhile;
- active-backup: kill -9 of the MASTER's pyvrrp -> the backup holds the VIP -> the router
  moves (never before the backup holds it); SIGTERM -> the router moves before the VIP goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyvrrp.lab.topology import destroy_prefix

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")
PYVRRP = str(REPO / ".venv" / "bin" / "pyvrrp")
VIP = "198.51.100.10"
ROUTER, D1, D2 = "10.0.0.1", "10.0.0.11", "10.0.0.12"
ADDR = {"d1": D1, "d2": D2}

pytestmark = pytest.mark.skipif(
    not (shutil.which("bird") and shutil.which("exabgp")), reason="needs bird2 and exabgp (apt-get install)"
)

RESPONDER = textwrap.dedent(
    """
    import http.server, sys
    import time
    name, port, bind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        def do_GET(self):
            if self.path.startswith("/slow"):  # a request that stays open 0.3 s
                time.sleep(0.3)
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer((bind, port), H).serve_forever()
    """
)

CLIENT = textwrap.dedent(
    """
    import http.client, json, os, sys, time
    vip, out, stop, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    path = sys.argv[5] if len(sys.argv) > 5 else "/"
    n = 0
    with open(out, "w") as f:
        while (count and n < count) or (not count and not os.path.exists(stop)):
            n += 1
            t = time.time()
            try:
                c = http.client.HTTPConnection(vip, 80, timeout=3)
                c.request("GET", path)
                who = c.getresponse().read().decode()
                c.close()
                f.write(json.dumps({"t": t, "who": who}) + "\\n")
            except Exception as e:
                f.write(json.dumps({"t": t, "err": repr(e)}) + "\\n")
            f.flush()
            if not count:
                time.sleep(0.01)
    """
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


def wait_for(pred: Any, timeout: float, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what or pred}")
        time.sleep(interval)


BFD_PROTOCOL = (
    'protocol bfd {{ interface "{dev}" {{ min rx interval 100 ms; min tx interval 100 ms; '
    "multiplier 3; }}; }}"
)


@dataclass
class BgpLab:
    prefix: str
    run: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def x(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns(node), *argv, check=check)

    def spawn(self, key: str, node: str, *argv: str, env: dict[str, str] | None = None) -> None:
        log = open(self.run / f"{key}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[key] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[key]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)

    def log(self, key: str) -> str:
        path = self.run / f"{key}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------ router

    def fib(self, prefix: str = f"{VIP}/32") -> list[str]:
        """The router's kernel next hops for the VIP (what traffic follows)."""
        out = self.x("router", "ip", "-j", "route", "show", "exact", prefix, check=False).stdout
        routes = json.loads(out or "[]")
        if not routes:
            return []
        r = routes[0]
        if "nexthops" in r:
            return sorted(h["gateway"] for h in r["nexthops"])
        return [r["gateway"]] if "gateway" in r else []

    def birdc(self, *cmd: str) -> str:
        return self.x("router", "birdc", "-s", str(self.run / "bird.ctl"), *cmd, check=False).stdout

    def bird_best(self) -> str | None:
        """The neighbour BIRD marks best ('*') for the VIP, with its MED."""
        best = False
        for line in self.birdc("show", "route", f"{VIP}/32", "all").splitlines():
            if "unicast [" in line:
                best = " * " in line
            elif line.strip().startswith("via ") and best:
                return line.split()[1]
        return None

    def bird_routes(self) -> list[tuple[str, int | None, bool]]:
        """(next hop, MED, best) of every route BIRD holds for the VIP."""
        out: list[tuple[str, int | None, bool]] = []
        best, hop = False, ""
        for line in self.birdc("show", "route", f"{VIP}/32", "all").splitlines():
            text = line.strip()
            if "unicast [" in line:
                best = " * " in line
            elif text.startswith("via "):
                hop = text.split()[1]
                out.append((hop, None, best))
            elif text.startswith("BGP.med:") and out:
                out[-1] = (out[-1][0], int(text.split()[1]), out[-1][2])
        return sorted(out)

    # ------------------------------------------------------------------ directors

    def state(self, node: str) -> dict[str, Any]:
        sock = str(self.run / node / "pyvrrp.sock")
        out = self.x(node, PYVRRP, "state", "--socket", sock, "--json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def announce(self, node: str) -> dict[str, Any]:
        items = self.state(node).get("announce") or [{}]
        return items[0]

    def has_vip(self, node: str) -> bool:
        return f"{VIP}/32" in self.x(node, "ip", "-o", "addr", "show", "dev", "eth0").stdout

    def start_pyvrrp(self, node: str, body: str) -> None:
        d = self.run / node
        (d / "state").mkdir(parents=True, exist_ok=True)
        cfg = d / "pyvrrp.toml"
        cfg.write_text(
            f'[global_defs]\nrouter_id = "{node}"\ncontrol_socket = "{d}/pyvrrp.sock"\n'
            f'state_dir = "{d}/state"\n\n{body}'
        )
        self.spawn(f"pyvrrp-{node}", node, PYVRRP, "run", "-f", str(cfg), "--log-format", "json")
        wait_for(lambda: self.state(node), 20, what=f"{node}'s pyvrrp")

    def start_exabgp(self, node: str) -> None:
        d = self.run / node
        conf = d / "exabgp.conf"
        conf.write_text(
            textwrap.dedent(
                f"""
                process pyvrrp {{
                    run {PYVRRP} exabgp-process --socket {d}/pyvrrp.sock;
                    encoder json;
                }}
                neighbor {ROUTER} {{
                    router-id {ADDR[node]};
                    local-address {ADDR[node]};
                    local-as 65001;
                    peer-as 65000;
                    hold-time 3;
                    family {{ ipv4 unicast; }}
                    api {{ processes [ pyvrrp ]; neighbor-changes; }}
                }}
                """
            )
        )
        env = {
            "exabgp_daemon_drop": "false",  # the lab's control socket is root's
            "exabgp_daemon_user": "root",
            "exabgp_api_cli": "false",
            "exabgp_log_destination": "stdout",
            "exabgp_daemon_daemonize": "false",
        }
        self.spawn(f"exabgp-{node}", node, "exabgp", str(conf), env=env)

    def start_bird_director(self, node: str, bfd: bool = False) -> None:
        """BIRD 2 as the director's speaker: it learns pyvrrp's kernel table 100."""
        d = self.run / node
        bfd_proto = BFD_PROTOCOL.format(dev="eth0") if bfd else ""
        bfd_on = "bfd on;" if bfd else ""
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "bird.conf"
        conf.write_text(
            textwrap.dedent(
                f"""
                router id {ADDR[node]};
                log "{d}/bird.log" all;
                protocol device {{ scan time 10; }}
                {bfd_proto}
                protocol kernel pyvrrp_in {{
                    kernel table 100;
                    learn;
                    ipv4 {{ import all; export none; }};
                }}
                protocol bgp upstream {{
                    local {ADDR[node]} as 65001;
                    neighbor {ROUTER} as 65000;
                    hold time 3; keepalive time 1; error wait time 1, 5; connect retry time 1;
                    {bfd_on}
                    ipv4 {{
                        import none;
                        # BIRD sends a MED over eBGP only when the export filter sets it
                        export filter {{
                            if proto = "pyvrrp_in" then {{ bgp_med = krt_metric; accept; }}
                            reject;
                        }};
                        next hop self;
                    }};
                }}
                """
            )
        )
        self.spawn(f"bird-{node}", node, "bird", "-f", "-c", str(conf), "-s", str(d / "bird.ctl"))

    def start_web(self, node: str) -> None:
        self.spawn(f"web-{node}", node, PY, "-c", RESPONDER, node, "80", "0.0.0.0")
        self.spawn(f"health-{node}", node, PY, "-c", RESPONDER, node, "8081", "127.0.0.1")

    # ------------------------------------------------------------------ client

    def requests(self, count: int) -> list[dict[str, Any]]:
        out = self.run / f"client-{secrets.token_hex(2)}.jsonl"
        self.x("client", PY, "-c", CLIENT, VIP, str(out), "/nonexistent", str(count))
        return [json.loads(line) for line in out.read_text().splitlines()]

    @contextlib.contextmanager
    def traffic(self, path: str = "/") -> Iterator[list[dict[str, Any]]]:
        """Requests in a loop (new connection each) for the duration of the block."""
        out = self.run / f"loop-{secrets.token_hex(2)}.jsonl"
        stop = self.run / f"stop-{secrets.token_hex(2)}"
        key = f"client-{out.stem}"
        self.spawn(key, "client", PY, "-c", CLIENT, VIP, str(out), str(stop), "0", path)
        records: list[dict[str, Any]] = []
        try:
            yield records
        finally:
            stop.touch()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.procs[key].wait(timeout=10)
            if out.exists():
                records.extend(json.loads(line) for line in out.read_text().splitlines() if line.strip())


@dataclass
class Sample:
    t: float  # monotonic, after the three reads
    fib: list[str]  # the router's next hops for the VIP
    holders: frozenset[str]  # the directors' addresses holding the VIP

    def next_hop_holds(self) -> bool:
        return bool(self.fib) and all(h in self.holders for h in self.fib)


@contextlib.contextmanager
def watch(lab: BgpLab) -> Iterator[list[Sample]]:
    """Sample the router's FIB and the directors' VIPs continuously (a thread) during the block."""
    import threading

    samples: list[Sample] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                fib = lab.fib()
                holders = frozenset(ADDR[n] for n in ("d1", "d2") if lab.has_vip(n))
                samples.append(Sample(time.monotonic(), fib, holders))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=10)


def never_to_a_non_holder(samples: list[Sample], *, forwarded: bool = False, gap_s: float = 0.0) -> float:
    """Issue 17: no moment where the router prefers a node that does not hold the VIP.

    ``forwarded``: also accept a next hop without the VIP while another director holds it
    (the backup forwards to the holder over the VRRP segment: SIGTERM and speaker death
    withdraw *first*, on purpose).  ``gap_s``: the longest VRRP handover (nobody holds the
    VIP) allowed.  Returns the longest such gap seen."""
    assert len(samples) > 10, samples
    longest, gap_start = 0.0, None
    for s in samples:
        if not s.fib:
            raise AssertionError(f"the router had no route at {s}")
        if s.holders:
            if gap_start is not None:
                longest, gap_start = max(longest, s.t - gap_start), None
            if not s.next_hop_holds():
                assert forwarded, f"the router preferred {s.fib}, which does not hold the VIP ({s})"
        elif gap_start is None:
            gap_start = s.t
    assert gap_start is None, "nobody holds the VIP at the end"
    assert longest <= gap_s, f"nobody held the VIP for {longest:.3f} s (allowed {gap_s} s)"
    return longest


def _build(lab: BgpLab) -> None:
    for n in ("router", "client", "d1", "d2"):
        sh("ip", "netns", "add", lab.ns(n))
        lab.x(n, "ip", "link", "set", "lo", "up")
    r = lab.ns("router")
    lab.x("router", "ip", "link", "add", "br0", "type", "bridge")
    lab.x("router", "ip", "link", "set", "br0", "up")
    lab.x("router", "ip", "addr", "add", f"{ROUTER}/24", "dev", "br0")
    for i, n in enumerate(("d1", "d2"), start=1):
        lab.x(
            "router", "ip", "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", lab.ns(n)
        )
        lab.x("router", "ip", "link", "set", f"p{i}", "master", "br0", "up")
        lab.x(n, "ip", "addr", "add", f"{ADDR[n]}/24", "dev", "eth0")
        lab.x(n, "ip", "link", "set", "eth0", "up")
        lab.x(n, "ip", "route", "add", "default", "via", ROUTER)
        # active-backup: the backup forwards what the router sends it to the VIP holder on the
        # VRRP segment (docs/lvs-at-scale.md); the holder's local address wins over this route
        lab.x(n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.x(n, "sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
        lab.x(n, "sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0")
    lab.x(
        "router", "ip", "link", "add", "cl", "type", "veth", "peer", "name", "eth0", "netns", lab.ns("client")
    )
    lab.x("router", "ip", "addr", "add", "10.1.0.1/24", "dev", "cl")
    lab.x("router", "ip", "link", "set", "cl", "up")
    lab.x("client", "ip", "addr", "add", "10.1.0.2/24", "dev", "eth0")
    lab.x("client", "ip", "link", "set", "eth0", "up")
    lab.x("client", "ip", "route", "add", "default", "via", "10.1.0.1")
    lab.x("router", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    lab.x("router", "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")  # L4: spread one client
    del r
    bird = lab.run / "bird.conf"
    bird.write_text(router_bird_conf(lab))
    lab.spawn("bird", "router", "bird", "-f", "-c", str(bird), "-s", str(lab.run / "bird.ctl"))


def router_bird_conf(lab: BgpLab, bfd: tuple[str, ...] = ()) -> str:
    """The router's BIRD config; ``bfd``: the directors whose sessions run BFD."""
    bfd_proto = BFD_PROTOCOL.format(dev="br0") if bfd else ""
    on = {n: " bfd on;" if n in bfd else "" for n in ("d1", "d2")}
    return textwrap.dedent(
        f"""
            router id {ROUTER};
            log "{lab.run}/bird-router.log" all;
            protocol device {{ scan time 10; }}
            {bfd_proto}
            protocol kernel {{
                merge paths on;           # ECMP into the kernel
                ipv4 {{ import none; export all; }};
            }}
            template bgp director {{
                local {ROUTER} as 65000;
                hold time 3;
                keepalive time 1;
                error wait time 1, 5;     # the default keeps a dropped session down for a minute
                connect retry time 1;
                ipv4 {{ import all; export none; }};
            }}
            protocol bgp d1 from director {{ neighbor {D1} as 65001;{on["d1"]} }}
            protocol bgp d2 from director {{ neighbor {D2} as 65001;{on["d2"]} }}
            """
    )


@pytest.fixture
def bgp_lab() -> Iterator[BgpLab]:
    prefix = f"pv{secrets.token_hex(3)}"
    run = Path(tempfile.gettempdir()) / f"{prefix}-run"
    run.mkdir()
    lab = BgpLab(prefix, run)
    try:
        _build(lab)
        for n in ("d1", "d2"):
            lab.start_web(n)
        yield lab
    except BaseException:
        for key in ("pyvrrp-d1", "pyvrrp-d2", "exabgp-d1", "exabgp-d2", "bird"):
            print(f"----- {key}\n{lab.log(key)[-3000:]}")
        raise
    finally:
        for proc in lab.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in lab.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        destroy_prefix(prefix)


def in_flight_only(errors: list[dict[str, Any]], moments: list[float], per_change: int = 2) -> None:
    """Every failed request was open across a change (a route or VIP-holder move), at most
    ``per_change`` per change.  Such a request's TCP connection moves to a director that has
    no socket for it (no connection sync in this lab): the issue's "in flight" exception."""
    for e in errors:
        assert any(m - 3.5 <= e["t"] <= m + 0.5 for m in moments), (e, moments)
    assert len(errors) <= per_change * len(moments), errors


def _summary(records: list[dict[str, Any]]) -> tuple[Counter[str], list[dict[str, Any]]]:
    return Counter(r["who"] for r in records if "who" in r), [r for r in records if "err" in r]


AA = """
[virtual_server."198.51.100.10:80"]
delay_loop = 0.5
alpha = true

[virtual_server."198.51.100.10:80".announce]
speaker = "exabgp"
mode = "active-active"
quorum = 1
withdraw_drain = 1.0

[[virtual_server."198.51.100.10:80".real_server]]
ip = "127.0.0.1"
port = 8081
tcp_check = { connect_timeout = 0.5, retry = 0 }
"""


def test_active_active_ecmp_health_withdraw_and_speaker_death(bgp_lab: BgpLab) -> None:
    lab = bgp_lab
    for n in ("d1", "d2"):
        lab.x(n, "ip", "addr", "add", f"{VIP}/32", "dev", "lo")  # active-active: every director serves
        lab.start_pyvrrp(n, AA)
        lab.start_exabgp(n)
    wait_for(lambda: lab.fib() == [D1, D2], 40, what="both directors' routes in the router's FIB (ECMP)")
    for n in ("d1", "d2"):
        a = lab.announce(n)
        assert a["announced"] and a["med"] == 100 and a["mode"] == "active-active", a
        assert a["speaker"]["process"] == "connected", a
        assert wait_for(lambda n=n: lab.announce(n)["acknowledged"], 5), n
        assert wait_for(lambda n=n: lab.announce(n)["speaker"]["peers"].get(ROUTER) == "up", 10), n
    table = lab.x("d1", PYVRRP, "state", "--socket", str(lab.run / "d1" / "pyvrrp.sock")).stdout
    print(table)
    assert f"{VIP}/32" in table and "announced" in table and "speaker exabgp: process connected" in table

    # 1. ECMP: 1,000 new connections from one client spread over both directors
    records = lab.requests(1000)
    split, errors = _summary(records)
    print(f"\nactive-active split over {len(records)} connections: {dict(split)}, failed {len(errors)}")
    assert not errors, errors[:5]
    assert set(split) == {"d1", "d2"} and min(split.values()) >= 300, split

    # 2. d1's real server fails: d1 withdraws, the router's FIB follows, no request fails
    with lab.traffic() as loop:
        time.sleep(1.0)
        t0 = time.monotonic()
        lab.kill("health-d1")
        wait_for(lambda: lab.fib() == [D2], 15, interval=0.01, what="d1's route leaving the router")
        moved = time.monotonic() - t0
        moments = [time.time()]
        time.sleep(1.0)
    split, errors = _summary(loop)
    a = lab.announce("d1")
    print(
        f"health failure -> router FIB without d1: {moved * 1000:.0f} ms (delay_loop 0.5 s, "
        f"connect_timeout 0.5 s); {len(loop)} requests, {len(errors)} failed, split {dict(split)}"
    )
    assert not a["announced"] and "0 of 1 real servers healthy" in a["why"], a
    assert moved < 5.0
    in_flight_only(errors, moments)

    # 3. d2's speaker goes silent (SIGSTOP ExaBGP): the router drops the route after the BGP
    #    hold time (3 s, keepalive 1 s), and takes it back once the session is re-established
    t0 = time.monotonic()
    lab.kill("exabgp-d2", signal.SIGSTOP)
    wait_for(lambda: lab.fib() == [], 15, interval=0.01, what="the hold time to expire at the router")
    silent = time.monotonic() - t0
    wait_for(lambda: lab.announce("d2")["speaker"]["process"] == "not answering", 10, interval=0.1)
    assert "bgp_speaker_lost" in lab.log("pyvrrp-d2")
    lab.kill("exabgp-d2", signal.SIGCONT)
    wait_for(lambda: lab.fib() == [D2], 30, interval=0.05, what="d2's session back")
    print(f"ExaBGP stopped (SIGSTOP): router drops d2's route after {silent * 1000:.0f} ms (hold time 3 s)")
    assert 1.5 < silent < 6.0

    # 3. d2's speaker dies (kill -9 ExaBGP): the router drops the route at once (TCP closed),
    #    and d2's pyvrrp notices and shows it
    t0 = time.monotonic()
    lab.kill("exabgp-d2")
    wait_for(lambda: lab.fib() == [], 10, interval=0.01, what="d2's route leaving the router")
    gone = time.monotonic() - t0
    lost = wait_for(lambda: lab.announce("d2")["speaker"]["process"] == "lost", 10, interval=0.1)
    noticed = time.monotonic() - t0
    print(
        f"ExaBGP kill -9: router route gone after {gone * 1000:.0f} ms, pyvrrp shows 'lost' after "
        f"{noticed * 1000:.0f} ms"
    )
    assert lost


AB = """
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
version = 3
priority = {prio}
advert_int = 0.2
virtual_ipaddress = ["198.51.100.10/32"]
garp_master_delay = 0

[vrrp_instance.VI_1.announce]
speaker = "exabgp"
mode = "active-backup"
med_preferred = 100
med_backup = 200
withdraw_drain = 1.0
{extra}
"""


def test_active_backup_med_kill9_and_sigterm(bgp_lab: BgpLab) -> None:
    lab = bgp_lab
    for n, prio in (("d2", 100), ("d1", 150)):
        lab.x(n, "ip", "route", "add", f"{VIP}/32", "dev", "eth0")  # to the VIP holder, on the segment
        lab.start_pyvrrp(n, AB.format(prio=prio, extra=""))
        lab.start_exabgp(n)
    wait_for(lambda: lab.fib() == [D1], 40, what="only d1 (MASTER) in the router's FIB")
    wait_for(lambda: lab.announce("d2").get("announced"), 20, what="d2 announcing (backup MED)")
    wait_for(lambda: len(lab.bird_routes()) == 2, 10, what="both routes in BIRD")
    assert lab.bird_best() == D1
    assert lab.bird_routes() == [(D1, 100, True), (D2, 200, False)], lab.birdc("show", "route", "all")
    a1, a2 = lab.announce("d1"), lab.announce("d2")
    assert (a1["announced"], a1["med"], a2["announced"], a2["med"]) == (True, 100, True, 200), (a1, a2)
    assert "MASTER" in a1["why"] and "BACKUP" in a2["why"]
    split, errors = _summary(lab.requests(50))
    assert split == {"d1": 50} and not errors

    # kill -9 d1's pyvrrp: its ExaBGP process keeps the route for the orphan hold (the time d2
    # needs to take the VIP), then withdraws; the router must not move before d2 holds the VIP
    with lab.traffic() as loop, watch(lab) as samples:
        time.sleep(0.5)
        t0 = time.monotonic()
        lab.kill("pyvrrp-d1")
        t_vip = wait_for(lambda: lab.has_vip("d2") and time.monotonic(), 10, interval=0.01)
        moments = [time.time()]
        t_move = wait_for(lambda: lab.fib() == [D2] and time.monotonic(), 15, interval=0.01)
        moments.append(time.time())
        time.sleep(1.0)
    split, errors = _summary(loop)
    print(
        f"\nactive-backup kill -9 of the master's pyvrrp: d2 holds the VIP after "
        f"{(t_vip - t0) * 1000:.0f} ms, "
        f"the router moves after {(t_move - t0) * 1000:.0f} ms (orphan hold {a1['orphan_hold_s']} s); "
        f"{len(loop)} requests, {len(errors)} failed, {dict(split)}"
    )
    assert t_vip <= t_move, "the router moved to d2 before d2 held the VIP"
    never_to_a_non_holder(samples)  # strict: kill -9 leaves d1's VIP; the router waits for d2's
    assert t_move - t0 < 10
    in_flight_only(errors, moments)

    # d1 comes back (preempts); its ExaBGP process follows the new daemon
    lab.start_pyvrrp("d1", AB.format(prio=150, extra=""))
    wait_for(lambda: lab.fib() == [D1], 30, what="d1 preferred again")

    # SIGTERM d1: the withdraw goes out first, the router moves, then the VIP is released
    with lab.traffic() as loop, watch(lab) as samples:
        time.sleep(0.5)
        t0 = time.monotonic()
        lab.procs["pyvrrp-d1"].send_signal(signal.SIGTERM)
        t_move = wait_for(lambda: lab.fib() == [D2] and time.monotonic(), 10, interval=0.01)
        t_gone = wait_for(lambda: not lab.has_vip("d1") and time.monotonic(), 10, interval=0.01)
        moments = [time.time()]  # the VIP moves to d2 (the route moved a drain time earlier)
        t_d2 = wait_for(lambda: lab.has_vip("d2") and time.monotonic(), 10, interval=0.01)
        lab.procs["pyvrrp-d1"].wait(timeout=15)
        time.sleep(1.0)
    print(
        f"\nSIGTERM of the master: router moved to d2 after {(t_move - t0) * 1000:.0f} ms, "
        f"d1 released the VIP after {(t_gone - t0) * 1000:.0f} ms, "
        f"d2 held it after {(t_d2 - t0) * 1000:.0f} ms"
    )
    assert t_move < t_gone, "the VIP went before the router moved away"
    never_to_a_non_holder(samples, forwarded=True, gap_s=1.0)
    split, errors = _summary(loop)
    events = [json.loads(line) for line in lab.log("pyvrrp-d1").splitlines() if line.startswith("{")]
    names = [e.get("event") for e in events]
    assert "bgp_withdraw_done" in names, names[-30:]
    last_withdraw = max(i for i, n in enumerate(names) if n == "bgp_withdraw")
    first_release = next(
        i for i, n in enumerate(names) if i > last_withdraw and n in ("vip_removed", "state_changed")
    )
    assert last_withdraw < first_release
    print(f"SIGTERM: {len(loop)} requests, {len(errors)} failed, {dict(split)}")
    wall0 = time.time() - (time.monotonic() - t0)
    for e in errors:
        print(f"  failed at {e['t'] - wall0:+.3f} s: {e['err']}")
    for e in events:
        if e.get("event") in (
            "bgp_withdraw",
            "bgp_withdraw_done",
            "vip_removed",
            "state_changed",
            "daemon_stopped",
        ):
            print(f"  {e.get('timestamp')} {e.get('event')}")
    assert lab.fib() == [D2]
    in_flight_only(errors, moments, per_change=1)

    # the speaker dies under the MASTER (kill -9 ExaBGP) with on_speaker_lost = "fault": the
    # router drops d1's route at once (the kernel closes the session), d1's pyvrrp notices,
    # shows it and goes FAULT, so d2 (whose speaker still announces) takes the VIP
    lab.start_pyvrrp("d1", AB.format(prio=150, extra='on_speaker_lost = "fault"'))
    wait_for(lambda: lab.fib() == [D1], 30, what="d1 preferred again")
    with lab.traffic() as loop, watch(lab) as samples:
        time.sleep(0.5)
        t0 = time.monotonic()
        wall_kill = time.time()
        lab.kill("exabgp-d1")
        t_move = wait_for(lambda: lab.fib() == [D2] and time.monotonic(), 10, interval=0.01)
        t_d2 = wait_for(lambda: lab.has_vip("d2") and time.monotonic(), 15, interval=0.02)
        wall_d2 = time.time()
        time.sleep(1.0)
    never_to_a_non_holder(samples, forwarded=True, gap_s=1.0)
    split, errors = _summary(loop)
    view = lab.state("d1")
    a = view["announce"][0]
    print(
        f"ExaBGP kill -9 under the MASTER (on_speaker_lost = fault): router on d2 after "
        f"{(t_move - t0) * 1000:.0f} ms, d2 holds the VIP after {(t_d2 - t0) * 1000:.0f} ms; "
        f"{len(loop)} requests, {len(errors)} failed (in the VRRP handover gap)"
    )
    assert a["speaker"]["process"] == "lost" and not a["announced"], a
    assert view["instances"][0]["state"] == "FAULT", view["instances"][0]
    assert "bgp_speaker_lost" in lab.log("pyvrrp-d1")
    # FAULT releases the VIP at once and d2 takes it Skew_Time later: requests fail only in
    # that VRRP gap (nobody holds the VIP; d2 answers "no route to host"), never after it
    assert all(wall_kill <= e["t"] <= wall_d2 + 0.3 for e in errors), (wall_kill, wall_d2, errors)


BIRD_AA = """
[virtual_server."198.51.100.10:80"]
delay_loop = 0.5
alpha = true

[virtual_server."198.51.100.10:80".announce]
speaker = "bird"
mode = "active-active"
bird_socket = "{run}/{node}/bird.ctl"
withdraw_drain = 0.5

[[virtual_server."198.51.100.10:80".real_server]]
ip = "127.0.0.1"
port = 8081
tcp_check = {{ connect_timeout = 0.5, retry = 0 }}
"""


def test_bird_speaker_active_active_health_and_kill9(bgp_lab: BgpLab) -> None:
    """BIRD 2 on the directors: pyvrrp's routes in kernel table 100 on a tun device that dies
    with pyvrrp, so even kill -9 withdraws at once (BIRD sees the routes go)."""
    lab = bgp_lab
    for n in ("d1", "d2"):
        lab.x(n, "ip", "addr", "add", f"{VIP}/32", "dev", "lo")
        lab.start_bird_director(n)
        lab.start_pyvrrp(n, BIRD_AA.format(run=lab.run, node=n))
    wait_for(lambda: lab.fib() == [D1, D2], 40, what="both directors' routes (via BIRD) in the router's FIB")
    # the MED comes from the kernel route's metric (BIRD: bgp_med = krt_metric)
    assert [(hop, med) for hop, med, _ in lab.bird_routes()] == [(D1, 100), (D2, 100)]
    for n in ("d1", "d2"):
        a = wait_for(lambda n=n: (x := lab.announce(n))["speaker"]["peers"].get("upstream") == "up" and x, 10)
        assert a["announced"] and a["med"] == 100 and a["speaker"]["process"] == "connected", a
        assert a["acknowledged"], a
    split, errors = _summary(lab.requests(300))
    print(f"\nBIRD speaker, active-active split over 300 connections: {dict(split)}, failed {len(errors)}")
    assert set(split) == {"d1", "d2"} and not errors

    t0 = time.monotonic()
    lab.kill("health-d1")
    wait_for(lambda: lab.fib() == [D2], 15, interval=0.01, what="d1's route leaving the router")
    moved = time.monotonic() - t0
    a = lab.announce("d1")
    assert not a["announced"] and "0 of 1 real servers healthy" in a["why"], a
    assert VIP not in lab.x("d1", "ip", "route", "show", "table", "100").stdout

    t0 = time.monotonic()
    lab.kill("pyvrrp-d2")  # kill -9: nothing of pyvrrp runs any more; the kernel withdraws for it
    wait_for(lambda: lab.fib() == [], 10, interval=0.01, what="d2's route leaving the router")
    gone = time.monotonic() - t0
    print(
        f"BIRD speaker: health failure -> router without d1 {moved * 1000:.0f} ms; kill -9 of pyvrrp -> "
        f"router without d2 {gone * 1000:.0f} ms"
    )
    assert gone < 5.0
    assert lab.x("d2", "ip", "route", "show", "table", "100").stdout.strip() == ""


BIRD_AB = """
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
version = 3
priority = {prio}
advert_int = 0.2
virtual_ipaddress = ["198.51.100.10/32"]
garp_master_delay = 0

[vrrp_instance.VI_1.announce]
speaker = "bird"
mode = "active-backup"
bird_socket = "{run}/{node}/bird.ctl"
withdraw_drain = 1.0
"""


def test_bird_speaker_active_backup_meds_and_sigterm(bgp_lab: BgpLab) -> None:
    """BIRD on the directors, active-backup: the MED follows the VRRP role (a metric change in
    the kernel table), and SIGTERM moves the router before the VIP goes."""
    lab = bgp_lab
    for n, prio in (("d2", 100), ("d1", 150)):
        lab.x(n, "ip", "route", "add", f"{VIP}/32", "dev", "eth0")
        lab.start_bird_director(n)
        lab.start_pyvrrp(n, BIRD_AB.format(prio=prio, run=lab.run, node=n))
    wait_for(lambda: lab.fib() == [D1], 40, what="only d1 (MASTER) in the router's FIB")
    wait_for(lambda: len(lab.bird_routes()) == 2, 20, what="both routes in the router's BIRD")
    assert lab.bird_routes() == [(D1, 100, True), (D2, 200, False)], lab.birdc("show", "route", "all")
    with lab.traffic() as loop, watch(lab) as samples:
        time.sleep(0.5)
        t0 = time.monotonic()
        lab.procs["pyvrrp-d1"].send_signal(signal.SIGTERM)
        t_move = wait_for(lambda: lab.fib() == [D2] and time.monotonic(), 10, interval=0.01)
        t_gone = wait_for(lambda: not lab.has_vip("d1") and time.monotonic(), 10, interval=0.01)
        moments = [time.time()]
        wait_for(lambda: lab.has_vip("d2"), 10, interval=0.01)
        lab.procs["pyvrrp-d1"].wait(timeout=15)
        # d2 is MASTER now: its route carries the preferred MED (metric 200 -> 100 in table 100)
        wait_for(lambda: lab.bird_routes() == [(D2, 100, True)], 10, what="d2 preferred")
        time.sleep(0.5)
    split, errors = _summary(loop)
    print(
        f"\nBIRD speaker, SIGTERM of the master: router on d2 after {(t_move - t0) * 1000:.0f} ms, "
        f"d1 released the VIP after {(t_gone - t0) * 1000:.0f} ms; {len(loop)} requests, "
        f"{len(errors)} failed, {dict(split)}"
    )
    assert t_move < t_gone
    never_to_a_non_holder(samples, forwarded=True, gap_s=1.0)
    in_flight_only(errors, moments, per_change=1)


def test_reload_withdraws_a_prefix_that_left_the_config(bgp_lab: BgpLab) -> None:
    lab = bgp_lab
    body = AB.format(prio=150, extra='prefixes = ["198.51.100.10/32", "198.51.100.11/32"]')
    lab.start_pyvrrp("d1", body)
    lab.start_exabgp("d1")
    wait_for(lambda: lab.fib() == [D1] and lab.fib("198.51.100.11/32") == [D1], 40, what="both prefixes")
    (lab.run / "d1" / "pyvrrp.toml").write_text(
        (lab.run / "d1" / "pyvrrp.toml").read_text().replace(', "198.51.100.11/32"', "")
    )
    lab.kill("pyvrrp-d1", signal.SIGHUP)
    wait_for(lambda: lab.fib("198.51.100.11/32") == [], 10, what="198.51.100.11/32 withdrawn by the reload")
    assert lab.fib() == [D1] and lab.has_vip("d1")
    assert [a["prefix"] for a in lab.state("d1")["announce"]] == [f"{VIP}/32"]


def _active_backup_pair(lab: BgpLab, extra: str = "") -> None:
    for n, prio in (("d2", 100), ("d1", 150)):
        lab.x(n, "ip", "route", "add", f"{VIP}/32", "dev", "eth0")  # to the VIP holder, on the segment
        lab.start_pyvrrp(n, AB.format(prio=prio, extra=extra))
        lab.start_exabgp(n)
    wait_for(lambda: lab.fib() == [D1], 40, what="only d1 (MASTER) in the router's FIB")
    wait_for(lambda: lab.announce("d2").get("announced"), 20, what="d2 announcing (backup MED)")


def test_active_backup_sigterm_cycles_lose_no_request(bgp_lab: BgpLab) -> None:
    """SIGTERM of the MASTER, three times: withdraw, stop taking new connections, let the open
    ones finish (bounded by withdraw_drain), then release the VIP.  Two clients: new connection
    per request, one with quick requests, one whose requests stay open 0.3 s (a connection
    still open at the VIP move would be reset or time out: the failure this test catches)."""
    lab = bgp_lab
    _active_backup_pair(lab)
    for cycle in range(3):
        with lab.traffic() as fast, lab.traffic("/slow") as slow, watch(lab) as samples:
            time.sleep(1.0)
            t0 = time.monotonic()
            lab.procs["pyvrrp-d1"].send_signal(signal.SIGTERM)
            t_gone = wait_for(lambda: not lab.has_vip("d1") and time.monotonic(), 10, interval=0.01)
            t_d2 = wait_for(lambda: lab.has_vip("d2") and time.monotonic(), 10, interval=0.01)
            lab.procs["pyvrrp-d1"].wait(timeout=15)
            time.sleep(2.0)  # a SYN dropped during the drain is retransmitted after 1 s
        gap = never_to_a_non_holder(samples, forwarded=True, gap_s=1.0)
        t_move = next(s.t for s in samples if s.fib == [D2])
        (_, fast_err), (_, slow_err) = _summary(fast), _summary(slow)
        log = [json.loads(x) for x in lab.log("pyvrrp-d1").splitlines() if x.startswith("{")]
        drained = [e for e in log if e.get("event") == "bgp_withdrawn_before_release"][-1]
        print(
            f"\nSIGTERM cycle {cycle + 1}: router on d2 after {(t_move - t0) * 1000:.0f} ms, d1 released "
            f"the VIP after {(t_gone - t0) * 1000:.0f} ms (drained after "
            f"{drained.get('drained_after_s')} s, {drained.get('open_connections')} left open), "
            f"d2 held it after {(t_d2 - t0) * 1000:.0f} ms, nobody held it for {gap * 1000:.0f} ms; "
            f"{len(fast)} quick requests, {len(fast_err)} failed; {len(slow)} slow, {len(slow_err)} failed"
        )
        for e in fast_err + slow_err:
            print(f"  failed at {e['t'] - (time.time() - (time.monotonic() - t0)):+.3f} s: {e['err']}")
        assert t_move < t_gone, "the VIP went before the router moved away"
        assert not fast_err and not slow_err, (fast_err, slow_err)
        lab.start_pyvrrp("d1", AB.format(prio=150, extra=""))  # preempts: d1 MASTER again
        wait_for(lambda: lab.fib() == [D1] and lab.has_vip("d1"), 30, what="d1 preferred again")
        wait_for(lambda: not lab.has_vip("d2"), 10, what="d2 BACKUP again")


def test_stopped_exabgp_is_noticed_and_back(bgp_lab: BgpLab) -> None:
    """SIGSTOP of the MASTER's ExaBGP (its API process lives on and keeps polling): pyvrrp sees
    that ExaBGP no longer acks its pings, shows 'not answering', logs, and with
    on_speaker_lost = "fault" goes FAULT; SIGCONT: answering again, MASTER again."""
    lab = bgp_lab
    _active_backup_pair(lab, 'on_speaker_lost = "fault"')
    with watch(lab) as samples:
        time.sleep(0.5)
        t0 = time.monotonic()
        lab.kill("exabgp-d1", signal.SIGSTOP)
        wait_for(
            lambda: lab.announce("d1").get("speaker", {}).get("process") == "not answering", 15, interval=0.1
        )
        t_seen = time.monotonic()
        t_d2 = wait_for(lambda: lab.has_vip("d2") and time.monotonic(), 10, interval=0.02)
        wait_for(lambda: lab.fib() == [D2], 15, interval=0.02)
        view = lab.state("d1")
        assert view["instances"][0]["state"] == "FAULT", view["instances"][0]
        time.sleep(0.5)
        lab.kill("exabgp-d1", signal.SIGCONT)
        t1 = time.monotonic()
        wait_for(
            lambda: lab.announce("d1").get("speaker", {}).get("process") == "connected", 15, interval=0.1
        )
        t_back = time.monotonic()
        wait_for(lambda: lab.fib() == [D1] and lab.has_vip("d1"), 30, what="d1 MASTER and preferred again")
        time.sleep(0.5)
    gap = never_to_a_non_holder(samples, forwarded=True, gap_s=1.0)
    t_move = next(s.t for s in samples if s.t > t0 and s.fib == [D2])
    events = [json.loads(x).get("event") for x in lab.log("pyvrrp-d1").splitlines() if x.startswith("{")]
    assert "bgp_speaker_lost" in events and "bgp_speaker_back" in events
    assert events.index("bgp_speaker_lost") < len(events) - 1 - events[::-1].index("bgp_speaker_back")
    print(
        f"\nExaBGP SIGSTOP under the MASTER: pyvrrp shows 'not answering' after "
        f"{(t_seen - t0) * 1000:.0f} ms, d2 holds the VIP after {(t_d2 - t0) * 1000:.0f} ms, "
        f"router on d2 after {(t_move - t0) * 1000:.0f} ms "
        f"(hold 3 s); SIGCONT -> 'connected' after {(t_back - t1) * 1000:.0f} ms; VIP gap {gap * 1000:.0f} ms"
    )


def test_bird_bfd_moves_the_router_within_the_detection_time(bgp_lab: BgpLab) -> None:
    """A director whose speaker goes silent (SIGSTOP of its BIRD): with BFD (100 ms x 3) on d1's
    session the router drops d1's route within BFD's detection time; without (d2) after the
    BGP hold time (3 s)."""
    lab = bgp_lab
    (lab.run / "bird.conf").write_text(router_bird_conf(lab, bfd=("d1",)))
    out = wait_for(lambda: (x := lab.birdc("configure")) and x, 15, what="the router's BIRD")
    assert "Reconfigur" in out, out
    for n in ("d1", "d2"):
        lab.x(n, "ip", "addr", "add", f"{VIP}/32", "dev", "lo")
        lab.start_bird_director(n, bfd=n == "d1")
        body = BIRD_AA.format(run=lab.run, node=n)
        if n == "d1":
            body = body.replace("withdraw_drain = 0.5", "withdraw_drain = 0.5\nbfd = true")
        lab.start_pyvrrp(n, body)
    wait_for(lambda: lab.fib() == [D1, D2], 40, what="both directors' routes in the router's FIB")
    a = wait_for(lambda: (x := lab.announce("d1"))["speaker"].get("bfd", {}).get(ROUTER) == "up" and x, 20)
    assert a["speaker"]["process"] == "connected", a
    assert "bfd" not in lab.announce("d2")["speaker"]
    assert "Up" in lab.birdc("show", "bfd", "sessions")
    measured = {}
    for node, rest in (("d1", [D2]), ("d2", [D1])):
        time.sleep(1.0)
        t0 = time.monotonic()
        lab.kill(f"bird-{node}", signal.SIGSTOP)
        try:
            wait_for(lambda rest=rest: lab.fib() == rest, 15, interval=0.01, what=f"{node}'s route leaving")
            measured[node] = time.monotonic() - t0
        finally:
            lab.kill(f"bird-{node}", signal.SIGCONT)
        wait_for(lambda: lab.fib() == [D1, D2], 40, interval=0.05, what=f"{node}'s session back")
    print(
        f"\nBIRD speaker silent (SIGSTOP): router drops the route after {measured['d1'] * 1000:.0f} ms with "
        f"BFD (100 ms x 3), {measured['d2'] * 1000:.0f} ms without (hold time 3 s, keepalive 1 s)"
    )
    assert measured["d1"] < 1.5 and measured["d1"] < measured["d2"]
    assert 1.5 < measured["d2"] < 6.0


def test_active_backup_prepend_at_the_bird_router(bgp_lab: BgpLab) -> None:
    """prepend = 2 (for routers that ignore the MED): the backup's route reaches the router with
    a three-AS path, the master's with one; after the master's SIGTERM the new master's route
    has one."""
    lab = bgp_lab
    _active_backup_pair(lab, "prepend = 2\nlocal_as = 65001")
    wait_for(lambda: len(lab.bird_routes()) == 2, 20, what="both routes in BIRD")

    def paths() -> dict[str, str]:
        out, hop = {}, ""
        for line in lab.birdc("show", "route", f"{VIP}/32", "all").splitlines():
            text = line.strip()
            if text.startswith("via "):
                hop = text.split()[1]
            elif text.startswith("BGP.as_path:"):
                out[hop] = text.split(":", 1)[1].strip()
        return out

    got = wait_for(lambda: (p := paths()) and len(p) == 2 and p, 10)
    assert got == {D1: "65001", D2: "65001 65001 65001"}, got
    assert lab.bird_best() == D1
    lab.procs["pyvrrp-d1"].send_signal(signal.SIGTERM)
    wait_for(lambda: lab.has_vip("d2"), 15)
    wait_for(lambda: paths() == {D2: "65001"}, 15, what="d2 (MASTER) without the prepend")
    print(f"\nprepend 2 at the BIRD router: {got}; after SIGTERM of d1: {paths()}")
