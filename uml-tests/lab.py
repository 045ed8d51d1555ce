"""A tiny LVS-DR lab inside the UML guest: client, rs1, rs2 namespaces on a bridge whose
other side is the guest's root namespace (the director).

    client 192.168.233.10 ─┐
    rs1    192.168.233.100 ┼─ br (director 192.168.233.2, VIP 192.168.233.200/32)
    rs2    192.168.233.110 ┘

Real servers get the VIP on lo with arp_ignore/arp_announce through ``pyvrrp realserver up``.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyvrrp.lab import probe

VIP = "192.168.233.200"
DIRECTOR = "192.168.233.2"
SUBNET = 24
HOSTS = {"client": "192.168.233.10", "rs1": "192.168.233.100", "rs2": "192.168.233.110"}
PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
PYVRRP = [PY, "-m", "pyvrrp"]

WEB = r"""
import socket, sys
name = sys.argv[1].encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.settimeout(2)
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name))
    except OSError:
        pass
    c.close()
"""


def sh(*argv: str, check: bool = True, ns: str | None = None, timeout: float = 60) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {res.returncode}: {res.stderr.strip()}")
    return res.stdout


@dataclass
class Lab:
    prefix: str = field(default_factory=lambda: f"pv-{secrets.token_hex(3)}-")
    bridge: str = ""
    web: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def ns(self, name: str) -> str:
        return self.prefix + name

    def up(self, tmp: Path) -> None:
        self.bridge = self.prefix + "br"
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{DIRECTOR}/{SUBNET}", "dev", self.bridge)
        sh("ip", "addr", "add", f"{VIP}/32", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i, (name, addr) in enumerate(HOSTS.items()):
            ns = self.ns(name)
            sh("ip", "netns", "add", ns)
            host_if, ns_if = f"{self.prefix}v{i}", "eth0"
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
            sh("ip", "link", "set", host_if, "master", self.bridge, "up")
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "addr", "add", f"{addr}/{SUBNET}", "dev", ns_if, ns=ns)
            sh("ip", "link", "set", ns_if, "up", ns=ns)
            if name.startswith("rs"):
                sh(*PYVRRP, "realserver", "up", "--vip", VIP, "--state-dir", str(tmp / name), ns=ns)
                self.start_web(name)

    def start_web(self, name: str) -> None:
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(name), PY, "-c", WEB, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        self.web[name] = p

    def stop_web(self, name: str) -> None:
        p = self.web.pop(name)
        p.terminate()
        p.wait(10)

    def get(self, n: int) -> list[str]:
        """``n`` GETs to the VIP, one after the other: who answered each (or ``ERR:...``)."""
        argv = probe.command(VIP, timeout_s=3.0, count=n)
        return probe.answers(probe.parse(sh(*argv, ns=self.ns("client"), timeout=120)))

    def down(self) -> None:
        for name in list(self.web):
            self.stop_web(name)
        for name in HOSTS:
            sh("ip", "netns", "del", self.ns(name), check=False)
        if self.bridge:
            sh("ip", "link", "del", self.bridge, check=False)


def wait_for(pred, timeout_s: float, step_s: float = 0.05) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - t0
