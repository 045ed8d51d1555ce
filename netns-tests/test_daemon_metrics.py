"""Prometheus ``/metrics`` of real ``pyvrrp run`` daemons, scraped during a failover (issue 14 §10).

Each node listens on its own lab address (``global_defs.metrics_listen``) and is scraped
from inside its own namespace (``ip netns exec``), so no traffic leaves the namespaces
the test created.  The scraper is a stdlib-only child (``python -I``) that scrapes back to
back and writes one JSON line per scrape; the failover itself is measured on the wire,
as in test_daemon_failover.py, to show that scraping does not delay the takeover.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _daemon_helpers import (
    adverts,
    capture,
    ipv4_frame,
    send_frames,
    v3,
    vrrp_payload,
    wait_view,
)

from pyvrrp.lab.topology import VIP4, InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml

pytestmark = pytest.mark.netns

PORT = 9165
SCRAPER_SRC = r"""
import json, re, sys, time, urllib.request
url, duration, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
vip = re.escape(sys.argv[4])
state = re.compile(r'^keepalived_vrrp_state\{[^}]*ip_address="%s"[^}]*\} (\S+)$' % vip, re.M)
became = re.compile(r'^keepalived_become_master_total\{[^}]*iname="VI_51"[^}]*\} (\S+)$', re.M)
end = time.monotonic() + duration
with open(out, "w") as fh:
    while time.monotonic() < end:
        t0 = time.monotonic()
        rec = {"t": time.time()}
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body = r.read().decode()
                rec["status"] = r.status
            m, b = state.search(body), became.search(body)
            rec["state"] = float(m.group(1)) if m else None
            rec["become_master"] = float(b.group(1)) if b else None
        except Exception as exc:
            rec["error"] = repr(exc)
        rec["ms"] = round((time.monotonic() - t0) * 1000, 2)
        fh.write(json.dumps(rec) + "\n")
        fh.flush()
"""


def metrics_node(lab: Lab, host: str, spec: InstanceSpec) -> PyvrrpNode:
    """A PyvrrpNode whose config also has ``metrics_listen`` on the host's lab address."""
    node = PyvrrpNode(lab, host, instances=[spec])
    text = pyvrrp_toml(host, [spec], control_socket=str(node.socket_path), state_dir=str(node.dir))
    listen = f'metrics_listen = "{lab.ip(host)}:{PORT}"'
    node.config_path.write_text(text.replace("[global_defs]\n", f"[global_defs]\n{listen}\n", 1))
    return node


def scrape(lab: Lab, host: str) -> str:
    """One ``GET /metrics`` of ``host``'s listener, from inside ``host``'s namespace."""
    code = (
        "import sys, urllib.request; "
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    )
    proc = lab.exec(host, [sys.executable, "-I", "-c", code, f"http://{lab.ip(host)}:{PORT}/metrics"])
    return proc.stdout


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = []
    for m in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            found.append(float(m.group(2)))
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def start_scraper(lab: Lab, host: str, duration_s: float) -> tuple[subprocess.Popen[Any], Path]:
    out = lab.run_dir / f"scrapes-{host}-{time.monotonic_ns()}.jsonl"
    url = f"http://{lab.ip(host)}:{PORT}/metrics"
    argv = [sys.executable, "-I", "-c", SCRAPER_SRC, url, str(duration_s), str(out), VIP4]
    return lab.popen(host, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), out


def mdi_s(interval_s: float, priority: int) -> float:
    """Master_Down_Interval, RFC 5798 §6.1 (v3: skew scaled by the interval)."""
    return 3 * interval_s + (256 - priority) * interval_s / 256


def start_metrics_pair(lab: Lab) -> tuple[PyvrrpNode, PyvrrpNode]:
    n1 = metrics_node(lab, "lb1", v3(150))
    n1.start()
    n1.wait_state("MASTER", 8)
    n2 = metrics_node(lab, "lb2", v3(100))
    n2.start()
    n2.wait_state("BACKUP", 8)
    wait_view(n2, lambda v: v["master_ip"] is not None, 8, what="lb2 hears the master")
    return n1, n2


VI = {"iname": "VI_51", "intf": "eth0", "vrid": "51"}
PV = {"instance": "VI_51", "interface": "eth0", "vrid": "51"}


def test_scrape_backup_during_kill9_failover(lab: Lab) -> None:
    """Both nodes answer /metrics on their lab address with keepalived-exporter names; lb2
    is scraped back to back while lb1 is killed with -9: every scrape answers, the series
    goes 1 (BACKUP) -> 2 (MASTER), the takeover on the wire still comes Master_Down_Interval
    after lb1's last advert (-20/+50 ms), and afterwards become_master_total is 1."""
    n1, n2 = start_metrics_pair(lab)
    m1, m2 = scrape(lab, "lb1"), scrape(lab, "lb2")
    assert sample(m1, "keepalived_vrrp_state", **VI, ip_address=VIP4) == 2
    assert sample(m2, "keepalived_vrrp_state", **VI, ip_address=VIP4) == 1
    assert sample(m2, "pyvrrp_vrrp_state", **PV, pyvrrp_vrrp_state="BACKUP") == 1
    assert sample(m2, "keepalived_advertisements_received_total", **VI) >= 1
    assert sample(m1, "keepalived_advertisements_sent_total", **VI) >= 1

    scraper, out = start_scraper(lab, "lb2", duration_s=2.5)
    cap = capture(lab)
    try:
        time.sleep(0.6)
        n1.kill9()
        n2.wait_state("MASTER", 3)
        scraper.wait(timeout=15)
    finally:
        if scraper.poll() is None:
            scraper.kill()
            scraper.wait()
        cap.stop()
    recs = [json.loads(ln) for ln in out.read_text().splitlines()]
    errors = [r for r in recs if "error" in r or r.get("status") != 200]
    assert not errors, errors[:3]
    assert len(recs) >= 20, f"only {len(recs)} scrapes in 2.5 s"
    states = [r["state"] for r in recs]
    assert states[0] == 1 and states[-1] == 2, states
    flips = [i for i in range(1, len(states)) if states[i] != states[i - 1]]
    assert len(flips) == 1, states  # BACKUP then MASTER, nothing in between

    events = cap.events()
    old, new = adverts(events, lab, "lb1"), adverts(events, lab, "lb2")
    assert old and new, f"adverts lb1={len(old)} lb2={len(new)}"
    gap = new[0].t - old[-1].t
    expected = mdi_s(0.1, 100)
    assert expected - 0.020 <= gap <= expected + 0.050, (
        f"failover gap {gap:.4f}s while scraped, MDI {expected:.4f}s"
    )
    # the first scrape that says MASTER comes within a scrape (plus its duration) of the takeover
    first_master = next(r for r in recs if r["state"] == 2)
    assert first_master["t"] - new[0].t < 0.5, (first_master, new[0].t)

    after = scrape(lab, "lb2")
    assert sample(after, "keepalived_vrrp_state", **VI, ip_address=VIP4) == 2
    assert sample(after, "keepalived_become_master_total", **VI) == 1
    assert sample(after, "keepalived_release_master_total", **VI) == 0
    assert sample(after, "pyvrrp_vrrp_state", **PV, pyvrrp_vrrp_state="MASTER") == 1
    assert sample(after, "pyvrrp_vips_held", **PV) == 1
    assert sample(after, "pyvrrp_transitions_total", **PV) == 2  # INIT->BACKUP->MASTER


def test_scrape_during_a_flood_counts_the_drops_and_keeps_the_master(lab: Lab) -> None:
    """A flood of TTL-64 adverts (priority 200) at lb1 while lb1 is scraped back to back:
    scrapes keep answering, lb1 stays MASTER, and keepalived_ip_ttl_errors_total /
    pyvrrp_drops_total{reason="ttl"} count what the engine dropped."""
    n1, _n2 = start_metrics_pair(lab)
    src = lab.ip("client")
    frame = ipv4_frame(vrrp_payload(priority=200, src=src), src=src, src_mac=lab.mac("client"), ttl=64)
    scraper, out = start_scraper(lab, "lb1", duration_s=2.0)
    flood = send_frames(lab, "client", [("ttl", frame)], pps=3000.0, duration_s=1.5, max_count=4500)
    try:
        fout, ferr = flood.communicate(timeout=30)
        scraper.wait(timeout=15)
    finally:
        for p in (flood, scraper):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert flood.returncode == 0, ferr
    sent = json.loads(fout)["sent"]["ttl"]
    recs = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert recs and not [r for r in recs if "error" in r or r.get("status") != 200], recs[:3]
    assert all(r["state"] == 2 for r in recs), [r["state"] for r in recs]
    after = scrape(lab, "lb1")
    dropped = sample(after, "keepalived_ip_ttl_errors_total", **VI)
    assert dropped == sample(after, "pyvrrp_drops_total", **PV, reason="ttl")
    assert 0.9 * sent <= dropped <= sent, (dropped, sent)
    assert sample(after, "keepalived_become_master_total", **VI) == 1
    assert n1.state() == "MASTER"
