"""keepalived's ``net_namespace NAME``: the daemon moves into a named network namespace.

``enter_namespace`` must run before the daemon opens any socket or starts any thread:
``setns(2)`` moves only the calling thread, so ``run_daemon`` calls it right after the
config is read and before the event loop exists.  Everything the daemon opens later (VRRP
and ARP sockets, pyroute2, IPVS, /proc/sys writes) then belongs to that namespace; the
control socket and pidfile are filesystem paths and stay where the config puts them.

The namespace must exist (``ip netns add NAME``): pyroute2's ``setns`` would create a
missing one, which would start the daemon in an empty namespace with no interfaces, so
it is called with ``flags=0`` after our own check.
"""

from __future__ import annotations

from pathlib import Path

NETNS_DIR = Path("/run/netns")


class NamespaceError(Exception):
    """The configured network namespace cannot be entered; the message says what to do."""


def enter_namespace(name: str, *, netns_dir: Path = NETNS_DIR) -> None:
    """Move this process (its only thread) into the network namespace ``name``."""
    if not name or "/" in name or name in (".", ".."):
        raise NamespaceError(f"net_namespace {name!r}: a namespace name, as `ip netns list` shows it")
    path = netns_dir / name
    if not path.exists():
        raise NamespaceError(
            f"net_namespace {name}: no such network namespace ({path}); "
            f"create it with `ip netns add {name}` or remove net_namespace"
        )
    from pyroute2 import netns  # only configs with net_namespace pay for this import

    try:
        netns.setns(str(path), flags=0)
    except OSError as exc:
        raise NamespaceError(f"net_namespace {name}: cannot enter {path}: {exc.strerror or exc}") from exc
