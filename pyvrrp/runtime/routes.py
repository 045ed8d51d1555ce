"""Routes, rules and addresses beside the VIPs: keepalived's ``virtual_*`` and ``static_*``.

Theory: keepalived installs two kinds of extras through netlink.

* ``virtual_ipaddress_excluded``, ``virtual_routes`` and ``virtual_rules`` belong to an
  instance: added when it becomes MASTER (after its VIPs, so that a route's ``src`` exists),
  removed when it leaves MASTER and at stop (rules, then routes, then addresses: the
  reverse).  The executor calls :func:`install` / :func:`uninstall` from the state change.
* ``static_ipaddress``, ``static_routes`` and ``static_rules`` belong to the node: added at
  daemon start, removed at stop (and on a reload, the difference).

The config entries become plain netlink requests here (:func:`route_request`,
:func:`rule_request`); what was installed is recorded in an :class:`~pyvrrp.runtime.instance.Extras`
so that removal takes away exactly that.  A failure is logged with the route in ``ip``
syntax and does not stop the rest (keepalived does the same); routes are added with
``replace``, so a route left by a crashed run is taken over, not refused.

Not done (differences from keepalived): a route or rule deleted by someone else is not
noticed (keepalived re-adds it, or leaves MASTER without ``no_track``); multipath
(``nexthop``, ``or``) and the route metrics (``mtu`` ...) are refused by the config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address, ip_network
from typing import Any, Protocol

import structlog

from pyvrrp.adapters.netlink import RT_TABLE_MAIN, RTPROT_KEEPALIVED, RouteRequest, RuleRequest
from pyvrrp.config.models import Route, Rule, VirtualIPAddress
from pyvrrp.runtime.instance import Extras

__all__ = [
    "RouteTable",
    "install",
    "install_addresses",
    "planned",
    "release_recorded",
    "resync",
    "route_from_key",
    "route_key",
    "route_request",
    "rule_from_key",
    "rule_key",
    "rule_request",
    "uninstall",
]

log = structlog.get_logger("pyvrrp")

IPInterface = IPv4Interface | IPv6Interface


class RouteTable(Protocol):
    """Where routes, rules and addresses go (``pyvrrp.adapters.netlink.Netlink``; a fake in tests)."""

    def add(
        self,
        ifname: str,
        address: IPInterface,
        *,
        label: str | None = None,
        scope: str | None = None,
        brd: IPv4Address | IPv6Address | None = None,
    ) -> bool: ...

    def remove(self, ifname: str, address: IPInterface) -> bool: ...

    def add_route(self, req: RouteRequest) -> None: ...

    def remove_route(self, req: RouteRequest) -> bool: ...

    def add_rule(self, req: RuleRequest) -> bool: ...

    def remove_rule(self, req: RuleRequest) -> bool: ...


def route_request(route: Route) -> RouteRequest:
    """A config :class:`~pyvrrp.config.models.Route` as the kernel takes it (pure)."""
    return RouteRequest(
        dst=route.to,
        gateway=route.via,
        ifname=route.dev,
        prefsrc=route.src,
        scope=route.scope,
        table=route.table if route.table is not None else RT_TABLE_MAIN,
        metric=route.metric,
        proto=route.proto if route.proto is not None else RTPROT_KEEPALIVED,
        type=route.type,
        onlink=route.onlink,
    )


def rule_request(rule: Rule) -> RuleRequest:
    """A config :class:`~pyvrrp.config.models.Rule` as the kernel takes it (pure)."""
    mark = rule.fwmark_mask
    return RuleRequest(
        family=rule.family,
        src=rule.from_,
        dst=rule.to,
        iifname=rule.iif,
        oifname=rule.oif,
        fwmark=mark[0] if mark else None,
        fwmask=mark[1] if mark else None,
        table=rule.table,
        priority=rule.priority,
    )


def install_addresses(
    netlink: RouteTable, addresses: Iterable[tuple[str, VirtualIPAddress]], into: Extras, bound: Any
) -> None:
    """Add each ``(dev, entry)`` with its label, scope and brd; record what is there now."""
    for dev, entry in addresses:
        try:
            added = netlink.add(dev, entry.address, label=entry.label, scope=entry.scope, brd=entry.brd)
        except Exception as exc:  # netlink errors are reported, never fatal
            bound.error("address_add_failed", address=str(entry.address), dev=dev, error=str(exc))
            continue
        into.addresses.append((dev, entry.address))
        if added:
            bound.info("address_added", address=str(entry.address), dev=dev)


def install(
    netlink: RouteTable,
    *,
    routes: Sequence[Route],
    rules: Sequence[Rule],
    into: Extras,
    bound: Any,
) -> None:
    """Add ``routes`` then ``rules`` (after the addresses: a route's ``src`` must exist)."""
    for route in routes:
        req = route_request(route)
        try:
            netlink.add_route(req)
        except Exception as exc:
            bound.error("route_add_failed", route=str(req), error=str(exc))
            continue
        into.routes.append(req)
        bound.info("route_added", route=str(req))
    for rule in rules:
        rreq = rule_request(rule)
        try:
            added = netlink.add_rule(rreq)
        except Exception as exc:
            bound.error("rule_add_failed", rule=str(rreq), error=str(exc))
            continue
        into.rules.append(rreq)
        if added:
            bound.info("rule_added", rule=str(rreq))


def uninstall(netlink: RouteTable, extras: Extras, bound: Any, *, stale: bool = False) -> None:
    """Remove what ``extras`` holds: rules, routes, then addresses (``stale``: an earlier run's)."""
    event = "stale_{}_removed" if stale else "{}_removed"
    for rreq in reversed(extras.rules):
        try:
            if netlink.remove_rule(rreq):
                bound.info(event.format("rule"), rule=str(rreq))
        except Exception as exc:
            bound.error("rule_remove_failed", rule=str(rreq), error=str(exc))
    for req in reversed(extras.routes):
        try:
            if netlink.remove_route(req):
                bound.info(event.format("route"), route=str(req))
        except Exception as exc:
            bound.error("route_remove_failed", route=str(req), error=str(exc))
    for dev, address in reversed(extras.addresses):
        try:
            if netlink.remove(dev, address):
                bound.info(event.format("address"), address=str(address), dev=dev)
        except Exception as exc:
            bound.error("address_remove_failed", address=str(address), dev=dev, error=str(exc))
    extras.rules.clear()
    extras.routes.clear()
    extras.addresses.clear()


def resync(
    netlink: RouteTable,
    extras: Extras,
    *,
    addresses: Sequence[tuple[str, VirtualIPAddress]],
    routes: Sequence[Route],
    rules: Sequence[Rule],
    bound: Any,
) -> None:
    """A reload: remove what ``extras`` holds and the new config no longer names, add what it
    names and is missing.  Entries kept as they were are not touched (no gap in forwarding)."""
    want_addrs = {(dev, e.address) for dev, e in addresses}
    want_routes = {route_request(r) for r in routes}
    want_rules = {rule_request(r) for r in rules}
    gone = Extras(
        addresses=[a for a in extras.addresses if a not in want_addrs],
        routes=[r for r in extras.routes if r not in want_routes],
        rules=[r for r in extras.rules if r not in want_rules],
    )
    uninstall(netlink, gone, bound)
    extras.addresses = [a for a in extras.addresses if a in want_addrs]
    extras.routes = [r for r in extras.routes if r in want_routes]
    extras.rules = [r for r in extras.rules if r in want_rules]
    have_addrs, have_routes, have_rules = set(extras.addresses), set(extras.routes), set(extras.rules)
    install_addresses(
        netlink, [(d, e) for d, e in addresses if (d, e.address) not in have_addrs], extras, bound
    )
    install(
        netlink,
        routes=[r for r in routes if route_request(r) not in have_routes],
        rules=[r for r in rules if rule_request(r) not in have_rules],
        into=extras,
        bound=bound,
    )


def planned(
    addresses: Iterable[tuple[str, VirtualIPAddress]], routes: Sequence[Route], rules: Sequence[Rule]
) -> Extras:
    """Everything a config names, as if installed (to remove an earlier run's leftovers)."""
    return Extras(
        addresses=[(dev, e.address) for dev, e in addresses],
        routes=[route_request(r) for r in routes],
        rules=[rule_request(r) for r in rules],
    )


# --------------------------------------------------------------------------- crash records


def route_key(req: RouteRequest) -> str:
    """``req`` as one JSON string (the held-state record, :mod:`pyvrrp.runtime.held`)."""
    return json.dumps(
        {k: (str(v) if v is not None else None) for k, v in asdict(req).items()}, sort_keys=True
    )


def rule_key(req: RuleRequest) -> str:
    """``req`` as one JSON string (the held-state record)."""
    return json.dumps(
        {k: (str(v) if v is not None else None) for k, v in asdict(req).items()}, sort_keys=True
    )


def _opt(v: Any, conv: Any) -> Any:
    return conv(v) if v is not None else None


def route_from_key(key: str) -> RouteRequest:
    """The request back from :func:`route_key` (ValueError if it is not one)."""
    try:
        d = json.loads(key)
        return RouteRequest(
            dst=ip_network(d["dst"]),
            gateway=_opt(d["gateway"], ip_address),
            ifname=d["ifname"],
            prefsrc=_opt(d["prefsrc"], ip_address),
            scope=d["scope"],
            table=int(d["table"]),
            metric=_opt(d["metric"], int),
            proto=int(d["proto"]),
            type=str(d["type"]),
            onlink=d["onlink"] == "True",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a route record: {key!r} ({exc})") from None


def rule_from_key(key: str) -> RuleRequest:
    """The request back from :func:`rule_key` (ValueError if it is not one)."""
    try:
        d = json.loads(key)
        return RuleRequest(
            family=int(d["family"]),
            src=_opt(d["src"], ip_network),
            dst=_opt(d["dst"], ip_network),
            iifname=d["iifname"],
            oifname=d["oifname"],
            fwmark=_opt(d["fwmark"], int),
            fwmask=_opt(d["fwmask"], int),
            table=_opt(d["table"], int),
            priority=_opt(d["priority"], int),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a rule record: {key!r} ({exc})") from None


def release_recorded(
    netlink: RouteTable, route_keys: Iterable[str], rule_keys: Iterable[str], bound: Any
) -> int:
    """Remove the recorded rules, then routes, of an earlier run; returns how many failed."""
    failed = 0
    extras = Extras()
    for key in sorted(rule_keys):
        try:
            extras.rules.append(rule_from_key(key))
        except ValueError as exc:
            bound.warning("held_rule_unreadable", error=str(exc))
            failed += 1
    for key in sorted(route_keys):
        try:
            extras.routes.append(route_from_key(key))
        except ValueError as exc:
            bound.warning("held_route_unreadable", error=str(exc))
            failed += 1
    uninstall(netlink, extras, bound, stale=True)
    return failed
