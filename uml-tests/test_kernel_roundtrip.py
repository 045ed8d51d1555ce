"""Planner + pyroute2 apply against the real IPVS of the UML kernel (ANCHORS §2.9)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pyvrrp.ipvs import kernel
from pyvrrp.ipvs.plan import Dest, Service, ServiceKey, plan

K_TCP = ServiceKey.addr("10.255.0.1", 80)
K_FWM = ServiceKey.mark(7)
K_V6 = ServiceKey.addr("2001:db8::1", 443)
K_UDP = ServiceKey.addr("10.255.0.2", 53, "UDP")
FOREIGN = ServiceKey.addr("10.255.0.9", 8080)

DESIRED = {
    K_TCP: Service(
        K_TCP,
        "rr",
        300,
        "255.255.255.0",
        # keepalived uthreshold / lthreshold: IPVS_DEST_ATTR_U_THRESH / L_THRESH
        dests=(
            Dest("10.1.0.1", 80, 1, "DR", u_threshold=100, l_threshold=10),
            Dest("10.1.0.2", 8080, 3, "NAT"),
        ),
    ),
    K_FWM: Service(K_FWM, "wlc", dests=(Dest("10.1.0.3", 0, 2, "TUN"),)),
    K_V6: Service(K_V6, "sh", 60, "64", dests=(Dest("2001:db8::10", 443, 1, "DR"),)),
    K_UDP: Service(K_UDP, "mh", ops=True, dests=(Dest("10.1.0.4", 53, 1, "DR"),)),
}


@pytest.fixture
def clean_table():  # type: ignore[no-untyped-def]
    assert kernel.ipvs_available(), kernel.ipvs_available().reason
    yield
    table = kernel.read_table()
    kernel.apply(plan(table, {}, set(table)))


def test_ipvs_available_in_guest() -> None:
    st = kernel.ipvs_available()
    assert st.ok and st.reason == ""


def test_round_trip_add_read_edit_delete(clean_table: None) -> None:
    """Every attribute we write reads back equal (NAT/TUN methods, persistence, netmasks,
    fwmark, IPv6 prefix, one-packet flag); re-planning gives nothing; edits use "set"."""
    foreign = Service(FOREIGN, "wlc", dests=(Dest("10.1.0.9", 8080, 1, "DR"),))
    assert kernel.apply(plan({}, {FOREIGN: foreign}, set())) == []

    ops = plan(kernel.read_table(), DESIRED, set())
    assert kernel.apply(ops) == []
    table = kernel.read_table()
    for key, want in DESIRED.items():
        assert table[key] == want
    assert table[FOREIGN] == foreign
    assert plan(table, DESIRED, set(DESIRED)) == []

    if shutil.which("ipvsadm"):
        text = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True).stdout
        assert "TCP  10.255.0.1:80 rr persistent 300 mask 255.255.255.0" in text
        assert "-> 10.1.0.2:8080                Masq    3" in text
        assert "FWM  7 wlc" in text and "Tunnel  2" in text
        assert "[2001:db8::1]:443 sh persistent 60 mask 64" in text
        assert "UDP  10.255.0.2:53 mh ops" in text
        text = subprocess.run(
            ["ipvsadm", "-Ln", "--thresholds"], capture_output=True, text=True, check=True
        ).stdout
        assert re.search(r"-> 10\.1\.0\.1:80\s+100\s+10\s", text), text

    changed = dict(DESIRED)
    changed[K_TCP] = Service(K_TCP, "wrr", dests=(Dest("10.1.0.1", 80, 5, "NAT"),))
    del changed[K_FWM]
    ops = plan(table, changed, set(DESIRED))
    assert [type(o).__name__ for o in ops] == ["DelService", "EditService", "DelDest", "EditDest"]
    assert kernel.apply(ops) == []
    table = kernel.read_table()
    assert K_FWM not in table and table[K_TCP] == changed[K_TCP]
    assert table[K_TCP].dests[0].u_threshold == 0  # the edit ("set") cleared the thresholds
    assert table[FOREIGN] == foreign  # never touched


def test_apply_reports_errors_and_continues(clean_table: None) -> None:
    bad = Service(ServiceKey.addr("10.255.0.5", 80), "nosuchsched")
    good = Service(ServiceKey.addr("10.255.0.6", 80), "rr")
    errors = kernel.apply(plan({}, {bad.key: bad, good.key: good}, set()))
    assert len(errors) == 1 and "10.255.0.5" in str(errors[0])
    assert good.key in kernel.read_table()


def _timeouts() -> str:
    return subprocess.run(["ipvsadm", "-L", "--timeout"], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not shutil.which("ipvsadm"), reason="ipvsadm reads the timeouts back")
def test_set_timeouts_only_changes_the_given_ones() -> None:
    """keepalived lvs_timeouts = ``ipvsadm --set``: IPVS_CMD_SET_CONFIG with u32 timeouts;
    a timeout left out keeps its value."""
    assert kernel.ipvs_available()
    before = _timeouts()
    try:
        kernel.set_timeouts(7200, 30, 15)
        assert "Timeout (tcp tcpfin udp): 7200 30 15" in _timeouts()
        kernel.set_timeouts(udp_s=300)
        assert "Timeout (tcp tcpfin udp): 7200 30 300" in _timeouts()
    finally:
        tcp, fin, udp = (int(x) for x in before.split(":")[1].split())
        kernel.set_timeouts(tcp, fin, udp)
    assert _timeouts() == before
