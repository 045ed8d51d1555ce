"""A throw-away LVS-DR lab built from network namespaces.

The topology is the one keepalived was measured in (shared KEEPALIVED-BASELINE §1)::

    <prefix>-client 192.168.233.20  ─┐
    <prefix>-lb1    192.168.233.10  ─┤   <prefix>-sw: bridge br0 (stp off, forward_delay 0,
    <prefix>-lb2    192.168.233.11  ─┤   mcast_snooping 0), one veth port p-<host> per host
    <prefix>-rs1    192.168.233.100 ─┤
    <prefix>-rs2    192.168.233.110 ─┤   real servers: VIP 192.168.233.200/32 on lo,
    <prefix>-gw     192.168.233.1   ─┘   arp_ignore=1 / arp_announce=2 (optional host)

Every veth is created inside the switch namespace with its peer placed straight into the
host namespace, so nothing is ever added to the root namespace.  ``Lab.down()`` kills every
pid found in the lab's namespaces (``ip netns pids``), TERM then KILL, and deletes them.

Used by ``netns-tests/``, the benchmarks and ``pyvrrp lab demo``.  Needs root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pyvrrp.lab import probe

SUBNET4 = "192.168.233.0/24"
SUBNET6 = "fd00:233::/64"
VIP4 = "192.168.233.200"
VIP6 = "fd00:233::200"
SWITCH = "sw"
BRIDGE = "br0"
LAB_IFNAME = "eth0"

T = TypeVar("T")


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One host of the lab: its role, IPv4/IPv6 address and fixed MAC."""

    name: str
    role: str  # "client", "lb", "rs", "gw"
    octet: int

    @property
    def ipv4(self) -> str:
        return f"192.168.233.{self.octet}"

    @property
    def ipv6(self) -> str:
        return f"fd00:233::{self.octet}"

    @property
    def mac(self) -> str:
        """02:00:00:00:HH:LL where HHLL are the decimal digits of the last octet (.100 -> 01:00)."""
        high, low = divmod(self.octet, 100)
        return f"02:00:00:00:{high:02d}:{low:02d}"


HOSTS: tuple[HostSpec, ...] = (
    HostSpec("client", "client", 20),
    HostSpec("lb1", "lb", 10),
    HostSpec("lb2", "lb", 11),
    HostSpec("rs1", "rs", 100),
    HostSpec("rs2", "rs", 110),
)
GATEWAY = HostSpec("gw", "gw", 1)

# A tiny HTTP/1.0 responder: argv = port body ready_file.  Used for the real servers
# ("rs1 192.168.233.100") and the LB responders of the demo ("lb1").  Stdlib only.
HTTPD_SRC = r"""
import http.server, socketserver, sys, pathlib
port, body, ready = int(sys.argv[1]), (sys.argv[2] + "\n").encode(), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    address_family = __import__("socket").AF_INET6 if "--v6" in sys.argv else __import__("socket").AF_INET
with S(("::" if "--v6" in sys.argv else "0.0.0.0", port), H) as srv:
    pathlib.Path(ready).write_text("ready\n")
    srv.serve_forever()
"""


@dataclass(frozen=True, slots=True)
class HttpResult:
    """Outcome of ``Lab.http_get``."""

    ok: bool
    status: int | None
    body: str
    error: str
    elapsed_s: float


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05, *, what: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value; return it or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.2f} s waiting for {what or predicate!r}")
        time.sleep(interval)


def _run(
    argv: Sequence[str], *, input_text: str | None = None, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), input=input_text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> rc {proc.returncode}: {proc.stderr.strip()}")
    return proc


def list_netns() -> list[str]:
    """Names of all network namespaces known to ``ip netns``."""
    out = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def new_prefix(base: str = "pv") -> str:
    """A unique namespace prefix such as ``pv3fa91c``."""
    return f"{base}{secrets.token_hex(3)}"


class Lab:
    """The namespace lab.  ``with Lab() as lab: ...`` or ``lab.up()`` / ``lab.down()``.

    ``ipv6=True`` keeps IPv6 on (link-local plus fd00:233::<octet>/64, DAD off);
    otherwise IPv6 is disabled everywhere to keep MLD/ND out of captures.
    ``gateway=True`` adds host ``gw`` 192.168.233.1 (for split-brain work).
    """

    def __init__(
        self,
        *,
        prefix: str | None = None,
        ipv6: bool = False,
        gateway: bool = False,
        real_servers: bool = True,
        run_dir: str | Path | None = None,
        keep_run_dir: bool = False,
    ) -> None:
        self.prefix = prefix or new_prefix()
        self.ipv6 = ipv6
        hosts = list(HOSTS)
        if not real_servers:
            hosts = [h for h in hosts if h.role != "rs"]
        if gateway:
            hosts.append(GATEWAY)
        self.hosts: dict[str, HostSpec] = {h.name: h for h in hosts}
        self._run_dir_arg = Path(run_dir) if run_dir is not None else None
        self.run_dir: Path = self._run_dir_arg or Path(tempfile.gettempdir()) / f"{self.prefix}-run"
        self.keep_run_dir = keep_run_dir
        self._procs: list[subprocess.Popen[Any]] = []
        self.is_up = False

    # ----------------------------------------------------------------- names
    def ns(self, host: str) -> str:
        """Namespace name of ``host`` ("sw" is the switch)."""
        if host != SWITCH and host not in self.hosts:
            raise KeyError(f"no host {host!r} in this lab (hosts: {', '.join(self.hosts)})")
        return f"{self.prefix}-{host}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(SWITCH), *(self.ns(h) for h in self.hosts)]

    def host(self, name: str) -> HostSpec:
        return self.hosts[name]

    def ip(self, host: str, family: int = 4) -> str:
        spec = self.hosts[host]
        return spec.ipv4 if family == 4 else spec.ipv6

    def mac(self, host: str) -> str:
        return self.hosts[host].mac

    def host_by_mac(self, mac: str) -> str | None:
        mac = mac.lower()
        return next((h.name for h in self.hosts.values() if h.mac == mac), None)

    # --------------------------------------------------------------- running
    def exec(
        self, host: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host``'s namespace and wait; raise LabError on failure if ``check``."""
        full = ["ip", "netns", "exec", self.ns(host), *argv]
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        proc = subprocess.run(full, timeout=timeout, check=False, **kw)
        if check and proc.returncode != 0:
            raise LabError(
                f"[{host}] {' '.join(argv)} -> rc {proc.returncode}: {(proc.stderr or '').strip()}"
            )
        return proc

    def popen(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host``'s namespace (own session, so it can be signalled as a group)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], **kw)
        self._procs.append(proc)
        return proc

    def ip_cmd(self, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n <ns> args...`` (no fork of a shell, no exec into the namespace)."""
        return _run(["ip", "-n", self.ns(host), *args], check=check)

    def _ip_batch(self, host: str, lines: Iterable[str]) -> None:
        text = "\n".join(lines) + "\n"
        _run(["ip", "-n", self.ns(host), "-batch", "-"], input_text=text)

    def _sysctl(self, host: str, settings: Mapping[str, str | int]) -> None:
        if settings:
            args = [f"{k}={v}" for k, v in settings.items()]
            self.exec(host, ["sysctl", "-q", "-w", *args])

    # ------------------------------------------------------------- lifecycle
    def up(self, *, wait_s: float = 30.0) -> Lab:
        """Build the lab; on any failure tear down what was built and re-raise."""
        if self.is_up:
            return self
        try:
            self._up(wait_s)
        except BaseException:
            self.down()
            raise
        self.is_up = True
        return self

    def _up(self, wait_s: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _run(["ip", "-batch", "-"], input_text="".join(f"netns add {n}\n" for n in self.namespaces))
        v6_off = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
        # The switch never needs an IPv6 stack of its own (no MLD/RS from br0).
        self._sysctl(SWITCH, v6_off)
        for name, spec in self.hosts.items():
            settings: dict[str, str | int] = {}
            if self.ipv6:
                settings |= {
                    "net.ipv6.conf.all.accept_dad": 0,
                    "net.ipv6.conf.default.accept_dad": 0,
                    "net.ipv6.conf.default.router_solicitations": 0,
                }
            else:
                settings |= v6_off
            if spec.role == "rs":
                # LVS-DR real server: never answer or announce the VIP held on lo.
                for dev in ("all", "default", "lo"):
                    settings[f"net.ipv4.conf.{dev}.arp_ignore"] = 1
                    settings[f"net.ipv4.conf.{dev}.arp_announce"] = 2
            self._sysctl(name, settings)
        sw = [
            f"link add {BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
            f"link set {BRIDGE} up",
        ]
        for name, spec in self.hosts.items():
            port = f"p-{name}"
            sw.append(
                f"link add {port} type veth peer name {LAB_IFNAME} address {spec.mac} netns {self.ns(name)}"
            )
            sw.append(f"link set {port} master {BRIDGE} up")
        self._ip_batch(SWITCH, sw)
        for name, spec in self.hosts.items():
            lines = [
                "link set lo up",
                f"addr add {spec.ipv4}/24 dev {LAB_IFNAME}",
            ]
            if self.ipv6:
                lines.append(f"addr add {spec.ipv6}/64 dev {LAB_IFNAME} nodad")
            if spec.role == "rs":
                lines.append(f"addr add {VIP4}/32 dev lo")
                if self.ipv6:
                    lines.append(f"addr add {VIP6}/128 dev lo nodad")
            lines.append(f"link set {LAB_IFNAME} up")
            self._ip_batch(name, lines)
            if spec.role == "rs":
                self._sysctl(
                    name,
                    {
                        f"net.ipv4.conf.{LAB_IFNAME}.arp_ignore": 1,
                        f"net.ipv4.conf.{LAB_IFNAME}.arp_announce": 2,
                    },
                )
        ready = [
            self.start_http_responder(name, f"{name} {spec.ipv4}")
            for name, spec in self.hosts.items()
            if spec.role == "rs"
        ]
        for path in ready:
            try:
                wait_for(path.exists, wait_s, 0.01, what=f"{path.name}")
            except TimeoutError as exc:
                log = path.with_suffix(".log")
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
                raise TimeoutError(f"{exc}; responder log {log}:\n{tail}") from None

    def start_http_responder(self, host: str, body: str, port: int = 80) -> Path:
        """Serve ``body`` over HTTP/1.0 on 0.0.0.0:``port`` (and [::] with IPv6) in ``host``.

        Returns the ready file, which appears once the socket is bound.
        """
        ready = self.run_dir / f"{host}-httpd-{port}.ready"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-I", "-c", HTTPD_SRC, str(port), body, str(ready)]
        if self.ipv6:
            argv.append("--v6")
        log = open(self.run_dir / f"{host}-httpd-{port}.log", "ab")  # noqa: SIM115 (child owns it)
        try:
            self.popen(host, argv, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        return ready

    def down(self, *, term_wait_s: float = 3.0) -> None:
        """Kill every process in the lab's namespaces (TERM, then KILL) and delete them.

        Idempotent; never raises for namespaces that are already gone.
        """
        existing = set(list_netns())
        mine = [n for n in self.namespaces if n in existing]
        kill_netns_pids(mine, term_wait_s=term_wait_s)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        self._procs.clear()
        if mine:
            _run(["ip", "-batch", "-"], input_text="".join(f"netns del {n}\n" for n in mine), check=False)
        leftover = [n for n in list_netns() if n in set(mine)]
        for n in leftover:
            _run(["ip", "netns", "del", n], check=False)
        if not self.keep_run_dir and self._run_dir_arg is None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.is_up = False

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    # --------------------------------------------------------------- helpers
    def addresses(self, host: str, ifname: str | None = None) -> list[str]:
        """Addresses (without prefix length) configured in ``host``'s namespace."""
        args = ["-j", "addr", "show"] + (["dev", ifname] if ifname else [])
        data = json.loads(self.ip_cmd(host, *args).stdout or "[]")
        return [a["local"] for link in data for a in link.get("addr_info", [])]

    def holds_vip(self, host: str, vip: str = VIP4, ifname: str = LAB_IFNAME) -> bool:
        """True if ``vip`` is configured on ``ifname`` in ``host`` (RFC 5798 §6.4.3: MASTER only)."""
        want = ipaddress.ip_address(vip)
        return any(ipaddress.ip_address(a) == want for a in self.addresses(host, ifname))

    def link_set(self, host: str, ifname: str, up: bool) -> None:
        self.ip_cmd(host, "link", "set", ifname, "up" if up else "down")

    def http_get(self, from_host: str, url: str, timeout: float = 2.0) -> HttpResult:
        """One HTTP GET of ``url`` (``http://HOST[:PORT]/PATH``) from inside ``from_host``
        (:mod:`pyvrrp.lab.probe`, no curl)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise LabError(f"http_get needs an http://HOST[:PORT]/PATH URL, not {url!r}")
        argv = probe.command(
            parts.hostname, port=parts.port or 80, timeout_s=timeout, count=1, path=parts.path or "/"
        )
        replies = probe.parse(self.exec(from_host, argv, timeout=timeout + 10.0).stdout)
        if not replies:
            raise LabError(f"the probe wrote no reply for GET {url} from {from_host}")
        (reply,) = replies
        return HttpResult(reply.ok, reply.status, reply.body, reply.err, reply.t1 - reply.t0)

    def client_arp_mac(self, vip: str = VIP4, host: str = "client") -> str | None:
        """The MAC ``host`` has in its neighbour table for ``vip`` (None if none/failed)."""
        data = json.loads(self.ip_cmd(host, "-j", "neigh", "show", vip).stdout or "[]")
        for entry in data:
            mac = entry.get("lladdr")
            if mac and "FAILED" not in entry.get("state", []):
                return str(mac).lower()
        return None

    def flush_neigh(self, host: str = "client") -> None:
        self.ip_cmd(host, "neigh", "flush", "dev", LAB_IFNAME)

    def arping(self, from_host: str, target: str, count: int = 2, timeout_s: float = 2.0) -> list[str]:
        """MACs that answered broadcast ARP requests for ``target`` (iputils arping ``-b``,
        so a second responder is not hidden by arping switching to unicast)."""
        deadline_s = max(1, math.ceil(timeout_s))
        argv = ["arping", "-b", "-c", str(count), "-w", str(deadline_s), "-I", LAB_IFNAME, target]
        proc = self.exec(from_host, argv, check=False, timeout=deadline_s + 10.0)
        if "Sent " not in proc.stdout:
            raise LabError(f"[{from_host}] {' '.join(argv)} failed: {proc.stderr.strip()}")
        macs: list[str] = []
        for line in proc.stdout.splitlines():
            if "reply from" in line and "[" in line:
                mac = line.split("[", 1)[1].split("]", 1)[0].lower()
                if mac not in macs:
                    macs.append(mac)
        return macs

    def pids(self, host: str) -> list[int]:
        out = _run(["ip", "netns", "pids", self.ns(host)], check=False).stdout
        return [int(p) for p in out.split()]


def kill_netns_pids(namespaces: Sequence[str], *, term_wait_s: float = 3.0) -> None:
    """SIGTERM every process in ``namespaces``, then SIGKILL what is left after ``term_wait_s``."""

    def pids() -> set[int]:
        found: set[int] = set()
        for n in namespaces:
            out = _run(["ip", "netns", "pids", n], check=False).stdout
            found.update(int(p) for p in out.split())
        found.discard(os.getpid())
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = pids()
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (term_wait_s if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            if not pids():
                return
            time.sleep(0.02)


def labs_present(base: str = "pv") -> dict[str, list[str]]:
    """Lab prefixes found among existing namespaces (``<base><6 hex>-<host>``) -> namespaces."""
    found: dict[str, list[str]] = {}
    for name in list_netns():
        prefix, _, _host = name.partition("-")
        tail = prefix[len(base) :]
        if prefix.startswith(base) and len(tail) == 6 and all(c in "0123456789abcdef" for c in tail):
            found.setdefault(prefix, []).append(name)
    return found


def destroy_prefix(prefix: str) -> list[str]:
    """Tear down the namespaces of a lab left running (``pyvrrp lab down PREFIX``)."""
    mine = [n for n in list_netns() if n.startswith(f"{prefix}-")]
    kill_netns_pids(mine)
    for n in mine:
        _run(["ip", "netns", "del", n], check=False)
    shutil.rmtree(Path(tempfile.gettempdir()) / f"{prefix}-run", ignore_errors=True)
    return mine


# ------------------------------------------------------------------ daemons


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One VRRP instance, rendered to keepalived.conf or pyvrrp TOML.

    ``advert_int_s``: v2 whole seconds (RFC 3768 §5.3.7), v3 centisecond steps (RFC 5798 §5.2.7).
    """

    priority: int
    vips: tuple[str, ...] = (f"{VIP4}/32",)
    name: str = "VI_51"
    vrid: int = 51
    interface: str = LAB_IFNAME
    version: int = 2
    advert_int_s: float = 1.0
    preempt: bool = True
    state: str = "BACKUP"  # keepalived start hint
    unicast_src: str | None = None
    unicast_peers: tuple[str, ...] = ()
    auth_pass: str | None = None  # v2 only (RFC 3768 §5.3.6.1 simple text password)
    auth_type: str = "PASS"  # with auth_pass: PASS, or AH (keepalived's IPsec AH form)
    extra: dict[str, Any] = field(default_factory=dict)


class DaemonNode:
    """A VRRP daemon run in one lab host: start / stop (SIGTERM) / kill9 / state.

    Subclasses set ``argv()`` and ``state()``.  Files live in ``lab.run_dir/<kind>-<host>/``.
    """

    kind = "daemon"

    def __init__(self, lab: Lab, host: str, config_text: str, *, config_name: str = "node.conf") -> None:
        self.lab = lab
        self.host = host
        self.dir = lab.run_dir / f"{self.kind}-{host}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / config_name
        self.config_path.write_text(config_text)
        self.log_path = self.dir / "console.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.started_at: float | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.dir)}

    def start(self) -> DaemonNode:
        if self.alive():
            raise LabError(f"{self.kind} on {self.host} already running (pid {self.proc.pid})")  # type: ignore[union-attr]
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns the descriptor)
        try:
            self.started_at = time.time()
            self.proc = self.lab.popen(
                self.host, self.argv(), stdout=log, stderr=subprocess.STDOUT, env=self.env()
            )
        finally:
            log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.alive() else []  # type: ignore[union-attr]

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (a MASTER sends priority 0, RFC 5798 §6.4.3) and wait for exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def kill9(self) -> None:
        """SIGKILL every process of the daemon at once (no priority-0 advert, VIPs stay)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5.0)

    def state(self, instance: str | None = None) -> str | None:
        raise NotImplementedError

    def wait_state(self, want: str, timeout_s: float, instance: str | None = None) -> float:
        """Wait until ``state()`` is ``want``; returns seconds waited."""
        t0 = time.monotonic()

        def reached() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabError(
                    f"{self.kind} on {self.host} exited with {self.proc.returncode} while waiting for "
                    f"{want}; log {self.log_path}:\n{self.log_text()[-2000:]}"
                )
            return self.state(instance) == want

        wait_for(reached, timeout_s, 0.05, what=f"{self.host} {want}")
        return time.monotonic() - t0

    def holds_vip(self, vip: str = VIP4) -> bool:
        return self.lab.holds_vip(self.host, vip)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def pyvrrp_toml(
    router_id: str,
    instances: Sequence[InstanceSpec],
    *,
    control_socket: str | None = None,
    state_dir: str | None = None,
) -> str:
    """Render a pyvrrp TOML config (``[global_defs]`` + ``[vrrp_instance.NAME]``, keepalived
    vocabulary, see pyvrrp/config/models.py).  ``state_dir`` keeps two lab nodes' files apart."""
    lines = ["[global_defs]", f"router_id = {_toml_value(router_id)}"]
    if control_socket:
        lines.append(f"control_socket = {_toml_value(control_socket)}")
    if state_dir:
        lines.append(f"state_dir = {_toml_value(state_dir)}")
    for inst in instances:
        body: dict[str, Any] = {
            "interface": inst.interface,
            "virtual_router_id": inst.vrid,
            "version": inst.version,
            "priority": inst.priority,
            "advert_int": inst.advert_int_s,
            "preempt": inst.preempt,
            "virtual_ipaddress": list(inst.vips),
        }
        if inst.unicast_peers:
            body["unicast_src_ip"] = inst.unicast_src
            body["unicast_peer"] = list(inst.unicast_peers)
        body |= inst.extra
        lines += ["", f"[vrrp_instance.{inst.name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items() if v is not None]
        if inst.auth_pass is not None:
            lines += ["", f"[vrrp_instance.{inst.name}.authentication]", f'auth_type = "{inst.auth_type}"']
            lines.append(f"auth_pass = {_toml_value(inst.auth_pass)}")
    return "\n".join(lines) + "\n"


class PyvrrpNode(DaemonNode):
    """``python -m pyvrrp run -f CONF`` in a lab host; state via ``pyvrrp state --json``.

    The control socket is ``<run dir>/pyvrrp-<host>/control.sock`` (AF_UNIX sockets are
    reached by path, so ``state`` runs from the caller's namespace).
    """

    kind = "pyvrrp"

    def __init__(
        self,
        lab: Lab,
        host: str,
        config_text: str | None = None,
        *,
        instances: Sequence[InstanceSpec] = (),
        config_name: str = "pyvrrp.toml",
        extra_args: Sequence[str] = (),
    ) -> None:
        node_dir = lab.run_dir / f"{self.kind}-{host}"
        sock = node_dir / "control.sock"
        if config_text is None:
            config_text = pyvrrp_toml(host, instances, control_socket=str(sock), state_dir=str(node_dir))
        super().__init__(lab, host, config_text, config_name=config_name)
        self.socket_path = sock
        self.extra_args = list(extra_args)

    def argv(self) -> list[str]:
        # ``-m`` with this interpreter: the daemon is the tree the lab was imported from
        # (PYTHONPATH), whatever console script or older install the venv holds.
        return [
            sys.executable,
            "-m",
            "pyvrrp",
            "run",
            "-f",
            str(self.config_path),
            "--socket",
            str(self.socket_path),
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYVRRP_CONTROL_SOCKET"] = str(self.socket_path)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def state_json(self, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """The ``pyvrrp state --json`` document, or None while the daemon is unreachable.

        Asks the control socket in-process (``pyvrrp.runtime.control``, ~1 ms) rather than
        forking the CLI (~1 s), so ``wait_state`` polls at a useful rate.
        """
        if not self.socket_path.exists():
            return None
        try:
            from pyvrrp.runtime import control
        except ImportError:
            return self._state_json_cli(timeout_s)
        for attempt in range(2):  # one retry: a busy daemon may drop a connection under load
            try:
                result = control.request_sync(self.socket_path, "state", timeout=timeout_s)
            except (control.ErrorReply, control.ProtocolMismatch, OSError):
                if attempt == 0 and self.alive():
                    time.sleep(0.05)
                    continue
                return None
            return result if isinstance(result, dict) else None
        return None

    def _state_json_cli(self, timeout_s: float) -> dict[str, Any] | None:
        proc = subprocess.run(
            [sys.executable, "-m", "pyvrrp", "state", "--json", "--socket", str(self.socket_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s + 10.0,
            check=False,
        )
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def check(self) -> subprocess.CompletedProcess[str]:
        """``pyvrrp check-config -f CONF`` (exit 0 when the generated config is valid)."""
        return subprocess.run(
            [sys.executable, "-m", "pyvrrp", "check-config", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60.0,
            check=False,
        )

    def state_text(self) -> str:
        """Human output of ``pyvrrp state`` (for the demo)."""
        proc = subprocess.run(
            [sys.executable, "-m", "pyvrrp", "state", "--socket", str(self.socket_path)],
            capture_output=True,
            text=True,
            timeout=10.0,
            check=False,
        )
        return proc.stdout + proc.stderr

    def instance(self, name: str | None = None) -> dict[str, Any] | None:
        data = self.state_json()
        if not data:
            return None
        for inst in data.get("instances", []):
            if name is None or inst.get("name") == name:
                return dict(inst)
        return None

    def state(self, instance: str | None = None) -> str | None:
        inst = self.instance(instance)
        return None if inst is None else str(inst.get("state", "")).upper() or None
