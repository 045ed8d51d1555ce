"""The quorum witness in a two-site lab (issue 13 §4-§5): W1-W7, keepalived beside pyvrrp
without and with the witness, in the same run.

Usage (root; builds throw-away namespace labs, ``pv<6 hex>-*``, see netns-tests/_twosite.py)::

    python benchmarks/witness.py [--quick] [--scenarios W1,W2] [--impls keepalived,pyvrrp]
                                 [--repeat N] [--json FILE]

Lab: two switches joined by one trunk veth, a gateway and a client on each side, lb1
(priority 150) on site A, lb2 (priority 100) on site B, a 3-member etcd (Debian etcd-server,
``--pre-vote``): e1 at site A, e2 at site B, e3 at a routed witness site.  For every scenario
and implementation a fresh lab and etcd are built, the pair is started (lb1 MASTER), the fault
is applied (and reverted) and the window [fault, end of settling] is measured:

* **dual s (nodes / client)**: seconds with the VIP on both schedulers (``ip addr`` in each,
  every ~20 ms) / seconds during which the two sites' clients, each broadcasting an ARP
  request for the VIP every 50 ms, were answered by two different MACs (0.1 s bins);
* **outage s**: seconds with the VIP on neither scheduler;
* **trans**: state changes logged by both daemons (during the fault / in the whole window);
* **failed/req**: HTTP GETs to the VIP from both clients every 50 ms (each LB answers with its
  name while it holds the VIP);
* **heal dual s**: W1/W2, seconds with two holders after the trunk came back, and whether
  lb1 (150) ever gave the VIP up to lb2 (100) after the heal (``yield``).

Scenarios (issue 13 §4):

* W1 trunk cut, e3 stays with site A (the master keeps the etcd majority);
* W2 trunk cut, e3 stays with site B (the master is on the minority side);
* W3 ``kill -9`` of the master (time to lb2 holding the VIP: ``failover s``);
* W4 SIGTERM of the master (``failover s``);
* W5 e1 (the master's own-site member, its first endpoint) killed, restarted after the fault;
* W6 all of etcd killed, restarted after the fault (``on_unavailable = "release"``; ``W6v``:
  the same with ``"vrrp"``, witness implementation only);
* W7 the master frozen (SIGSTOP) for ttl + 2 s, then resumed (``pyvrrp-witness-noprobe``
  too: the dual-master seconds with and without the VIP probe; also in W3, where the VIP the
  killed daemon left in its kernel answers the backup's probe).

W5/W6 concern etcd only: they are run for the witness implementation (keepalived and pyvrrp
without the witness never talk to etcd).  Implementations:

* ``keepalived``: best practice, unicast peers plus a ping of its own site's gateway as a
  ``track_script`` (``weight -60``), logging to a file (``-n -l -D -P -G``);
* ``pyvrrp``: unicast peers, ``gateway_check`` of its own site's gateway, ``conflict_detection``,
  ``probe_vip_before_takeover``;
* ``pyvrrp-witness``: the same plus ``global_defs.witness`` (own-site member first, then the
  witness site, then the other site) and ``witness = true``.

Full run: VRRPv3 advert_int 1 s, ttl 5 s, margin 1 s (the defaults), faults 8 s, settle 5 s.
``--quick`` (CI smoke, under a minute and a half): advert_int 0.2 s, ttl 2 s, margin 0.5 s,
W1 only, 3 s fault.  ``--repeat N`` alternates the order of the implementations (ABBA).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "netns-tests"))
sys.path.insert(0, str(REPO))

from _faults import (  # noqa: E402
    ALL_GUARDS,
    ARP_PROBER_SRC,
    HTTP_PORT,
    NO_PROBE,
    TEST_TIMING,
    HolderSampler,
    LineRecorder,
    Result,
    Timing,
    compute,
    daemon_pids,
    events_in,
    log_size,
    start_http,
    transitions_in,
)
from _twosite import (  # noqa: E402
    CLIENTS,
    SITE_A,
    SITE_B,
    Impl,
    TwoSiteEtcd,
    TwoSiteLab,
    WTiming,
    client_dual,
    start_pair,
)

from pyvrrp.lab import probe  # noqa: E402
from pyvrrp.lab.keepalived import keepalived_available  # noqa: E402
from pyvrrp.lab.topology import LAB_IFNAME, VIP4, DaemonNode, wait_for  # noqa: E402

SCENARIOS: dict[str, str] = {
    "W1": "trunk cut, e3 with site A: the master's side keeps the etcd majority",
    "W2": "trunk cut, e3 with site B: the master is on the minority side",
    "W3": "kill -9 of the master",
    "W4": "SIGTERM of the master",
    "W5": "e1 (the master's own-site etcd member) down, then back",
    "W6": "all of etcd down, then back (on_unavailable = release)",
    "W6v": "all of etcd down, then back (on_unavailable = vrrp)",
    "W7": "the master frozen (SIGSTOP) for ttl + 2 s, then resumed",
}
ETCD_ONLY = {"W5", "W6", "W6v"}


IMPLS: dict[str, Impl] = {
    "keepalived": Impl("keepalived", ALL_GUARDS),
    "pyvrrp": Impl("pyvrrp", ALL_GUARDS),
    "pyvrrp-witness": Impl("pyvrrp", ALL_GUARDS, witness=True),
    "pyvrrp-witness-noprobe": Impl("pyvrrp", NO_PROBE, witness=True),
}
DEFAULT_IMPLS = ("keepalived", "pyvrrp", "pyvrrp-witness")


FULL = WTiming(dataclasses.replace(Timing(), fault_s=8.0, settle_s=5.0))
QUICK = WTiming(
    dataclasses.replace(TEST_TIMING, fault_s=3.0, settle_s=2.0, baseline_s=0.5), ttl_s=2, margin_s=0.5
)


def runs_for(scenario: str, impl_key: str) -> bool:
    """W5/W6 only with the witness; W6v only for pyvrrp-witness; the no-probe variant in W3 and W7."""
    if impl_key == "pyvrrp-witness-noprobe":
        return scenario in ("W3", "W7")
    if scenario == "W6v":
        return impl_key == "pyvrrp-witness"
    if scenario in ETCD_ONLY:
        return IMPLS[impl_key].witness
    return True


# --------------------------------------------------------------------------- one run


@dataclasses.dataclass
class WResult:
    base: Result
    impl_key: str
    dual_client_s: float = 0.0
    failover_s: float | None = None  # W3/W4: fault -> lb2 holds the VIP
    heal_dual_s: float | None = None  # W1/W2: two holders after the trunk came back
    lb1_yielded: bool | None = None  # W1/W2: lb1 held the VIP at the heal and lost it after
    gave_up_s: float | None = None  # W2/W6/W7: fault -> lb1 without the VIP
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return d | {"base": self.base.as_dict()}


def _first(
    samples: list[tuple[float, bool, bool]], since: float, idx: int, want: bool = True
) -> float | None:
    return next((s[0] for s in samples if s[0] >= since and s[idx] == want), None)


def _apply(
    sc: str,
    lab: TwoSiteLab,
    etcd: TwoSiteEtcd,
    nodes: dict[str, DaemonNode],
    wt: WTiming,
    sampler: HolderSampler,
) -> tuple[float, Callable[[], None] | None]:
    """Apply the fault; returns (revert time, a cleanup run at the end or None)."""
    t = wt.vrrp
    if sc in ("W1", "W2"):
        lab.split(master_side_keeps_majority=(sc == "W1"), master_site=SITE_A)
        time.sleep(t.fault_s)
        lab.heal()
        return time.time(), None
    if sc in ("W3", "W4"):
        t0 = time.time()
        if sc == "W3":
            nodes["lb1"].kill9()
        else:
            assert nodes["lb1"].proc is not None
            nodes["lb1"].proc.send_signal(signal.SIGTERM)
        bound = wt.ttl_s + 3 * t.master_down_s + 5.0
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: _first(sampler.samples, t0, 2) is not None, bound, 0.02, what="lb2 holds")
        return time.time(), None
    if sc == "W5":
        etcd.kill("e1")
        time.sleep(t.fault_s)
        etcd.start("e1")
        return time.time(), None
    if sc in ("W6", "W6v"):
        etcd.stop_all()
        time.sleep(t.fault_s)
        etcd.start()
        return time.time(), None
    if sc == "W7":
        pids = daemon_pids(nodes["lb1"])
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(wt.ttl_s + 2.0)
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        return time.time(), None
    raise ValueError(f"unknown scenario {sc!r}")


def run_one(sc: str, impl_key: str, wt: WTiming) -> WResult:
    """One scenario for one implementation in a fresh lab; an exception becomes ``errors``."""
    impl = IMPLS[impl_key]
    res = WResult(Result(impl=impl_key, scenario=sc), impl_key)
    try:
        with TwoSiteLab() as lab:
            etcd = TwoSiteEtcd(lab)
            try:
                etcd.start()
                _measure(sc, lab, etcd, impl, wt, res)
            finally:
                etcd.destroy()
    except Exception as exc:  # one broken run must not hide the rest of the table
        res.base.errors.append(f"{type(exc).__name__}: {exc}"[:2000])
        traceback.print_exc(file=sys.stderr)
    return res


def _measure(sc: str, lab: TwoSiteLab, etcd: TwoSiteEtcd, impl: Impl, wt: WTiming, res: WResult) -> None:
    t = wt.vrrp
    result = res.base
    recorders: list[LineRecorder] = []
    sampler: HolderSampler | None = None
    nodes: dict[str, DaemonNode] = {}
    try:
        start_http(lab)
        nodes = start_pair(lab, etcd, impl, wt, policy="vrrp" if sc == "W6v" else "release")
        sampler = HolderSampler(lab, t.sample_period_s)
        sampler.start()
        arp: dict[str, LineRecorder] = {}
        http: dict[str, LineRecorder] = {}
        for site, client in CLIENTS.items():
            argv = [
                sys.executable,
                "-I",
                "-c",
                ARP_PROBER_SRC,
                LAB_IFNAME,
                VIP4,
                lab.ip(client),
                str(t.arp_period_s),
            ]
            arp[site] = LineRecorder(lab, client, f"arp-{client}", argv)
            http[site] = LineRecorder(
                lab,
                client,
                f"http-{client}",
                probe.command(VIP4, port=HTTP_PORT, interval_s=0.05, timeout_s=0.5),
            )
            recorders += [arp[site], http[site]]
        time.sleep(t.baseline_s)
        offsets = {h: log_size(n) for h, n in nodes.items()}
        t_fault = time.time()
        t_revert, _ = _apply(sc, lab, etcd, nodes, wt, sampler)
        result.fault_s = round(t_revert - t_fault, 3)
        at_revert = {h: log_size(n) for h, n in nodes.items()}
        time.sleep(t.settle_s + (3.0 if sc in ("W6", "W6v") else 0.0))
        t_end = time.time()
        result.transitions = sum(transitions_in(n, offsets[h]) for h, n in nodes.items())
        result.transitions_fault = sum(transitions_in(n, offsets[h], at_revert[h]) for h, n in nodes.items())
        result.final = {h: n.state() for h, n in nodes.items()}
        result.conflicts = sum(events_in(n, offsets[h], "dual_master_conflict") for h, n in nodes.items())
        sampler.stop()
        for rec in recorders:
            rec.stop()
        replies = probe.read(http[SITE_A].path) + probe.read(http[SITE_B].path)
        compute(result, sampler.samples, [], replies, t_fault, t_revert, t_end)
        view = client_dual(arp[SITE_A].records(), arp[SITE_B].records(), t_fault, t_end)
        res.dual_client_s = view.dual_s
        s = sampler.samples
        if sc in ("W3", "W4"):
            got = _first(s, t_fault, 2)
            res.failover_s = None if got is None else round(got - t_fault, 3)
        if sc in ("W1", "W2"):
            res.heal_dual_s = result.dual_after_revert_s
            after = [x for x in s if x[0] >= t_revert]
            res.lb1_yielded = bool(after and after[0][1] and any(not a for _, a, _ in after))
        if sc in ("W2", "W6", "W6v", "W7"):
            lost = _first(s, t_fault, 1, want=False)
            res.gave_up_s = None if lost is None else round(lost - t_fault, 3)
        for h, n in nodes.items():
            if (sc not in ("W3", "W4") or h != "lb1") and not n.alive():
                result.errors.append(f"{h} died: {n.log_text()[-800:]}")
        res.extra["run_dir_logs"] = {h: str(n.log_path) for h, n in nodes.items()}
        if os.environ.get("PYVRRP_BENCH_KEEP"):
            keep = Path(os.environ["PYVRRP_BENCH_KEEP"]) / f"{sc}-{res.impl_key}-{int(t_fault)}"
            keep.mkdir(parents=True, exist_ok=True)
            for h, n in nodes.items():
                (keep / f"{h}.log").write_bytes(n.log_path.read_bytes())
            (keep / "samples.json").write_text(
                json.dumps({"t_fault": t_fault, "t_revert": t_revert, "samples": s})
            )
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        for rec in recorders:
            with contextlib.suppress(Exception):
                rec.stop()
        for node in nodes.values():
            for pid in daemon_pids(node):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                node.stop(timeout_s=5.0)


# --------------------------------------------------------------------------- report


def _rng(values: list[float | None], fmt: str = "{:.2f}") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def cell(rs: list[WResult]) -> list[str]:
    if not rs:
        return ["n/a", "", "", "", ""]
    ok = [r for r in rs if not r.base.errors]
    if not ok:
        return ["error", "", "", "", ""]
    dual = f"{_rng([r.base.dual_nodes_s for r in ok])} / {_rng([r.dual_client_s for r in ok])}"
    n0 = "{:.0f}"
    tf, ta = _rng([r.base.transitions_fault for r in ok], n0), _rng([r.base.transitions for r in ok], n0)
    trans = f"{tf} / {ta}"
    failed = _rng([r.base.failed for r in ok], "{:.0f}") + "/" + _rng([r.base.requests for r in ok], "{:.0f}")
    extra = []
    if any(r.failover_s is not None for r in ok):
        extra.append(f"failover {_rng([r.failover_s for r in ok])}")
    if any(r.heal_dual_s is not None for r in ok):
        yields = sum(1 for r in ok if r.lb1_yielded)
        extra.append(f"heal dual {_rng([r.heal_dual_s for r in ok])}, yield {yields}/{len(ok)}")
    if any(r.gave_up_s is not None for r in ok) and any(
        r.base.held_while_faulted_s.get("lb1", 1) < r.base.fault_s - 0.1 for r in ok
    ):
        extra.append(f"gave up {_rng([r.gave_up_s for r in ok])}")
    errs = len(rs) - len(ok)
    if errs:
        extra.append(f"{errs} error(s)")
    return [dual, _rng([r.base.outage_s for r in ok]), trans, failed, "; ".join(extra)]


def table(results: dict[tuple[str, str], list[WResult]], scenarios: list[str], impls: list[str]) -> str:
    head = [
        "scenario",
        "implementation",
        "dual s (nodes / client)",
        "outage s",
        "trans (fault / all)",
        "failed/req",
        "notes",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        for impl in impls:
            if not runs_for(sc, impl):
                continue
            lines.append("| " + " | ".join([sc, impl, *cell(results.get((sc, impl), []))]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: short timings, W1 once")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--impls", help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the whole matrix (ABBA order)")
    parser.add_argument("--json", help="also write every result as JSON to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/witness.py needs root (network namespaces)", file=sys.stderr)
        return 2
    import shutil

    if shutil.which("etcd") is None:
        print("etcd not installed (apt-get install etcd-server): skipped", file=sys.stderr)
        return 0
    wt = QUICK if args.quick else FULL
    scenarios = args.scenarios.split(",") if args.scenarios else (["W1"] if args.quick else list(SCENARIOS))
    impls = (
        args.impls.split(",")
        if args.impls
        else [*DEFAULT_IMPLS, *([] if args.quick else ["pyvrrp-witness-noprobe"])]
    )
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
    t = wt.vrrp
    print(
        f"witness two-site lab, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, load "
        f"{os.getloadavg()[0]:.2f}; VRRPv3 advert_int {t.advert_int_s:g} s "
        f"(Master_Down {t.master_down_s:.2f} s), faults {t.fault_s:g} s, settle {t.settle_s:g} s, "
        f"witness ttl {wt.ttl_s} s margin {wt.margin_s:g} s, "
        f"{args.repeat} run(s)",
        flush=True,
    )
    results: dict[tuple[str, str], list[WResult]] = {}
    for run in range(args.repeat):
        order = impls if run % 2 == 0 else list(reversed(impls))
        for sc in scenarios:
            for impl in order:
                if not runs_for(sc, impl):
                    continue
                t0 = time.time()
                r = run_one(sc, impl, wt)
                results.setdefault((sc, impl), []).append(r)
                b = r.base
                status = (
                    "ERROR " + b.errors[0][:200]
                    if b.errors
                    else (
                        f"dual {b.dual_nodes_s:.2f}/{r.dual_client_s:.2f} s outage {b.outage_s:.2f} s "
                        f"trans {b.transitions} heal {r.heal_dual_s} yield {r.lb1_yielded} "
                        f"failover {r.failover_s}"
                    )
                )
                print(
                    f"  run {run + 1} {sc} {impl:22s} {status} ({time.time() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    print()
    for sc in scenarios:
        print(f"{sc}: {SCENARIOS[sc]}")
    print()
    print(table(results, scenarios, impls))
    print(f"\ntotal {time.time() - started:.0f} s, load {os.getloadavg()[0]:.2f}")
    if args.json:
        payload = {
            "started": started,
            "timing": dataclasses.asdict(wt),
            "results": [r.as_dict() for rs in results.values() for r in rs],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str))
    return 1 if any(r.base.errors for rs in results.values() for r in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
