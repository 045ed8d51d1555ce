"""The split-brain fault matrix S1-S7 (issue #4 §5) with the quorum witness on (issue 13 §4).

The same lab, timings, faults and bounds as ``test_splitbrain_matrix.py`` (lb1 priority 150
MASTER, lb2 100 BACKUP, VRRPv3 at 0.2 s, unicast peers, gateway check, conflict detection,
VIP probe), plus ``witness = true`` on the instance and one real etcd member (Debian's
etcd-server) in its own namespace, reached by each scheduler over its own link ``wit0``
(``_etcd.Etcd``): the matrix's faults are on the LAN, so both nodes keep reaching etcd.
Lease TTL 4 s, margin 1 s (a deadline 3 s after the last keepalive: longer than S5's freeze
of 2 x Master_Down_Interval plus one renewal interval, so a frozen holder keeps its key).

What the witness adds: with both nodes reaching etcd the key has one holder, so every
scenario has 0 s of dual master (nodes' and client's view), also with the VIP probe off
(S1, S5, S6: where the matrix without the witness has dual-master episodes that conflict
detection must end, ``test_s1/s5/s6_conflict_detection_alone_*``).  And the witness must
not cost anything where the guards already work: the same outage, transition and final-
state bounds as the matrix.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _etcd import Etcd  # noqa: E402
from _faults import ALL_GUARDS, NO_PROBE, Guards, Result, node_logs, run_scenario  # noqa: E402
from test_splitbrain_matrix import TIMING  # noqa: E402

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        shutil.which("etcd") is None, reason="etcd not installed (apt-get install etcd-server)"
    ),
]

WITNESS = dataclasses.replace(ALL_GUARDS, witness=True)
WITNESS_NO_PROBE = dataclasses.replace(NO_PROBE, witness=True)

_RESULTS: dict[tuple[str, Guards], tuple[Result, str]] = {}


def measure(scenario: str, guards: Guards = WITNESS) -> tuple[Result, str]:
    """Run ``scenario`` once per session in a fresh lab with one etcd member; (result, logs)."""
    key = (scenario, guards)
    if key not in _RESULTS:
        from conftest import make_lab

        lab = make_lab(gateway=True, real_servers=False)
        lab.up()
        etcd: Etcd | None = None
        try:
            etcd = Etcd(lab)
            etcd.start()
            result = run_scenario(lab, scenario, "pyvrrp", TIMING, guards)
            logs = node_logs(lab)
        finally:
            if etcd is not None:
                etcd.destroy()
            lab.down()
        _RESULTS[key] = (result, logs)
    return _RESULTS[key]


def _why(result: Result, logs: str) -> str:
    return f"\n{result.as_dict()}\n{logs[-6000:]}"


def _no_dual(result: Result, logs: str) -> None:
    assert not result.errors, _why(result, logs)
    assert result.requests >= 10, "the HTTP client did not run" + _why(result, logs)
    assert '"witness_acquired"' in logs, "the witness was not in use" + _why(result, logs)
    assert result.dual_nodes_s == 0.0, _why(result, logs)
    assert result.dual_client_s == 0.0, _why(result, logs)
    assert result.dual_episodes == 0, _why(result, logs)


def test_s1_vrrp_dropped() -> None:
    result, logs = measure("S1")
    _no_dual(result, logs)
    assert result.takeover_requests >= 1, "the fault did not reach the daemons" + _why(result, logs)
    assert result.outage_s == 0.0, _why(result, logs)
    assert result.held_while_faulted_s["lb2"] == 0.0, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)


@pytest.mark.parametrize("scenario", ["S1", "S5", "S6"])
def test_witness_alone_prevents_the_dual_master(scenario: str) -> None:
    """S1, S5, S6 with the VIP probe off: without the witness lb2 takes over and conflict
    detection ends the dual master (the matrix's ``*_conflict_detection_alone_*``); with it,
    lb2's takeover finds lb1's key and is denied: no second holder at all, no outage."""
    result, logs = measure(scenario, WITNESS_NO_PROBE)
    _no_dual(result, logs)
    assert result.takeover_requests >= 1, "lb2's Master_Down never fired" + _why(result, logs)
    if scenario != "S5":  # S5: lb1 resumes while lb2 still waits for the key: takeover_abandoned
        assert "held by lb1" in logs, "lb2 was not denied by the witness" + _why(result, logs)
    assert result.held_while_faulted_s["lb2"] == 0.0, _why(result, logs)
    assert result.outage_s == 0.0, _why(result, logs)
    assert result.conflicts == 0, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)


def test_s2_multicast_dropped_unicast_peers() -> None:
    result, logs = measure("S2")
    _no_dual(result, logs)
    assert result.outage_s == 0.0, _why(result, logs)
    assert result.transitions == 0, _why(result, logs)
    assert result.failed == 0, _why(result, logs)


def test_s3_master_loses_gateway_hands_over_and_returns() -> None:
    """S3: lb1 goes FAULT (its key is deleted as it leaves MASTER), lb2 acquires and takes
    over within the matrix's outage bound; after the gateway returns lb1 preempts (a claim,
    about one renewal interval longer than without the witness) and is MASTER again."""
    result, logs = measure("S3")
    _no_dual(result, logs)
    assert result.held_while_faulted_s["lb2"] > 0.5 * TIMING.fault_s, "lb2 did not take over" + _why(
        result, logs
    )
    assert result.outage_s < 3 * TIMING.advert_int_s + 0.5, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)


def test_s4_cut_off_node_never_holds_vip() -> None:
    result, logs = measure("S4")
    _no_dual(result, logs)
    assert result.held_s["lb2"] == 0.0, _why(result, logs)
    assert result.outage_s == 0.0, _why(result, logs)
    assert result.failed == 0, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)


def test_s5_frozen_master() -> None:
    """S5: frozen for 2 x Master_Down_Interval, shorter than the lease deadline: lb1 keeps
    its key and its VIP, lb2 defers (probe) and would be denied anyway (witness)."""
    result, logs = measure("S5")
    _no_dual(result, logs)
    assert result.takeover_requests >= 1, "lb2's Master_Down never fired" + _why(result, logs)
    assert result.outage_s == 0.0, _why(result, logs)
    assert '"witness_give_up"' not in logs, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)


def test_s6_one_way_loss() -> None:
    result, logs = measure("S6")
    _no_dual(result, logs)
    assert result.takeover_requests >= 2, _why(result, logs)
    assert result.held_while_faulted_s["lb2"] == 0.0, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)


def test_s7_flapping_link() -> None:
    """S7: no more transitions than flaps (two while flapping), then one preemption back."""
    result, logs = measure("S7")
    _no_dual(result, logs)
    assert result.flaps >= 5, result.as_dict()
    assert result.transitions_fault <= 2, _why(result, logs)
    assert result.transitions <= result.flaps, _why(result, logs)
    assert result.held_while_faulted_s["lb2"] > 0.5 * TIMING.flap_total_s, _why(result, logs)
    assert result.outage_s < 3 * TIMING.advert_int_s + 0.5, _why(result, logs)
    assert result.final == {"lb1": "MASTER", "lb2": "BACKUP"}, _why(result, logs)
