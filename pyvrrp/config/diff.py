"""What a reload changes: a pure comparison of two validated configs.

Theory: SIGHUP must not take a node out.  The daemon therefore never rebuilds
everything; it asks :func:`diff` what differs between the running config and the
new one and touches only that:

- ``added`` / ``removed`` instances start / stop (a removed MASTER sends
  priority 0 and releases its VIPs, as at SIGTERM);
- ``restarted`` instances changed interface, address family or took up / gave up
  ``auth_type AH`` (an IPPROTO_AH socket instead of a VRRP one): their socket,
  primary address and VIPs live elsewhere now, so they stop and start afresh;
- ``reconfigured`` instances keep their engine, state and timers and take the
  new parameters through ``VirtualRouter.reconfigure`` (priority, interval,
  VIPs, peers...).  An instance whose sync-group membership changed is
  reconfigured too, even when its own block is byte-for-byte the same: group
  membership decides its takeover gate (``pyvrrp.proto.syncgroup``), and an
  instance that left a group must not keep the group's gate;
- ``guards_changed`` instances (a subset of ``reconfigured``) restart their
  gateway check and conflict detection.

Trackers and IPVS are compared by the daemon's own managers (``Trackers.adopt``,
``IpvsManager.reconfigure``), which already keep unchanged checks running.
Nothing here reads a file, the clock or the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvrrp.config.models import Config, VrrpInstance

__all__ = ["ConfigDiff", "diff"]


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """The instances a reload touches, each name in at most one of the first four fields."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    reconfigured: tuple[str, ...] = ()
    guards_changed: tuple[str, ...] = ()
    """Reconfigured instances whose gateway check or conflict detection changed."""
    group_changed: tuple[str, ...] = ()
    """Instances (old or new) whose sync group changed (joined, left, moved)."""
    unchanged: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[str, ...]:
        """Kept instances that changed (restarted or reconfigured), sorted."""
        return tuple(sorted(self.restarted + self.reconfigured))

    @property
    def removes_everything(self) -> bool:
        """True when the new config drops every running instance and adds none."""
        kept = self.restarted + self.reconfigured + self.unchanged
        return bool(self.removed) and not (self.added or kept)


def _ah(spec: VrrpInstance) -> bool:
    return spec.authentication is not None and spec.version == 2 and spec.authentication.auth_type == "AH"


def _restart_needed(old: VrrpInstance, new: VrrpInstance) -> bool:
    """A new interface or family, or a kept VIP that moves to another dev or changes its
    options (the engine adds and removes VIPs by address only)."""
    if old.interface != new.interface or old.family != new.family:
        return True
    vmac = ("vmac_ifname", "vmac_mac", "vmac_xmit_base")
    if any(getattr(old, k) != getattr(new, k) for k in vmac):
        return True
    if _ah(old) != _ah(new):  # auth_type AH in or out moves the instance to another socket (51 vs 112)
        return True
    a, b = _placements(old), _placements(new)
    return any(a[k] != b[k] for k in a.keys() & b.keys())


def _placements(spec: VrrpInstance) -> dict[str, tuple[object, ...]]:
    return {str(v.address): (spec.vip_dev(v), v.label, v.scope, v.brd) for v in spec.virtual_ipaddress}


def _guards(spec: VrrpInstance) -> tuple[object, object]:
    return (spec.gateway_check, spec.conflict_detection)


def diff(old: Config, new: Config) -> ConfigDiff:
    """Compare the running config with a new one (both validated)."""
    old_names, new_names = set(old.vrrp_instance), set(new.vrrp_instance)
    restarted, reconfigured, guards, group_changed, unchanged = [], [], [], [], []
    for name in sorted(old_names | new_names):
        if old.sync_group_of(name) != new.sync_group_of(name):
            group_changed.append(name)
    for name in sorted(old_names & new_names):
        a, b = old.vrrp_instance[name], new.vrrp_instance[name]
        if _restart_needed(a, b):
            restarted.append(name)
        elif a != b or name in group_changed:
            reconfigured.append(name)
            if _guards(a) != _guards(b):
                guards.append(name)
        else:
            unchanged.append(name)
    return ConfigDiff(
        added=tuple(sorted(new_names - old_names)),
        removed=tuple(sorted(old_names - new_names)),
        restarted=tuple(restarted),
        reconfigured=tuple(reconfigured),
        guards_changed=tuple(guards),
        group_changed=tuple(group_changed),
        unchanged=tuple(unchanged),
    )
