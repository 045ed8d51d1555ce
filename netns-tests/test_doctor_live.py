"""``pyvrrp doctor --json`` inside a lab host, with a real peer (pyvrrp on lb2) advertising.

doctor runs in lb1 with a config naming the peer's VRID on eth0 and a second instance on
an interface that does not exist.  It must hear lb2's adverts through its raw VRRP
socket, flag the missing interface (exit 1), flag a VRID used with other VIPs as a
duplicate, and, once lb1's own nftables input hook drops protocol 112, report the firewall
and the silence.  All traffic stays inside the lab's namespaces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from _daemon_helpers import start, v3

from pyvrrp.lab.topology import VIP4, Lab

DOCTOR_CONF = """
[vrrp_instance.VI_51]
interface = "eth0"
virtual_router_id = 51
version = 3
advert_int = 0.1
priority = 150
virtual_ipaddress = ["{vip}/32"]

[vrrp_instance.VI_52]
interface = "eth9"
virtual_router_id = 52
version = 3
advert_int = 0.1
virtual_ipaddress = ["192.168.233.202/32"]
"""


def _doctor(lab: Lab, conf: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = lab.exec(
        "lb1",
        [sys.executable, "-m", "pyvrrp", "doctor", "-f", str(conf), "--json", *args],
        check=False,
        timeout=60,
    )
    assert proc.stdout.strip(), f"no JSON on stdout; stderr:\n{proc.stderr}"
    doc: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, doc


def _checks(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    by: dict[str, dict[str, str]] = {}
    for c in doc["checks"]:
        by.setdefault(c["name"], c)
    return by


def test_doctor_hears_the_peer_and_flags_a_missing_interface(lab: Lab) -> None:
    peer = start(lab, "lb2", v3(100))
    peer.wait_state("MASTER", 10)
    conf = lab.run_dir / "doctor.toml"
    conf.write_text(DOCTOR_CONF.format(vip=VIP4))

    rc, doc = _doctor(lab, conf, "--listen", "1")
    by = _checks(doc)
    assert rc == 1 and doc["ok"] is False, doc
    assert by["capabilities"]["status"] == "ok"
    assert by["interface eth9"]["status"] == "fail" and "does not exist" in by["interface eth9"]["detail"]
    assert by["interface eth0"]["status"] == "ok"
    assert by["source eth0"]["status"] == "ok" and lab.ip("lb1") in by["source eth0"]["detail"]
    assert by["multicast eth0"]["status"] == "ok" and "224.0.0.18" in by["multicast eth0"]["detail"]
    heard = by["adverts VI_51"]
    assert heard["status"] == "ok", heard
    assert lab.ip("lb2") in heard["detail"] and "prio 100" in heard["detail"]
    assert by["adverts VI_52"]["status"] == "skip"
    assert not any(c["status"] != "ok" and c["name"].startswith(("vrid", "wire")) for c in doc["checks"]), doc

    # The same VRID with other VIPs: another cluster (or a typo) on this link.
    dup = lab.run_dir / "dup.toml"
    dup.write_text(DOCTOR_CONF.split("[vrrp_instance.VI_52]")[0].format(vip="192.168.233.250"))
    rc, doc = _doctor(lab, dup, "--listen", "1")
    fails = [c for c in doc["checks"] if c["status"] == "fail"]
    assert rc == 1 and any(c["name"] == "vrid 51 eth0" and VIP4 in c["detail"] for c in fails), doc

    # lb1's firewall drops VRRP: doctor names the rule and hears nothing.
    rules = "table inet f {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
    rules += "  ip protocol vrrp drop\n }\n}\n"
    lab.exec("lb1", ["nft", "-f", "-"], input=rules)
    rc, doc = _doctor(lab, dup, "--listen", "1")
    by = _checks(doc)
    assert by["firewall"]["status"] == "fail" and "drops protocol 112" in by["firewall"]["detail"], by
    assert by["adverts VI_51"]["status"] == "warn", by
    assert rc == 1
    assert peer.alive()
