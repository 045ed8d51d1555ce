"""Private helpers for netns-tests: uniquely named namespaces joined by a veth pair.

Nothing here touches the root namespace: the veth pair is created inside the
first namespace with its peer moved straight into the second, and deleting
the namespaces deletes the links.  Names carry a ``pv-<random6>-`` prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
if not os.path.exists(PYTHON):
    PYTHON = sys.executable

# Children log JSON to stderr so stdout carries only what the test prints.
PRELUDE = (
    "import sys\n"
    "from pyvrrp.runtime.logging import setup_logging\n"
    "setup_logging(level='debug', log_format='json', stream=sys.stderr)\n"
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


def nsexec(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


@dataclass
class Pair:
    """Two namespaces ``a``/``b`` with veth ``if_a`` (in a) <-> ``if_b`` (in b)."""

    a: str
    b: str
    if_a: str
    if_b: str
    ip_a: str = "192.0.2.1"
    ip_b: str = "192.0.2.2"
    ll_a: str = "fe80::a"
    ll_b: str = "fe80::b"

    def mac(self, side: str) -> str:
        ns, ifname = (self.a, self.if_a) if side == "a" else (self.b, self.if_b)
        out = nsexec(ns, "ip", "-j", "link", "show", ifname).stdout
        return json.loads(out)[0]["address"]

    def spawn(self, side: str, code: str, *, stdin: bool = False) -> subprocess.Popen[str]:
        """Start ``code`` (Python) inside a namespace; stdout/stderr (and stdin if asked) are pipes."""
        ns = self.a if side == "a" else self.b
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, PYTHON, "-c", PRELUDE + textwrap.dedent(code)],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def run(self, side: str, code: str, timeout_s: float = 30.0) -> str:
        proc = self.spawn(side, code)
        out, err = proc.communicate(timeout=timeout_s)
        if proc.returncode != 0:
            raise AssertionError(f"child in {side} failed rc={proc.returncode}:\n{err}\n{out}")
        return out


def _wait_ready(pair: Pair, timeout_s: float = 10.0) -> None:
    """Wait for carrier and the IPv6 ``multicast ff00::/8`` route on both ends.

    The kernel adds that route only after linkwatch reports carrier (up to ~1 s
    after ``link set up``); before it exists, IPv6 multicast is dropped as
    Ip6InNoRoutes.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = all(
            "ff00::/8" in nsexec(ns, "ip", "-6", "route", "show", "table", "local", "dev", ifname).stdout
            and "LOWER_UP" in nsexec(ns, "ip", "link", "show", ifname).stdout
            for ns, ifname in ((pair.a, pair.if_a), (pair.b, pair.if_b))
        )
        if ready:
            return
        time.sleep(0.05)
    raise TimeoutError(f"veth pair {pair.if_a}/{pair.if_b} not ready after {timeout_s}s")


def _create_link(pair: Pair) -> None:
    sh(
        "ip",
        "-n",
        pair.a,
        "link",
        "add",
        pair.if_a,
        "type",
        "veth",
        "peer",
        "name",
        pair.if_b,
        "netns",
        pair.b,
    )
    sides = ((pair.a, pair.if_a, pair.ip_a, pair.ll_a), (pair.b, pair.if_b, pair.ip_b, pair.ll_b))
    for ns, ifname, ip4, ll in sides:
        nsexec(ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.addr_gen_mode=1")  # no EUI-64 address
        nsexec(ns, "ip", "addr", "add", f"{ip4}/24", "dev", ifname)
        nsexec(ns, "ip", "addr", "add", f"{ll}/64", "dev", ifname)
        nsexec(ns, "ip", "link", "set", ifname, "up")
    _wait_ready(pair)


def recreate_link(pair: Pair) -> None:
    """Delete the veth pair and create it again with the same names and addresses (new ifindex)."""
    sh("ip", "-n", pair.a, "link", "del", pair.if_a)
    _create_link(pair)


@contextlib.contextmanager
def veth_pair() -> Iterator[Pair]:
    tag = secrets.token_hex(3)
    pair = Pair(a=f"pv-{tag}-a", b=f"pv-{tag}-b", if_a=f"pv{tag}a", if_b=f"pv{tag}b")
    created: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            sh("ip", "netns", "add", ns)
            created.append(ns)
            nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
            nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
            nsexec(ns, "ip", "link", "set", "lo", "up")
        _create_link(pair)
        yield pair
    finally:
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)
