"""One view of a router for both the JSON and the human renderers of ``pyvrrp state``.

The daemon builds :func:`instance_view` dicts from the engine snapshot plus
runtime facts (interface, guards); the CLI renders the same dicts, so the table
and ``--json`` cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pyvrrp.proto.events import RouterSnapshot

STATE_VIEW_VERSION = 1


def instance_view(
    snap: RouterSnapshot,
    *,
    now: float,
    wall_now: float,
    interface: str,
    unicast_peers: list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Flatten an engine snapshot into the ``state --json`` instance object."""

    def wall(mono: float | None) -> float | None:
        return None if mono is None else round(wall_now - (now - mono), 3)

    last = None
    if snap.last_transition is not None:
        old, new, reason, at = snap.last_transition
        last = {"from": old.value, "to": new.value, "reason": reason, "at": wall(at)}
    view: dict[str, Any] = {
        "name": snap.name,
        "interface": interface,
        "vrid": snap.vrid,
        "version": snap.version,
        "family": f"ipv{snap.family}",
        "state": snap.state.value,
        "priority": snap.base_priority,
        "effective_priority": snap.effective_priority,
        "master_ip": None if snap.master_ip is None else str(snap.master_ip),
        "master_priority": snap.master_priority,
        "last_advert_age_s": (
            None if snap.last_advert_rx_at is None else round(now - snap.last_advert_rx_at, 3)
        ),
        "vips": [str(v) for v in snap.vips],
        "vips_held": snap.vips_held,
        "unicast_peers": unicast_peers,
        "advert_interval_s": snap.advert_interval_s,
        "master_adver_interval_s": snap.master_adver_interval_s,
        "skew_time_s": snap.skew_time_s,
        "master_down_interval_s": snap.master_down_interval_s,
        "next_timer_in_s": None if snap.next_deadline is None else round(snap.next_deadline - now, 3),
        "last_transition": last,
        "epoch": snap.epoch,
        "faults": list(snap.faults),
        "counters": dict(snap.counters),
        "drops": dict(snap.drops),
        "isolated": False,
        "gateway_check": None,
        "conflict": None,
    }
    if extra:
        view.update(extra)
    return view


def why(view: dict[str, Any]) -> str:
    """One sentence answering "why is this node in this state?"."""
    state = view["state"]
    if state == "MASTER":
        return f"MASTER since {view['last_transition']['reason'] if view['last_transition'] else 'start'}"
    if state == "BACKUP":
        if view.get("master_ip"):
            age = view.get("last_advert_age_s")
            age_s = "?" if age is None else f"{age:.2f}s ago"
            return (
                f"master is {view['master_ip']} (priority {view.get('master_priority')}, "
                f"last advert {age_s}); ours is {view['effective_priority']}"
            )
        return "no master heard yet; waiting for Master_Down_Interval"
    if state == "FAULT":
        if view.get("waiting_for"):
            return f"fault: waiting: {view['waiting_for']}"
        return "fault: " + (", ".join(view.get("faults") or []) or "unknown")
    return "initialising"


def receive_line(rx: dict[str, Any]) -> str:
    """Receive lag in one line: how far behind its sockets the daemon is (issue 15 item 5)."""
    return (
        f"oldest unread advert {1000 * rx.get('oldest_unread_age_s', 0):.1f} ms "
        f"(max {1000 * rx.get('oldest_unread_age_max_s', 0):.1f} ms); "
        f"batches {rx.get('batches')} (last {rx.get('batch_last')}, max {rx.get('batch_max')}); "
        f"adverts fast {rx.get('adverts_fast')} / decoded {rx.get('adverts_full')}; "
        f"timers {rx.get('timers_fired')}, late {rx.get('timers_late')} "
        f"(max {1000 * rx.get('timer_late_max_s', 0):.1f} ms); "
        f"read before a timer {rx.get('drained_before_timer')}; kernel drops {rx.get('kernel_drops')}"
    )


def witness_line(name: str, w: dict[str, Any], epoch: object) -> str:
    """One line per witnessed instance: who holds the key, its revision beside the local epoch."""
    if w.get("held"):
        holder = "held by this node" + (" (unwitnessed: etcd was down)" if w.get("unwitnessed") else "")
    else:
        holder = f"held by {w['holder']}" if w.get("holder") else "not held by this node"
    deadline = w.get("deadline_in_s")
    left = f"deadline in {deadline:.2f}s" if isinstance(deadline, int | float) else "no lease"
    return (
        f"witness {name}: {w.get('key')} {holder}, revision {w.get('revision') or '-'} (epoch {epoch}); "
        f"lease {w.get('lease_id') or '-'} {left}; {w.get('endpoint')}"
        f"{'' if w.get('available') else ' UNAVAILABLE'}; renew failures {w.get('renew_failures')}"
    )


def render_table(views: list[dict[str, Any]], *, verbose: bool = False) -> str:
    """A people-friendly summary table (and details with ``verbose``)."""
    headers = ["INSTANCE", "IFACE", "VRID", "VER", "STATE", "PRIO", "MASTER", "VIPS", "WHY"]
    rows = []
    for v in views:
        prio = f"{v['effective_priority']}"
        if v["effective_priority"] != v["priority"]:
            prio += f" ({v['priority']})"
        vips = ",".join(v["vips"]) + (" *" if v["vips_held"] else "")
        rows.append(
            [
                v["name"],
                v["interface"],
                str(v["vrid"]),
                f"v{v['version']}",
                v["state"],
                prio,
                v["master_ip"] or "-",
                vips,
                why(v),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    lines.append("(* = VIPs held by this node)")
    for v in views:
        w = v.get("witness")
        if w:
            lines.append(witness_line(v["name"], w, v.get("epoch")))
    receive = next((v["receive"] for v in views if v.get("receive")), None)
    if verbose and receive:
        lines.append("")
        lines.append("receive path (all instances):")
        lines.append(f"  {receive_line(receive)}")
        lines.append(f"  batch_sizes: {receive.get('batch_sizes')}")
    if verbose:
        for v in views:
            lines.append("")
            lines.append(f"{v['name']}:")
            for key in (
                "advert_interval_s",
                "master_adver_interval_s",
                "skew_time_s",
                "master_down_interval_s",
                "next_timer_in_s",
                "epoch",
                "isolated",
                "unicast_peers",
                "last_transition",
                "gateway_check",
                "conflict",
                "witness",
                "counters",
                "drops",
            ):
                lines.append(f"  {key}: {v.get(key)}")
    return "\n".join(lines)


def render_announce(items: list[dict[str, Any]]) -> str:
    """``pyvrrp state``: one line per announced (or withdrawn) prefix, then the speaker sessions."""
    rows = [("PREFIX", "SOURCE", "MODE", "BGP", "MED", "WHY")]
    speakers: dict[str, dict[str, Any]] = {}
    for a in items:
        rows.append(
            (
                a["prefix"],
                a["source"],
                a["mode"],
                ("announced" if a["announced"] else "withdrawn")
                + ("" if a.get("acknowledged") else " (unacked)"),
                "-" if a.get("med") is None else str(a["med"]),
                a["why"],
            )
        )
        sp = a.get("speaker") or {}
        speakers[sp.get("speaker", "?")] = sp
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    ]
    for name, sp in speakers.items():
        peers = (
            ", ".join(f"{p} {s}" for p, s in sorted((sp.get("peers") or {}).items()))
            or "no neighbour reported"
        )
        age = sp.get("last_poll_age_s")
        bfd = sp.get("bfd")
        bfd_text = (
            ""
            if bfd is None
            else "; BFD: " + (", ".join(f"{p} {s}" for p, s in sorted(bfd.items())) or "no session")
        )
        lines.append(
            f"  speaker {name}: process {sp.get('process')} (pid {sp.get('pid')}, last poll "
            f"{'-' if age is None else f'{age}s'} ago); BGP: {peers}{bfd_text}"
        )
    return "\n".join(lines)
