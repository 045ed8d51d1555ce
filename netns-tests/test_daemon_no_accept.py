"""no_accept (RFC 5798 §6.1 Accept_Mode = False) through nftables, issue 16.

One lb1 runs two instances side by side: VI_51 without accept mode (VIP 192.168.233.200)
and VI_52 with it (192.168.233.201), so the comparison is made in one run on one host:
the client reaches the accepting VIP and lb1's own address, never the no_accept VIP.  The
table is pyvrrp's alone: it moves with nothing on failover (on the backup the VIP is not
local), goes at stop, and `pyvrrp cleanup` deletes it after a kill -9.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from _daemon_helpers import VIP4_B, start, v3

from pyvrrp.lab.topology import VIP4, Lab, PyvrrpNode, wait_for


def _specs(priority: int) -> list[Any]:
    return [
        v3(priority, extra={"accept": False}),
        v3(priority, name="VI_52", vrid=52, vips=(f"{VIP4_B}/32",)),
    ]


def _table(lab: Lab, host: str) -> dict[str, Any] | None:
    """The pyvrrp table as nft's JSON (None when absent)."""
    proc = lab.exec(host, ["nft", "-j", "list", "table", "inet", "pyvrrp"], check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _set_elements(table: dict[str, Any], name: str) -> set[str]:
    for item in table["nftables"]:
        if "set" in item and item["set"]["name"] == name:
            return {str(e) for e in item["set"].get("elem", [])}
    raise AssertionError(f"no set {name} in {table}")


def _ping(lab: Lab, target: str) -> bool:
    return lab.exec("client", ["ping", "-c", "1", "-W", "1", target], check=False).returncode == 0


def _http(lab: Lab, target: str) -> bool:
    return lab.http_get("client", f"http://{target}:8080/", timeout=1.0).ok


def test_no_accept_master_drops_traffic_to_its_vip_and_only_that(lab: Lab) -> None:
    for host in ("lb1", "lb2"):
        lab.start_http_responder(host, host, port=8080)
    lb1 = start(lab, "lb1", *_specs(150))
    lb1.wait_state("MASTER", 10)
    lb2 = start(lab, "lb2", *_specs(100))
    lb2.wait_state("BACKUP", 10)
    wait_for(lambda: lab.holds_vip("lb1") and lab.holds_vip("lb1", VIP4_B), 5, what="lb1 holds both VIPs")

    table = _table(lab, "lb1")
    assert table is not None and _set_elements(table, "vips4") == {VIP4}  # VI_52 accepts: not listed
    assert _ping(lab, VIP4_B) and _http(lab, VIP4_B)  # the accepting VIP answers ...
    assert _ping(lab, lab.ip("lb1")) and _http(lab, lab.ip("lb1"))  # ... so does lb1's own address
    assert not _ping(lab, VIP4) and not _http(lab, VIP4)  # the no_accept one never does
    assert lab.client_arp_mac(VIP4) == lab.mac("lb1")  # yet it is held and announced

    # failover: the backup's table was there all along; lb1's goes with lb1
    assert _table(lab, "lb2") is not None
    assert lb1.stop() == 0
    lb2.wait_state("MASTER", 5, "VI_51")
    wait_for(lambda: lab.holds_vip("lb2"), 5, what="lb2 holds the VIP")
    assert _table(lab, "lb1") is None
    assert not _ping(lab, VIP4) and _ping(lab, VIP4_B)

    # kill -9: the table stays with the VIPs; cleanup removes both
    lb2.kill9()
    assert _table(lab, "lb2") is not None
    proc = lab.exec(
        "lb2",
        [sys.executable, "-m", "pyvrrp", "cleanup", "--socket", str(lb2.socket_path)],
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "removed: nftables table inet pyvrrp" in proc.stdout
    assert _table(lab, "lb2") is None and not lab.holds_vip("lb2")


def test_reload_to_accept_removes_the_table_and_the_vip_answers(lab: Lab) -> None:
    lab.start_http_responder("lb1", "lb1", port=8080)
    node = PyvrrpNode(lab, "lb1", instances=[v3(150, extra={"accept": False})])
    node.start()
    node.wait_state("MASTER", 10)
    wait_for(lambda: lab.holds_vip("lb1"), 5, what="lb1 holds the VIP")
    assert not _ping(lab, VIP4)
    node.config_path.write_text(node.config_path.read_text().replace("accept = false", "accept = true"))
    subprocess.run(
        [sys.executable, "-m", "pyvrrp", "reload", "--socket", str(node.socket_path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    wait_for(lambda: _table(lab, "lb1") is None, 5, what="the table is deleted on reload")
    assert node.state("VI_51") == "MASTER" and _ping(lab, VIP4) and _http(lab, VIP4)
    assert node.stop() == 0
