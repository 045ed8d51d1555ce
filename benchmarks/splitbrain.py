"""The split-brain fault matrix (issue #4 §5): keepalived beside pyvrrp, scenario by scenario.

Usage (root; builds throw-away namespace labs, ``pv<6 hex>-*``)::

    python benchmarks/splitbrain.py [--quick] [--scenarios S1,S3] [--impls keepalived,pyvrrp]
                                    [--json FILE] [--repeat N]

For every scenario and implementation a fresh lab is built (client, lb1 priority 150,
lb2 priority 100, gateway 192.168.233.1), the pair is started (lb1 MASTER), the fault is
applied and reverted, and the script measures over [fault start, revert + settle]:

* **dual s**: seconds with two VIP holders, from both nodes' ``ip addr`` sampled every
  ~20 ms (``nodes``), and from the client's ARP requests answered by two MACs (``client``);
* **outage s**: seconds with no VIP holder (nodes' view);
* **trans**: state transitions of both daemons, during the fault / in the whole window;
* **failed/req**: failed HTTP requests of a client hitting a responder on the VIP every ~50 ms.

Implementations:

* ``keepalived``: 2.2.7, best practice: unicast peers plus a gateway-ping ``track_script``
  (``fall 2 rise 2 weight -60``, so lb1 150 -> 90 < lb2's 100);
* ``pyvrrp``: unicast peers, ``gateway_check`` (ICMP, fault), ``conflict_detection`` and
  ``probe_vip_before_takeover``;
* ``pyvrrp-noprobe``: the same without ``probe_vip_before_takeover`` (conflict detection
  alone has to heal S1/S5/S6; the cost/benefit of the probe, measured both ways).

Full run: VRRPv3, advert_int 1 s for both daemons, 12 s faults (S1-S4, S6), S5 frozen
for 2 x Master_Down_Interval, S7 flapping every 1 s for 20 s.  ``--quick`` (CI smoke, about
a minute): advert_int 0.2 s, 2 s faults, S1, S3 and S5 only, keepalived and pyvrrp.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "netns-tests"))
sys.path.insert(0, str(REPO))

from _faults import (  # noqa: E402
    ALL_GUARDS,
    NO_PROBE,
    SCENARIOS,
    TEST_TIMING,
    Guards,
    Result,
    Timing,
    run_scenario,
)

from pyvrrp.lab.keepalived import keepalived_available  # noqa: E402
from pyvrrp.lab.topology import Lab  # noqa: E402

IMPLS: dict[str, tuple[str, Guards]] = {
    "keepalived": ("keepalived", ALL_GUARDS),
    "pyvrrp": ("pyvrrp", ALL_GUARDS),
    "pyvrrp-noprobe": ("pyvrrp", NO_PROBE),
}
FULL_TIMING = Timing()
QUICK_TIMING = dataclasses.replace(
    TEST_TIMING, fault_s=2.0, settle_s=2.5, flap_period_s=0.5, flap_total_s=3.0
)
QUICK_SCENARIOS = ("S1", "S3", "S5")


def run_one(scenario: str, impl_key: str, timing: Timing) -> Result:
    """One scenario in a fresh lab; an exception becomes ``Result.errors``."""
    impl, guards = IMPLS[impl_key]
    try:
        with Lab(gateway=True, real_servers=False) as lab:
            return run_scenario(lab, scenario, impl, timing, guards)
    except Exception as exc:  # one broken run must not hide the rest of the matrix
        result = Result(impl=impl_key, scenario=scenario)
        result.errors.append(f"{type(exc).__name__}: {exc}"[:2000])
        traceback.print_exc(file=sys.stderr)
        return result


def _fmt_cell(r: Result | None) -> list[str]:
    if r is None:
        return ["", "", "", ""]
    if r.errors:
        return ["error", "", "", ""]
    dual = f"{r.dual_nodes_s:.2f} / {r.dual_client_s:.2f}"
    return [dual, f"{r.outage_s:.2f}", f"{r.transitions_fault} / {r.transitions}", f"{r.failed}/{r.requests}"]


def table(results: dict[tuple[str, str], Result], scenarios: list[str], impls: list[str]) -> str:
    """A markdown table: one row per scenario, four columns per implementation."""
    head = ["scenario"]
    for impl in impls:
        head += [f"{impl} dual s (nodes / client)", "outage s", "trans (fault / all)", "failed/req"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        row = [sc]
        for impl in impls:
            row += _fmt_cell(results.get((sc, impl)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def details(results: dict[tuple[str, str], Result], scenarios: list[str], impls: list[str]) -> str:
    """Per-run extras: episodes, who held the VIP during the fault, flaps, final states."""
    out = []
    for sc in scenarios:
        for impl in impls:
            r = results.get((sc, impl))
            if r is None:
                continue
            if r.errors:
                out.append(f"{sc} {impl}: ERROR {r.errors[0][:300]}")
                continue
            extra = f" flaps {r.flaps}" if r.flaps else ""
            out.append(
                f"{sc} {impl}: fault {r.fault_s:.1f} s, window {r.window_s:.1f} s, dual episodes "
                f"{r.dual_episodes} (longest {r.dual_longest_s:.2f} s, first at "
                f"{'-' if r.first_dual_s is None else f'+{r.first_dual_s:.2f} s'}), held during fault "
                f"lb1 {r.held_while_faulted_s.get('lb1', 0):.2f} s "
                f"lb2 {r.held_while_faulted_s.get('lb2', 0):.2f} s,"
                f" client MAC flips {r.client_mac_flips}, takeover gate {r.takeover_requests}, conflicts "
                f"{r.conflicts},{extra} final {r.final}"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: short timings, S1/S3/S5")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--impls", help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--json", help="also write every result as JSON to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/splitbrain.py needs root (network namespaces)", file=sys.stderr)
        return 2
    timing = QUICK_TIMING if args.quick else FULL_TIMING
    scenarios = (
        args.scenarios.split(",") if args.scenarios else list(QUICK_SCENARIOS if args.quick else SCENARIOS)
    )
    default_impls = ["keepalived", "pyvrrp"] if args.quick else list(IMPLS)
    impls = args.impls.split(",") if args.impls else default_impls
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
    for name in impls:
        if name not in IMPLS:
            parser.error(f"unknown implementation {name!r}")
    if "keepalived" in impls and not keepalived_available():
        print("keepalived not installed: skipping it", file=sys.stderr)
        impls = [i for i in impls if i != "keepalived"]

    started = time.time()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    t = timing
    print(
        f"split-brain matrix, {when}; VRRPv3 advert_int {t.advert_int_s:g} s, faults {t.fault_s:g} s "
        f"(S5: {2 * t.master_down_s:.2f} s frozen, S7: {t.flap_period_s:g} s down/up for "
        f"{t.flap_total_s:g} s), settle {t.settle_s:g} s; pyvrrp gateway_check icmp interval "
        f"{t.gw_interval_s:g} s timeout {t.gw_timeout_s:g} s fall {t.gw_fall} rise {t.gw_rise}, "
        f"conflict interval {t.conflict_interval_s:g} s",
        flush=True,
    )
    results: dict[tuple[str, str], Result] = {}
    for sc in scenarios:
        for impl in impls:
            t0 = time.time()
            r = run_one(sc, impl, timing)
            results[(sc, impl)] = r
            status = "ERROR" if r.errors else f"dual {r.dual_nodes_s:.2f} s outage {r.outage_s:.2f} s"
            print(f"  {sc} {impl:15s} {status} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    print()
    for sc in scenarios:
        print(f"{sc}: {SCENARIOS[sc]}")
    print()
    print(table(results, scenarios, impls))
    print()
    print(details(results, scenarios, impls))
    print(f"\ntotal {time.time() - started:.0f} s")
    if args.json:
        payload: dict[str, Any] = {
            "started": started,
            "timing": dataclasses.asdict(timing),
            "results": [
                r.as_dict() | {"impl_key": impl, "scenario": sc} for (sc, impl), r in results.items()
            ],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 1 if any(r.errors for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
