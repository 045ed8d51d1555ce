"""Prometheus ``/metrics`` for pyvrrp, rendered from the same views as ``pyvrrp state --json``.

Why from the views: the daemon already flattens every instance into a JSON view
(:func:`pyvrrp.runtime.state_view.instance_view` plus ``trackers``, ``gateway_check``,
``conflict``, ``drops_socket``, ``waiting_for``).  Rendering metrics from those dicts
keeps the metrics, ``state`` and ``state --json`` from ever disagreeing, and keeps this
module out of the engine: it holds no counter of its own and adds nothing to the hot path.

Why prometheus-client: the text and OpenMetrics exposition formats (escaping, ``# TYPE``
lines, ``_total``/``_created`` suffixes, content negotiation) are done by a well-kept
library rather than by hand here.

Two families:

* ``keepalived_*``: the names and labels of mehdy/keepalived-exporter, so dashboards and
  alerts written for keepalived keep working (``global_defs.metrics_keepalived_names``,
  default on).  ``keepalived_vrrp_state`` uses keepalived's own state numbers
  (:data:`KEEPALIVED_STATE`), one sample per virtual IP as the exporter has it.
* ``pyvrrp_*``: everything pyvrrp knows, labelled ``instance``, ``interface``, ``vrid``.

Never blocking the engine (theory of operation): a scrape is accepted by an
``asyncio`` server in the daemon's own loop.  The loop takes a snapshot (the views, the
IPVS snapshot, notify queue depths: plain dicts built fresh for every call, as for
``pyvrrp state``) and hands it to one worker thread, which builds the metric families
and the exposition text.  The thread touches nothing but that snapshot, so it cannot
race the engine; while it formats, the interpreter's switch interval (5 ms) bounds how
long the loop can wait for the GIL.  A scraper that is slow to send its request or to
read the answer only holds its own connection: reads and writes have timeouts, the
request is size-capped, and at most :data:`MAX_CONNECTIONS` scrapes are served at once
(more are closed at accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import ip_interface
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, StateSetMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from pyvrrp.config.models import parse_listen

__all__ = [
    "KEEPALIVED_STATE",
    "MAX_CONNECTIONS",
    "MetricsServer",
    "MetricsSnapshot",
    "PyvrrpCollector",
    "families",
    "render",
]

log = structlog.get_logger("pyvrrp.runtime.metrics")

KEEPALIVED_STATE = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}
"""keepalived's ``VRRP_STATE_*`` numbers (vrrp.h), which keepalived-exporter reports as is."""

VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT")
CHECK_STATES = ("INIT", "RISING", "UP", "FALLING", "DOWN")
SCRIPT_GOOD = frozenset({"UP", "FALLING"})
"""Check states in which a script still counts as good (keepalived: not yet ``fall`` failures)."""

# keepalived-exporter counter name -> (view section, key).  Error counters pyvrrp does not
# tell apart (keepalived's three authentication counters) map to the one pyvrrp has.
KEEPALIVED_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("keepalived_advertisements_received", "counters", "adverts_rx", "Advertisements received"),
    ("keepalived_advertisements_sent", "counters", "adverts_tx", "Advertisements sent"),
    ("keepalived_become_master", "counters", "become_master", "Transitions to MASTER"),
    ("keepalived_release_master", "counters", "release_master", "Transitions out of MASTER"),
    ("keepalived_priority_zero_received", "counters", "prio_zero_rx", "Priority-0 adverts received"),
    ("keepalived_priority_zero_sent", "counters", "prio_zero_tx", "Priority-0 adverts sent"),
    ("keepalived_packet_length_errors", "drops", "length", "Packets with a bad length"),
    ("keepalived_advertisements_interval_errors", "drops", "interval", "Adverts with a wrong interval"),
    ("keepalived_ip_ttl_errors", "drops", "ttl", "Adverts with an IP TTL other than 255"),
    ("keepalived_invalid_type_received", "drops", "type", "Packets of a type other than ADVERTISEMENT"),
    ("keepalived_address_list_errors", "drops", "address_list", "Adverts whose address list differs"),
    ("keepalived_authentication_failure", "drops", "auth", "Adverts that failed authentication"),
)

# Engine counters with a metric of their own (the rest are in pyvrrp_engine_events_total).
PYVRRP_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("pyvrrp_adverts_received", "adverts_rx", "VRRP adverts accepted by this instance"),
    ("pyvrrp_adverts_sent", "adverts_tx", "VRRP adverts sent by this instance"),
    ("pyvrrp_transitions", "transitions", "State transitions of this instance"),
    ("pyvrrp_become_master", "become_master", "Transitions into MASTER"),
    ("pyvrrp_release_master", "release_master", "Transitions out of MASTER"),
    ("pyvrrp_conflicts_detected", "conflicts_detected", "Dual-master conflicts detected (another MAC)"),
)

# Takeover gate (split-brain witness / gateway check) verdicts, from the engine counters.
TAKEOVER_COUNTERS = {
    "requested": "takeover_requests",
    "denied": "takeover_denied",
    "cancelled": "takeover_cancelled",
    "ignored": "takeover_verdicts_ignored",
}

INSTANCE_LABELS = ("instance", "interface", "vrid")
KEEPALIVED_LABELS = ("iname", "intf", "vrid")


class NotifyLike(Protocol):
    """What the collector reads from :class:`pyvrrp.adapters.notify.NotifyRunner`."""

    def pending(self, instance: str | None = None) -> int: ...


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one scrape renders, taken in the event loop; rendered anywhere."""

    views: list[dict[str, Any]]
    ipvs: dict[str, Any] | None = None
    bgp: list[dict[str, Any]] | None = None
    notify_pending: dict[str, int] = field(default_factory=dict)
    notify_stats: dict[str, int] = field(default_factory=dict)
    notify_last_duration_s: dict[str, float] = field(default_factory=dict)


def take_snapshot(
    views: Callable[[], list[dict[str, Any]]],
    *,
    ipvs: Callable[[], dict[str, Any] | None] | None = None,
    notifier: NotifyLike | None = None,
    bgp: Callable[[], list[dict[str, Any]] | None] | None = None,
) -> MetricsSnapshot:
    """Call the sources (in the loop: they read live engine state) and keep their results."""
    vs = views()
    pending: dict[str, int] = {}
    stats: dict[str, int] = {}
    last: dict[str, float] = {}
    if notifier is not None:
        pending = {v["name"]: int(notifier.pending(v["name"])) for v in vs}
        stats = _notify_stats(getattr(notifier, "stats", None))
        for result in list(getattr(notifier, "history", ())):
            last[result.instance] = float(result.duration_s)
    return MetricsSnapshot(
        views=vs,
        ipvs=ipvs() if ipvs is not None else None,
        bgp=bgp() if bgp is not None else None,
        notify_pending=pending,
        notify_stats=stats,
        notify_last_duration_s=last,
    )


def _notify_stats(raw: Any) -> dict[str, int]:
    """NotifyStats' integer counters (and its ``extra`` ones), whichever of them it has."""
    if raw is None:
        return {}
    out = {
        k: v
        for k in ("started", "succeeded", "failed", "timed_out", "errors")
        if isinstance(v := getattr(raw, k, None), int)
    }
    extra = getattr(raw, "extra", None)
    if isinstance(extra, Mapping):
        out.update({str(k): v for k, v in extra.items() if isinstance(v, int)})
    return out


# ------------------------------------------------------------------ families


def _num(value: Any) -> float | None:
    """A JSON number as a float; None for missing/None/bool-less garbage."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _ilabels(view: Mapping[str, Any]) -> list[str]:
    return [str(view["name"]), str(view["interface"]), str(view["vrid"])]


def _vip_address(vip: str) -> str:
    """``192.168.1.1/32`` -> ``192.168.1.1`` (keepalived-exporter's ``ip_address`` has no prefix)."""
    try:
        return str(ip_interface(vip).ip)
    except ValueError:
        return vip


def keepalived_families(snap: MetricsSnapshot) -> Iterator[Metric]:
    """mehdy/keepalived-exporter compatible metrics."""
    up = GaugeMetricFamily("keepalived_up", "Status of the VRRP daemon (always 1 while it answers)")
    up.add_metric([], 1)
    yield up
    state = GaugeMetricFamily(
        "keepalived_vrrp_state",
        "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived's numbers)",
        labels=[*KEEPALIVED_LABELS, "ip_address"],
    )
    for v in snap.views:
        code = KEEPALIVED_STATE.get(str(v["state"]))
        if code is None:
            continue
        for vip in v.get("vips") or [""]:
            state.add_metric([*_ilabels(v), _vip_address(vip) if vip else ""], code)
    yield state
    for name, section, key, doc in KEEPALIVED_COUNTERS:
        fam = CounterMetricFamily(name, doc, labels=KEEPALIVED_LABELS)
        for v in snap.views:
            fam.add_metric(_ilabels(v), float((v.get(section) or {}).get(key, 0)))
        yield fam
    script = GaugeMetricFamily(
        "keepalived_script_status", "Tracking script status: 1 good, 0 bad or not yet known", labels=["name"]
    )
    seen: set[str] = set()
    for v in snap.views:
        for t in v.get("trackers") or []:
            if t.get("kind") == "script" and t["name"] not in seen:
                seen.add(t["name"])
                script.add_metric([str(t["name"])], 1 if t.get("state") in SCRIPT_GOOD else 0)
    yield script


def _instance_families(views: list[dict[str, Any]]) -> Iterator[Metric]:
    lbl = list(INSTANCE_LABELS)
    state = StateSetMetricFamily("pyvrrp_vrrp_state", "VRRP state of the instance", labels=lbl)
    prio = GaugeMetricFamily("pyvrrp_priority", "Configured priority", labels=lbl)
    eff = GaugeMetricFamily(
        "pyvrrp_effective_priority", "Priority advertised now (trackers applied)", labels=lbl
    )
    mprio = GaugeMetricFamily("pyvrrp_master_priority", "Priority of the master heard last", labels=lbl)
    held = GaugeMetricFamily("pyvrrp_vips_held", "1 if this node holds the instance's VIPs", labels=lbl)
    nvip = GaugeMetricFamily("pyvrrp_vips", "Virtual IPs configured on the instance", labels=lbl)
    age = GaugeMetricFamily(
        "pyvrrp_last_advert_age_seconds", "Seconds since the last accepted advert", labels=lbl
    )
    last = GaugeMetricFamily(
        "pyvrrp_last_transition_timestamp_seconds", "Wall-clock time of the last transition", labels=lbl
    )
    epoch = GaugeMetricFamily("pyvrrp_epoch", "Mastership fencing epoch", labels=lbl)
    faults = GaugeMetricFamily("pyvrrp_faults", "Active fault reasons (0 unless FAULT)", labels=lbl)
    waiting = GaugeMetricFamily(
        "pyvrrp_waiting", "1 while the instance waits for something to start (waiting_for)", labels=lbl
    )
    named = {key: CounterMetricFamily(name, doc, labels=lbl) for name, key, doc in PYVRRP_COUNTERS}
    events = CounterMetricFamily(
        "pyvrrp_engine_events", "Every engine counter of pyvrrp state --json, by name", labels=[*lbl, "event"]
    )
    drops = CounterMetricFamily(
        "pyvrrp_drops", "Adverts dropped by the instance, by reason", labels=[*lbl, "reason"]
    )
    gate = CounterMetricFamily(
        "pyvrrp_takeover_gate", "Takeover gate (witness) requests and verdicts", labels=[*lbl, "verdict"]
    )
    for v in views:
        il = _ilabels(v)
        st = str(v["state"])
        state.add_metric(il, {s: s == st for s in VRRP_STATES})
        prio.add_metric(il, float(v["priority"]))
        eff.add_metric(il, float(v["effective_priority"]))
        if (mp := _num(v.get("master_priority"))) is not None:
            mprio.add_metric(il, mp)
        held.add_metric(il, 1 if v.get("vips_held") else 0)
        nvip.add_metric(il, len(v.get("vips") or []))
        if (a := _num(v.get("last_advert_age_s"))) is not None:
            age.add_metric(il, a)
        lt = v.get("last_transition") or {}
        if (at := _num(lt.get("at"))) is not None:
            last.add_metric(il, at)
        if (ep := _num(v.get("epoch"))) is not None:
            epoch.add_metric(il, ep)
        faults.add_metric(il, len(v.get("faults") or []))
        waiting.add_metric(il, 1 if v.get("waiting_for") else 0)
        counters = v.get("counters") or {}
        for key, fam in named.items():
            fam.add_metric(il, float(counters.get(key, 0)))
        for key in sorted(counters):
            events.add_metric([*il, key], float(counters[key]))
        for reason in sorted(v.get("drops") or {}):
            drops.add_metric([*il, reason], float(v["drops"][reason]))
        for verdict, key in TAKEOVER_COUNTERS.items():
            gate.add_metric([*il, verdict], float(counters.get(key, 0)))
    yield from (state, prio, eff, mprio, held, nvip, age, last, epoch, faults, waiting)
    yield from named.values()
    yield from (events, drops, gate)


def _split_brain_families(views: list[dict[str, Any]]) -> Iterator[Metric]:
    lbl = list(INSTANCE_LABELS)
    conflict = GaugeMetricFamily(
        "pyvrrp_conflict_active", "1 while another MAC answers for our VIPs (dual master)", labels=lbl
    )
    cvips = GaugeMetricFamily("pyvrrp_conflict_vips", "VIPs currently in conflict", labels=lbl)
    isolated = GaugeMetricFamily(
        "pyvrrp_gateway_isolated", "1 while the gateway check says this node is cut off", labels=lbl
    )
    reach = GaugeMetricFamily("pyvrrp_gateway_reachable", "Gateway-check targets reachable", labels=lbl)
    need = GaugeMetricFamily(
        "pyvrrp_gateway_min_reachable", "Targets that must be reachable not to be isolated", labels=lbl
    )
    target = GaugeMetricFamily(
        "pyvrrp_gateway_target_up",
        "Last probe of one gateway-check target: 1 ok, 0 failed",
        labels=[*lbl, "target"],
    )
    rtt = GaugeMetricFamily(
        "pyvrrp_gateway_target_rtt_seconds", "Round-trip time of the last good probe", labels=[*lbl, "target"]
    )
    w_held = GaugeMetricFamily(
        "pyvrrp_witness_held", "1 while this node holds the instance's etcd witness key", labels=lbl
    )
    w_avail = GaugeMetricFamily(
        "pyvrrp_witness_available", "1 while the witness lease is valid (etcd reachable lately)", labels=lbl
    )
    w_rev = GaugeMetricFamily(
        "pyvrrp_witness_revision", "etcd revision of the held key (fencing token)", labels=lbl
    )
    w_left = GaugeMetricFamily(
        "pyvrrp_witness_deadline_seconds", "Seconds until the holder must give its VIPs up", labels=lbl
    )
    w_fail = CounterMetricFamily(
        "pyvrrp_witness_renew_failures", "Lease keepalives (or grants) that failed", labels=lbl
    )
    for v in views:
        il = _ilabels(v)
        w = v.get("witness")
        if w:
            w_held.add_metric(il, 1 if w.get("held") else 0)
            w_avail.add_metric(il, 1 if w.get("available") else 0)
            if (r := _num(w.get("revision"))) is not None:
                w_rev.add_metric(il, r)
            if (d := _num(w.get("deadline_in_s"))) is not None:
                w_left.add_metric(il, d)
            w_fail.add_metric(il, float(w.get("renew_failures") or 0))
        c = v.get("conflict")
        conflict.add_metric(il, 1 if c else 0)
        cvips.add_metric(il, len(c.get("vips") or []) if c else 0)
        g = v.get("gateway_check")
        if not g:
            continue
        isolated.add_metric(il, 1 if g.get("isolated") else 0)
        if (r := _num(g.get("reachable"))) is not None:
            reach.add_metric(il, r)
        if (m := _num(g.get("min_reachable"))) is not None:
            need.add_metric(il, m)
        for t in g.get("targets") or []:
            tl = [*il, str(t.get("target"))]
            if t.get("ok") is not None:
                target.add_metric(tl, 1 if t["ok"] else 0)
            if (ms := _num(t.get("rtt_ms"))) is not None:
                rtt.add_metric(tl, ms / 1000.0)
    yield from (conflict, cvips, isolated, reach, need, target, rtt)
    yield from (w_held, w_avail, w_rev, w_left, w_fail)


def _tracker_families(views: list[dict[str, Any]]) -> Iterator[Metric]:
    script = StateSetMetricFamily(
        "pyvrrp_track_script_state", "Debounced state of a tracking script", labels=["instance", "name"]
    )
    for v in views:
        for t in v.get("trackers") or []:
            if t.get("kind") == "script":
                st = str(t.get("state"))
                script.add_metric([str(v["name"]), str(t["name"])], {s: s == st for s in CHECK_STATES})
    yield script


def _socket_families(views: list[dict[str, Any]]) -> Iterator[Metric]:
    fam = CounterMetricFamily(
        "pyvrrp_socket_drops",
        "Packets dropped before reaching an instance (bad packet, unknown VRID)",
        labels=["reason"],
    )
    socket_drops: dict[str, Any] = next((v["drops_socket"] for v in views if v.get("drops_socket")), {})
    for reason in sorted(socket_drops):
        fam.add_metric([reason], float(socket_drops[reason]))
    yield fam
    yield from _receive_families(next((v["receive"] for v in views if v.get("receive")), None))
    inst = GaugeMetricFamily("pyvrrp_instances", "VRRP instances running")
    inst.add_metric([], len(views))
    yield inst


RECEIVE_GAUGES = (
    (
        "pyvrrp_receive_oldest_unread_seconds",
        "oldest_unread_age_s",
        "Age of the oldest unread VRRP datagram when the last receive batch began",
    ),
    (
        "pyvrrp_receive_oldest_unread_max_seconds",
        "oldest_unread_age_max_s",
        "Largest age of an unread VRRP datagram since start",
    ),
    ("pyvrrp_receive_batch_last", "batch_last", "Datagrams read in the last receive batch"),
    ("pyvrrp_receive_batch_max", "batch_max", "Largest receive batch since start"),
    ("pyvrrp_timer_late_max_seconds", "timer_late_max_s", "Largest lateness of the loop timer since start"),
)
RECEIVE_COUNTERS = (
    ("pyvrrp_receive_batches", "batches", "Receive batches (reads until the socket is empty)"),
    ("pyvrrp_receive_adverts_fast", "adverts_fast", "Adverts handled by the receive fast path"),
    ("pyvrrp_receive_adverts_decoded", "adverts_full", "Datagrams decoded and fed to an engine"),
    ("pyvrrp_timers_fired", "timers_fired", "Runs of the one loop timer"),
    ("pyvrrp_timers_late", "timers_late", "Loop timer runs more than 5 ms late (the loop is behind)"),
    (
        "pyvrrp_receive_read_before_timer",
        "drained_before_timer",
        "Datagrams read because a deadline was due (they arrived before it)",
    ),
    ("pyvrrp_receive_kernel_drops", "kernel_drops", "Datagrams the kernel dropped: receive buffer full"),
)


def _receive_families(rx: Mapping[str, Any] | None) -> Iterator[Metric]:
    """Receive lag (issue 15 item 5): overload shows here before it hurts."""
    if not rx:
        return
    for name, key, doc in RECEIVE_GAUGES:
        gauge = GaugeMetricFamily(name, doc)
        gauge.add_metric([], float(rx.get(key) or 0))
        yield gauge
    for name, key, doc in RECEIVE_COUNTERS:
        counter = CounterMetricFamily(name, doc)
        counter.add_metric([], float(rx.get(key) or 0))
        yield counter
    sizes = CounterMetricFamily("pyvrrp_receive_batch_sizes", "Receive batches by size", labels=["size"])
    for bucket, count in sorted((rx.get("batch_sizes") or {}).items()):
        sizes.add_metric([str(bucket)], float(count))
    yield sizes


def _notify_families(snap: MetricsSnapshot) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "pyvrrp_notify_queue_depth", "Notify scripts queued or running", labels=["instance"]
    )
    for name, n in sorted(snap.notify_pending.items()):
        depth.add_metric([name], n)
    yield depth
    runs = CounterMetricFamily("pyvrrp_notify_scripts", "Notify script runs by outcome", labels=["result"])
    for result, n in sorted(snap.notify_stats.items()):
        runs.add_metric([result], n)
    yield runs
    dur = GaugeMetricFamily(
        "pyvrrp_notify_last_duration_seconds", "How long the last notify script ran", labels=["instance"]
    )
    for name, s in sorted(snap.notify_last_duration_s.items()):
        dur.add_metric([name], s)
    yield dur


def _ipvs_families(ipvs: Mapping[str, Any]) -> Iterator[Metric]:
    vsl = ["virtual_server"]
    rsl = ["virtual_server", "real_server", "port"]
    master = GaugeMetricFamily("pyvrrp_ipvs_master", "1 while IPVS services are programmed as master")
    master.add_metric([], 1 if ipvs.get("master") else 0)
    q_up = GaugeMetricFamily("pyvrrp_ipvs_quorum_up", "Real servers up (quorum count)", labels=vsl)
    q_req = GaugeMetricFamily("pyvrrp_ipvs_quorum_required", "Quorum the virtual server needs", labels=vsl)
    live = GaugeMetricFamily("pyvrrp_ipvs_live_weight", "Sum of the weights of the up servers", labels=vsl)
    up = GaugeMetricFamily("pyvrrp_ipvs_real_server_up", "Health of a real server: 1 up, 0 down", labels=rsl)
    weight = GaugeMetricFamily("pyvrrp_ipvs_real_server_weight", "Weight programmed now", labels=rsl)
    trans = CounterMetricFamily(
        "pyvrrp_ipvs_real_server_transitions", "Up/down changes of a real server", labels=rsl
    )
    for vs in ipvs.get("virtual_servers") or []:
        key = str(vs.get("key"))
        q = vs.get("quorum") or {}
        for fam, k in ((q_up, "up"), (q_req, "required"), (live, "live_weight")):
            if (n := _num(q.get(k))) is not None:
                fam.add_metric([key], n)
        for rs in vs.get("real_servers") or []:
            rl = [key, str(rs.get("ip")), str(rs.get("port"))]
            up.add_metric(rl, 1 if rs.get("up") else 0)
            if (w := _num(rs.get("weight"))) is not None:
                weight.add_metric(rl, w)
            if (t := _num(rs.get("transitions"))) is not None:
                trans.add_metric(rl, t)
    yield from (master, q_up, q_req, live, up, weight, trans)


def _bgp_families(items: list[dict[str, Any]]) -> Iterator[Metric]:
    """BGP announcements (issue 17): per prefix, and per speaker."""
    pl = ["prefix", "source"]
    announced = GaugeMetricFamily("pyvrrp_bgp_announced", "1 while the prefix is announced", labels=pl)
    med = GaugeMetricFamily("pyvrrp_bgp_med", "MED the prefix is announced with", labels=pl)
    acked = GaugeMetricFamily("pyvrrp_bgp_acknowledged", "1 when the speaker acknowledged it", labels=pl)
    connected = GaugeMetricFamily(
        "pyvrrp_bgp_speaker_connected", "1 while the speaker's process follows the daemon", labels=["speaker"]
    )
    peers = GaugeMetricFamily(
        "pyvrrp_bgp_speaker_peer_up",
        "1 while the speaker reports the BGP neighbour up",
        labels=["speaker", "peer"],
    )
    seen: set[str] = set()
    for a in items:
        labels = [str(a["prefix"]), str(a["source"])]
        announced.add_metric(labels, 1 if a.get("announced") else 0)
        if a.get("med") is not None:
            med.add_metric(labels, float(a["med"]))
        acked.add_metric(labels, 1 if a.get("acknowledged") else 0)
        sp = a.get("speaker") or {}
        name = str(sp.get("speaker", "?"))
        if name in seen:
            continue
        seen.add(name)
        connected.add_metric([name], 1 if sp.get("process") == "connected" else 0)
        for peer, state in sorted((sp.get("peers") or {}).items()):
            peers.add_metric([name, str(peer)], 1 if state == "up" else 0)
    yield from (announced, med, acked, connected, peers)


def families(snap: MetricsSnapshot, *, keepalived_names: bool = True) -> Iterator[Metric]:
    """Every metric family of one snapshot (pure: reads only ``snap``)."""
    if keepalived_names:
        yield from keepalived_families(snap)
    yield from _instance_families(snap.views)
    yield from _split_brain_families(snap.views)
    yield from _tracker_families(snap.views)
    yield from _socket_families(snap.views)
    yield from _notify_families(snap)
    if snap.ipvs is not None:
        yield from _ipvs_families(snap.ipvs)
    if snap.bgp is not None:
        yield from _bgp_families(snap.bgp)


# ------------------------------------------------------------------ collectors


class PyvrrpCollector(Collector):
    """A prometheus-client collector that renders live from ``views()`` at each collect.

    For a registry used inside the event loop (and for tests).  :class:`MetricsServer`
    instead snapshots in the loop and renders with :class:`_SnapshotCollector` in a thread.
    """

    def __init__(
        self,
        views: Callable[[], list[dict[str, Any]]],
        *,
        ipvs: Callable[[], dict[str, Any] | None] | None = None,
        notifier: NotifyLike | None = None,
        keepalived_names: bool = True,
        bgp: Callable[[], list[dict[str, Any]] | None] | None = None,
    ) -> None:
        self._views = views
        self._ipvs = ipvs
        self._bgp = bgp
        self._notifier = notifier
        self.keepalived_names = keepalived_names

    def snapshot(self) -> MetricsSnapshot:
        return take_snapshot(self._views, ipvs=self._ipvs, notifier=self._notifier, bgp=self._bgp)

    def collect(self) -> Iterable[Metric]:
        return families(self.snapshot(), keepalived_names=self.keepalived_names)


class _SnapshotCollector(Collector):
    def __init__(self, snap: MetricsSnapshot, keepalived_names: bool) -> None:
        self._snap = snap
        self._keepalived_names = keepalived_names

    def collect(self) -> Iterable[Metric]:
        return families(self._snap, keepalived_names=self._keepalived_names)


def render(
    snap: MetricsSnapshot, *, keepalived_names: bool = True, accept: str | None = None, process: bool = True
) -> tuple[bytes, str]:
    """Exposition bytes and content type for ``snap`` (OpenMetrics if ``accept`` asks for it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap, keepalived_names))
    if process:  # process_* (fds, RSS, CPU) and python_info: cheap reads of /proc/self
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


# ------------------------------------------------------------------ server

MAX_CONNECTIONS = 8
"""Scrapes served at once; more are closed at accept (Prometheus scrapes one at a time)."""
READ_TIMEOUT_S = 5.0
"""Time a client has to send its whole request head."""
WRITE_TIMEOUT_S = 10.0
"""Time a client has to read the answer."""
MAX_REQUEST_BYTES = 8192
"""Largest request head accepted (request line plus headers)."""


class MetricsServer:
    """HTTP/1.0 ``/metrics`` listener in the running asyncio loop.

    Usage (in the daemon, after the control socket is open)::

        self.metrics = MetricsServer(self.views, listen="127.0.0.1:9165",
                                     ipvs=..., notifier=self.notifier)
        await self.metrics.start()     # OSError (port in use, address not on this host)
        ...
        await self.metrics.close()

    ``GET /metrics`` (and ``HEAD``) answers the exposition text; ``/`` a short page
    pointing there; anything else 404 / 405.  Every answer closes the connection.
    """

    def __init__(
        self,
        views: Callable[[], list[dict[str, Any]]],
        *,
        listen: str | tuple[str, int],
        ipvs: Callable[[], dict[str, Any] | None] | None = None,
        notifier: NotifyLike | None = None,
        keepalived_names: bool = True,
        process_metrics: bool = True,
        bgp: Callable[[], list[dict[str, Any]] | None] | None = None,
    ) -> None:
        # A string is the config's "ADDR:PORT"; a tuple is taken as is (tests bind port 0).
        self.host, self.port = parse_listen(listen) if isinstance(listen, str) else listen
        self.collector = PyvrrpCollector(
            views, ipvs=ipvs, notifier=notifier, keepalived_names=keepalived_names, bgp=bgp
        )
        self.process_metrics = process_metrics
        self._server: asyncio.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.scrapes = 0
        self.rejected = 0

    @property
    def address(self) -> tuple[str, int]:
        """The bound (address, port): the real port when ``listen`` asked for port 0 in tests."""
        assert self._server is not None and self._server.sockets, "not started"
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyvrrp-metrics")
        try:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_address=True, limit=MAX_REQUEST_BYTES
            )
        except OSError:
            self._pool.shutdown(wait=False)
            self._pool = None
            raise
        log.info("metrics_listening", address=self.host, port=self.address[1], path="/metrics")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= MAX_CONNECTIONS:
            self.rejected += 1
            writer.transport.abort()
            return
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            except asyncio.IncompleteReadError as exc:  # HTTP/0.9-ish or a bare "\n\n" client
                head = exc.partial
            status, ctype, body, head_only = await self._answer(head)
            reason = {
                200: "OK",
                400: "Bad Request",
                404: "Not Found",
                405: "Method Not Allowed",
                500: "Internal Server Error",
            }[status]
            hdr = (
                f"HTTP/1.0 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("ascii")
            writer.write(hdr)
            if not head_only:
                writer.write(body)  # no copy of a large body into hdr + body
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (TimeoutError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass  # a slow, oversized or vanished client: drop it, nothing to report
        finally:
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # unread answer: do not wait for the client
            else:
                writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes, bool]:
        text = "text/plain; charset=utf-8"
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) < 2:
            return 400, text, b"bad request\n", False
        method, target = parts[0], parts[1]
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, text, b"only GET and HEAD\n", False
        head_only = method == "HEAD"
        if path == "/":
            page = b'<html><body><a href="/metrics">/metrics</a></body></html>\n'
            return 200, "text/html; charset=utf-8", page, head_only
        if path != "/metrics":
            return 404, text, b"not found; try /metrics\n", head_only
        accept = next(
            (ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("accept:")), ""
        )
        try:
            snap = self.collector.snapshot()  # in the loop: the sources read live state
        except Exception as exc:  # a bug in a view must not take the listener down
            log.error("metrics_snapshot_failed", error=f"{type(exc).__name__}: {exc}")
            return 500, text, b"snapshot failed; see the daemon log\n", head_only
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            body, ctype = await loop.run_in_executor(
                self._pool,
                lambda: render(
                    snap,
                    keepalived_names=self.collector.keepalived_names,
                    accept=accept,
                    process=self.process_metrics,
                ),
            )
        except Exception as exc:
            log.error("metrics_render_failed", error=f"{type(exc).__name__}: {exc}")
            return 500, text, b"render failed; see the daemon log\n", head_only
        self.scrapes += 1
        log.debug("metrics_scraped", bytes=len(body), render_ms=round((time.perf_counter() - t0) * 1000, 2))
        return 200, ctype, body, head_only
