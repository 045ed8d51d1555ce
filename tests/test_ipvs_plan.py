"""Pure IPVS planner (ANCHORS §2.9, PyBal "add/edit/remove servers by set-diff")."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrp.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    Dest,
    EditDest,
    EditService,
    Service,
    ServiceKey,
    apply_to_table,
    op_to_dict,
    plan,
)

VIP = ServiceKey.addr("192.168.233.200", 80)
FOREIGN = ServiceKey.addr("192.168.233.201", 443)
RS1 = Dest("192.168.233.100", 80, 1, "DR")
RS2 = Dest("192.168.233.110", 80, 1, "DR")


def svc(key: ServiceKey = VIP, *dests: Dest, sched: str = "rr", **kw: object) -> Service:
    return Service(key, sched, dests=tuple(dests), **kw)  # type: ignore[arg-type]


def test_empty_kernel_adds_service_then_dests() -> None:
    """ANCHORS §2.9: a new virtual_server becomes AddService followed by its AddDests."""
    ops = plan({}, {VIP: svc(VIP, RS2, RS1)}, set())
    assert ops == [AddService(svc(VIP)), AddDest(VIP, RS1), AddDest(VIP, RS2)]


def test_adopting_identical_service_yields_no_ops() -> None:
    """After a restart the kernel already matches: nothing to do."""
    table = {VIP: svc(VIP, RS1, RS2)}
    assert plan(table, {VIP: svc(VIP, RS2, RS1)}, set()) == []


def test_foreign_service_never_touched() -> None:
    """Services not desired and not recorded as ours are left alone."""
    observed = {VIP: svc(VIP, RS1), FOREIGN: svc(FOREIGN, RS2, sched="wlc")}
    ops = plan(observed, {VIP: svc(VIP, RS1)}, {VIP})
    assert ops == []
    ops = plan(observed, {}, {VIP})
    assert ops == [DelService(VIP)]


def test_owned_service_removed_when_no_longer_desired() -> None:
    assert plan({VIP: svc(VIP, RS1)}, {}, {VIP}) == [DelService(VIP)]
    assert plan({VIP: svc(VIP, RS1)}, {}, set()) == []


def test_dest_set_diff_and_edits() -> None:
    """Failed RS removed, new one added, weight/method changes edited in place."""
    rs3 = Dest("192.168.233.120", 80, 2, "DR")
    observed = {VIP: svc(VIP, RS1, RS2)}
    want_rs2 = Dest(RS2.address, RS2.port, 0, "DR")
    ops = plan(observed, {VIP: svc(VIP, want_rs2, rs3)}, {VIP})
    assert ops == [DelDest(VIP, RS1), AddDest(VIP, rs3), EditDest(VIP, want_rs2, ("weight 1->0",))]
    nat = Dest(RS1.address, RS1.port, 1, "NAT")
    ops = plan({VIP: svc(VIP, RS1)}, {VIP: svc(VIP, nat)}, {VIP})
    assert ops == [EditDest(VIP, nat, ("method DR->NAT",))]


def test_service_attribute_edit() -> None:
    """Scheduler / persistence / granularity changes are one EditService ("set")."""
    observed = {VIP: svc(VIP, RS1)}
    desired = {VIP: svc(VIP, RS1, sched="wlc", persistence_timeout_s=300, netmask="255.255.255.0")}
    ops = plan(observed, desired, {VIP})
    assert len(ops) == 1 and isinstance(ops[0], EditService)
    assert ops[0].changes == ("sched rr->wlc", "persistence 0->300", "netmask 255.255.255.255->255.255.255.0")


def test_default_netmask_normalised() -> None:
    """A kernel read (explicit /32 or /128) equals a desired service without a netmask."""
    v6 = ServiceKey.addr("2001:db8::1", 443)
    assert svc(v6).netmask == "128"
    assert plan({v6: Service(v6, "rr", netmask="128")}, {v6: svc(v6)}, set()) == []


def test_fwmark_and_v6_keys() -> None:
    assert str(ServiceKey.mark(5)) == "FWM 5"
    assert str(ServiceKey.addr("2001:db8::0:1", 80)) == "TCP [2001:db8::1]:80"
    assert ServiceKey.addr("10.0.0.1", 53, "udp").protocol == "UDP"


def test_op_to_dict_is_json_friendly() -> None:
    import json

    ops = plan({}, {VIP: svc(VIP, RS1)}, set())
    data = [op_to_dict(o) for o in ops]
    assert json.loads(json.dumps(data))[1]["dest"] == {
        "address": "192.168.233.100",
        "port": 80,
        "weight": 1,
        "method": "DR",
    }


addrs = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::7"])
dests = st.builds(
    Dest,
    address=st.sampled_from(["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
    port=st.sampled_from([80, 8080]),
    weight=st.integers(0, 3),
    method=st.sampled_from(["DR", "NAT", "TUN"]),
)


@st.composite
def tables(draw: st.DrawFn) -> dict[ServiceKey, Service]:
    out: dict[ServiceKey, Service] = {}
    for a in draw(st.lists(addrs, max_size=3, unique=True)):
        key = ServiceKey.addr(a, 80)
        ds = {d.key: d for d in draw(st.lists(dests, max_size=4))}
        out[key] = Service(
            key,
            draw(st.sampled_from(["rr", "wlc"])),
            draw(st.sampled_from([0, 300])),
            dests=tuple(sorted(ds.values())),
        )
    return out


@settings(max_examples=200, deadline=None)
@given(
    tables(), tables(), st.sets(st.sampled_from([ServiceKey.addr(a, 80) for a in ["10.0.0.1", "10.0.0.3"]]))
)
def test_plan_converges_and_spares_foreign(
    observed: dict[ServiceKey, Service], desired: dict[ServiceKey, Service], recorded: set[ServiceKey]
) -> None:
    """Applying the plan yields desired for owned keys, leaves foreign ones as they were,
    and re-planning yields nothing."""
    owned = recorded | set(desired)
    result = apply_to_table(observed, plan(observed, desired, owned))
    for key in desired:
        assert result[key] == desired[key]
    for key, service in observed.items():
        if key not in owned:
            assert result[key] == service
        elif key not in desired:
            assert key not in result
    assert plan(result, desired, owned) == []
