"""vrrp_sync_group in the running daemon: two interfaces, one instance each (issue #6 §2).

Two hosts A and B are joined by two links (eth0 and eth1, each through its own bridge in a
switch namespace), all in uniquely named namespaces.  Each runs pyvrrp with VI_0 on eth0
and VI_1 on eth1 in one sync group.  A link failure of one of A's interfaces must move
BOTH VIPs to B; recovery moves both back.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

VIPS = {"eth0": "10.51.0.200/32", "eth1": "10.52.0.200/32"}


def _ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[dict[str, str]]:
    prefix = f"pvsg{secrets.token_hex(3)}"
    ns = {"A": f"{prefix}-a", "B": f"{prefix}-b", "S": f"{prefix}-sw"}
    try:
        for name in ns.values():
            subprocess.run(["ip", "netns", "add", name], check=True)
            _ip(name, "link", "set", "lo", "up")
        # a switch namespace with one bridge per link, so one host's link going down does
        # not take the other host's carrier with it (as a direct veth pair would)
        for i, ifname in enumerate(("eth0", "eth1")):
            br = f"br{i}"
            _ip(ns["S"], "link", "add", br, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
            _ip(ns["S"], "link", "set", br, "up")
            for host, octet in (("A", 1), ("B", 2)):
                port = f"{host.lower()}{i}"
                _ip(ns["S"], "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns[host])
                _ip(ns["S"], "link", "set", port, "master", br, "up")
                _ip(ns[host], "addr", "add", f"10.5{i + 1}.0.{octet}/24", "dev", ifname)
                _ip(ns[host], "link", "set", ifname, "up")
        yield ns
    finally:
        for name in ns.values():
            out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in out.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _config(tmp: Path, host: str, prio: int, notify_log: Path) -> Path:
    lines = [
        "[global_defs]",
        f'router_id = "{host}"',
        f'control_socket = "{tmp}/{host}.sock"',
        f'state_dir = "{tmp}/{host}-state"',
        "",
        "[vrrp_sync_group.G]",
        'group = ["VI_0", "VI_1"]',
        f'notify = "{tmp}/notify.sh {host}"',
    ]
    for i, (ifname, vip) in enumerate(VIPS.items()):
        lines += [
            "",
            f"[vrrp_instance.VI_{i}]",
            f'interface = "{ifname}"',
            f"virtual_router_id = {60 + i}",
            "version = 3",
            "advert_int = 0.1",
            f"priority = {prio}",
            f'virtual_ipaddress = ["{vip}"]',
        ]
    script = tmp / "notify.sh"
    script.write_text(f'#!/bin/sh\necho "$*" >> {notify_log}\n')
    script.chmod(0o755)
    path = tmp / f"{host}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(ns: str, conf: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "pyvrrp", "run", "-f", str(conf)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _states(tmp: Path, host: str) -> dict[str, str]:
    from pyvrrp.runtime.control import DaemonUnreachable, request_sync

    try:
        result = request_sync(str(tmp / f"{host}.sock"), "state")
    except DaemonUnreachable:
        return {}
    return {i["name"]: i["state"] for i in result["instances"]}


def _wait(pred, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _holds(ns: str, ifname: str) -> bool:
    return VIPS[ifname].split("/")[0] in _ip(ns, "-j", "addr", "show", "dev", ifname)


def test_link_failure_moves_both_vips(pair: dict[str, str], tmp_path: Path) -> None:
    """Sync group: A (prio 150) is MASTER on both links; A's eth1 going down puts the whole
    group in FAULT and B takes both VIPs; eth1 back up: both VIPs return to A.  Group notify
    scripts get `GROUP G <STATE>`."""
    notify_log = tmp_path / "notify.log"
    procs = [
        _start(pair["A"], _config(tmp_path, "A", 150, notify_log), tmp_path / "A.log"),
        _start(pair["B"], _config(tmp_path, "B", 100, notify_log), tmp_path / "B.log"),
    ]
    try:
        master = {"VI_0": "MASTER", "VI_1": "MASTER"}
        _wait(lambda: _states(tmp_path, "A") == master, 15)
        _wait(lambda: _states(tmp_path, "B") == {"VI_0": "BACKUP", "VI_1": "BACKUP"}, 5)
        assert _holds(pair["A"], "eth0") and _holds(pair["A"], "eth1")

        _ip(pair["A"], "link", "set", "eth1", "down")
        _wait(lambda: _states(tmp_path, "B") == master, 5)
        assert _states(tmp_path, "A") == {"VI_0": "FAULT", "VI_1": "FAULT"}
        assert _holds(pair["B"], "eth0") and _holds(pair["B"], "eth1")
        assert not _holds(pair["A"], "eth0")

        _ip(pair["A"], "link", "set", "eth1", "up")
        _wait(lambda: _states(tmp_path, "A") == master, 10)
        _wait(lambda: _states(tmp_path, "B") == {"VI_0": "BACKUP", "VI_1": "BACKUP"}, 5)
        assert _holds(pair["A"], "eth0") and _holds(pair["A"], "eth1")
        assert not _holds(pair["B"], "eth0") and not _holds(pair["B"], "eth1")
        time.sleep(0.3)
        text = notify_log.read_text()
        assert "A GROUP G MASTER" in text and "A GROUP G FAULT" in text and "B GROUP G MASTER" in text
        for line in json.dumps(text).split("\\n"):
            assert "INSTANCE" not in line  # group scripts only: no instance notify configured
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
