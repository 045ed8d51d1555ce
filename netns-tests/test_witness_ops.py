"""The quorum witness, operations side (issue 13 items 1, 2, 6): etcd user/password auth, what
``pyvrrp state`` / the metrics endpoint show, and the fencing token reaching the scripts.

Same topology as ``test_witness.py`` (``_etcd.Etcd``: one etcd member in its own namespace,
reached by lb1 and lb2 over ``wit0``).  VRRPv3 at 0.1 s, lease TTL 2 s, margin 0.5 s unless
said otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _daemon_helpers import log_events, v3, wait_view
from _etcd import ENDPOINT, Etcd

from pyvrrp.lab.topology import Lab, PyvrrpNode, pyvrrp_toml, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("etcd") is None or shutil.which("etcdctl") is None,
    reason="etcd not installed (apt-get install etcd-server etcd-client)",
)

METRICS = "127.0.0.1:9651"


def node(lab: Lab, host: str, priority: int, *, glob: str = "", inst: dict[str, Any] | None = None,
         **wkw: Any) -> PyvrrpNode:  # fmt: skip
    d = lab.run_dir / f"pyvrrp-{host}"
    spec = v3(priority, extra={"witness": True, **(inst or {})})
    text = pyvrrp_toml(host, [spec], control_socket=str(d / "control.sock"), state_dir=str(d))
    opts = {"ttl": 2, "margin": 0.5, **wkw}
    table = ", ".join([f'endpoints = ["{ENDPOINT}"]', *(f"{k} = {json.dumps(v)}" for k, v in opts.items())])
    text = text.replace("[global_defs]\n", f"[global_defs]\nwitness = {{ {table} }}\n{glob}", 1)
    return PyvrrpNode(lab, host, text).start()


def etcdctl(etcd: Etcd, *args: str, user: str | None = None) -> str:
    argv = ["ip", "netns", "exec", etcd.ns, "etcdctl", "--endpoints", ENDPOINT, *args]
    if user:
        argv[7:7] = ["--user", user]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
    )
    assert proc.returncode == 0, f"etcdctl {args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def enable_auth(etcd: Etcd) -> None:
    """root (needed by `auth enable`) and a user pyvrrp allowed to read and write /pyvrrp only."""
    etcdctl(etcd, "user", "add", "root:rootpw")
    etcdctl(etcd, "role", "add", "root")
    etcdctl(etcd, "user", "grant-role", "root", "root")
    etcdctl(etcd, "user", "add", "pyvrrp:s3cret")
    etcdctl(etcd, "role", "add", "pyvrrp-rw")
    etcdctl(etcd, "role", "grant-permission", "pyvrrp-rw", "--prefix=true", "readwrite", "/pyvrrp")
    etcdctl(etcd, "user", "grant-role", "pyvrrp", "pyvrrp-rw")
    etcdctl(etcd, "auth", "enable")


def test_auth_holds_the_key_reauthenticates_and_a_wrong_password_is_clear(wlab: tuple[Lab, Etcd]) -> None:
    """Auth on: lb1 (right password) authenticates and holds the key; etcd restarted (its simple
    tokens are gone) lb1 re-authenticates at once and keeps the VIP; lb2 (wrong password) logs
    an actionable error, no traceback, shows it in ``state`` and never takes the VIP, even with
    lb1 gone (policy release: no lease, no witnessed VIP)."""
    lab, etcd = wlab
    enable_auth(etcd)
    lb1 = node(lab, "lb1", 150, user="pyvrrp", password="s3cret", ttl=10, margin=2)
    lb1.wait_state("MASTER", 15)
    w1 = wait_view(lb1, lambda v: bool(v["witness"]["revision"]), 10, what="lb1 holds the key")["witness"]
    got = etcdctl(etcd, "get", "/pyvrrp/instance/VI_51", user="root:rootpw")
    assert "lb1" in got, got
    assert w1["holder"] == "lb1"

    etcd.stop()
    etcd.start()  # simple tokens live in memory: lb1's token is now invalid
    wait_view(lb1, lambda v: v["witness"]["reauths"] >= 1 and v["witness"]["available"], 15, what="re-auth")
    assert lb1.state("VI_51") == "MASTER" and lab.holds_vip("lb1")
    assert not log_events(lb1, "witness_give_up")
    assert not log_events(lb1, "witness_auth_failed")

    lb2 = node(lab, "lb2", 100, user="pyvrrp", password="wrong")
    lb2.wait_state("BACKUP", 15)
    wait_for(lambda: bool(log_events(lb2, "witness_auth_failed")), 10, what="lb2 logs the auth failure")
    rec = log_events(lb2, "witness_auth_failed")[0]
    assert "refused user 'pyvrrp'" in rec["error"] and "global_defs.witness.user" in rec["error"], rec
    assert rec["level"] in ("warning", "error") and rec["policy"] == "release"
    w2 = lb2.instance("VI_51")["witness"]  # type: ignore[index]
    assert "refused user" in (w2["last_error"] or "") and not w2["available"] and w2["lease_id"] is None
    assert "Traceback" not in lb2.log_text()
    lb1.stop()
    time.sleep(3.0)  # > Master_Down + the 1 s wait for a release
    assert lb2.alive() and not lab.holds_vip("lb2"), lb2.log_text()[-2000:]
    assert lb2.state("VI_51") in ("BACKUP", "FAULT")


def _env_script(path: Path, log: Path) -> str:
    path.write_text(
        f'#!/bin/sh\necho "$0 $* rev=$PYVRRP_WITNESS_REVISION epoch=$PYVRRP_EPOCH" >> {log}\nexit 0\n'
    )
    path.chmod(0o755)
    return str(path)


def _metric(lab: Lab, host: str, name: str) -> float:
    out = lab.exec(host, ["curl", "-s", "-m", "2", f"http://{METRICS}/metrics"]).stdout
    m = re.search(rf"^{name}(?:_total)?{{[^}}]*}} (\S+)$", out, re.M)
    assert m, f"{name} not in /metrics:\n{out[:3000]}"
    return float(m.group(1))


def test_state_metrics_and_scripts_show_the_witness(wlab: tuple[Lab, Etcd], tmp_path: Path) -> None:
    """Item 6 and the fencing token: ``state`` (JSON and table) shows the endpoint, lease id,
    seconds to the deadline and the holder; /metrics has held, revision, renew failures; an
    etcd stall shows up as renew failures (state, log, metric); notify_master and fence_script
    get the revision the node holds as PYVRRP_WITNESS_REVISION."""
    lab, etcd = wlab
    log = tmp_path / "scripts.log"
    glob = f'metrics_listen = "{METRICS}"\n'
    lb1 = node(lab, "lb1", 150, glob=glob, inst={"notify_master": _env_script(tmp_path / "n1.sh", log)})
    lb1.wait_state("MASTER", 15)
    w = wait_view(lb1, lambda v: bool(v["witness"]["revision"]), 10, what="lb1 holds the key")["witness"]
    assert w["endpoint"] == ENDPOINT and w["holder"] == "lb1" and w["lease_id"]
    assert 0 < w["deadline_in_s"] <= 1.5
    text = lb1.state_text()
    assert f"lease {w['lease_id']} deadline in " in text and "held by this node" in text, text
    assert ENDPOINT in text, text
    assert _metric(lab, "lb1", "pyvrrp_witness_held") == 1
    assert _metric(lab, "lb1", "pyvrrp_witness_revision") == w["revision"]
    wait_for(lambda: log.exists() and "n1.sh" in log.read_text(), 5, what="notify_master ran")
    assert f"rev={w['revision']} " in log.read_text(), log.read_text()

    scripts = {"notify_master": _env_script(tmp_path / "n2.sh", log)}
    scripts["fence_script"] = _env_script(tmp_path / "f2.sh", log)
    lb2 = node(lab, "lb2", 100, glob=glob, inst=scripts)
    lb2.wait_state("BACKUP", 15)
    wait_view(lb2, lambda v: v["master_ip"] is not None, 10, what="lb2 hears lb1")
    w2 = lb2.instance("VI_51")["witness"]  # type: ignore[index]
    assert not w2["held"] and w2["holder"] in (None, "lb1")

    etcd.signal(signal.SIGSTOP)  # a stall shorter than the deadline: renewals time out
    time.sleep(1.0)
    etcd.signal(signal.SIGCONT)
    v = wait_view(lb1, lambda v: v["witness"]["renew_failures"] >= 1, 5, what="renew failures counted")
    assert v["witness"]["last_error"] is None or "10.99.0.100" in v["witness"]["last_error"]
    assert log_events(lb1, "witness_renew_failed"), "no log line for the failed renewal"
    assert _metric(lab, "lb1", "pyvrrp_witness_renew_failures") >= 1
    assert "renew failures " in lb1.state_text()

    lb1.kill9()  # lb2 takes over after lb1's lease expires, fence first, then notify
    lb2.wait_state("MASTER", 15)
    w2 = wait_view(lb2, lambda v: bool(v["witness"]["revision"]), 5, what="lb2 holds the key")["witness"]
    assert w2["holder"] == "lb2"
    wait_for(lambda: "n2.sh" in log.read_text(), 5, what="lb2's notify_master ran")
    lines = log.read_text().splitlines()
    fence = [x for x in lines if "f2.sh" in x]
    notify = [x for x in lines if "n2.sh" in x]
    assert fence and f"rev={w2['revision']} " in fence[-1], lines
    assert notify and f"rev={w2['revision']} " in notify[-1], lines
    assert w2["revision"] > w["revision"]
