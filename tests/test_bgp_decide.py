"""pyvrrp.bgp.decide: the announce/withdraw decision (issue 17), under hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyvrrp.bgp.decide import Facts, Policy, decide

policies = st.builds(
    Policy,
    mode=st.sampled_from(["active-backup", "active-active"]),
    med_preferred=st.integers(0, 1000),
    med_backup=st.integers(1001, 2000),
    quorum=st.integers(0, 5),
    primary=st.booleans(),
)
facts = st.builds(
    Facts,
    role=st.sampled_from([None, "MASTER", "BACKUP", "FAULT", "INIT"]),
    instance=st.sampled_from([None, "VI_1"]),
    healthy=st.one_of(st.none(), st.integers(0, 6)),
    total=st.one_of(st.none(), st.just(6)),
    isolated=st.booleans(),
    stopping=st.booleans(),
)


@given(policies, facts)
def test_announced_only_when_every_condition_holds(policy: Policy, f: Facts) -> None:
    d = decide(policy, f)
    conditions = (
        not f.stopping
        and f.role not in ("FAULT", "INIT")
        and not f.isolated
        and (f.healthy is None or f.healthy >= policy.quorum)
    )
    assert d.announce == conditions
    assert (d.med is None) == (not d.announce)
    assert d.why


@given(policies, facts)
def test_stopping_always_withdraws_first(policy: Policy, f: Facts) -> None:
    d = decide(policy, Facts(**{**{s: getattr(f, s) for s in Facts.__slots__}, "stopping": True}))
    assert not d.announce and "stopping" in d.why


@given(policies, facts)
def test_active_active_ignores_the_vrrp_role(policy: Policy, f: Facts) -> None:
    aa = Policy(mode="active-active", med_preferred=policy.med_preferred, quorum=policy.quorum)
    as_master = decide(aa, Facts(**{**{s: getattr(f, s) for s in Facts.__slots__}, "role": "MASTER"}))
    as_backup = decide(aa, Facts(**{**{s: getattr(f, s) for s in Facts.__slots__}, "role": "BACKUP"}))
    assert (as_master.announce, as_master.med) == (as_backup.announce, as_backup.med)
    if as_master.announce:
        assert as_master.med == policy.med_preferred


@given(policies, facts)
def test_active_backup_prefers_exactly_the_master_or_primary(policy: Policy, f: Facts) -> None:
    ab = Policy(
        mode="active-backup",
        med_preferred=policy.med_preferred,
        med_backup=policy.med_backup,
        quorum=policy.quorum,
        primary=policy.primary,
    )
    d = decide(ab, f)
    if not d.announce:
        return
    leader = f.role == "MASTER" or (f.role is None and policy.primary)
    assert d.preferred == leader
    assert d.med == (policy.med_preferred if leader else policy.med_backup)
    assert d.med is not None and (d.med < policy.med_backup) == leader


def test_why_names_the_reason() -> None:
    p = Policy(quorum=2)
    assert decide(p, Facts(role="FAULT", instance="VI_1")).why == "instance VI_1 is FAULT"
    low = decide(p, Facts(role="MASTER", healthy=1, total=3))
    assert "1 of 3 real servers healthy, quorum is 2" in low.why
    assert "isolated" in decide(p, Facts(role="MASTER", isolated=True)).why
    d = decide(p, Facts(role="MASTER", instance="VI_1", healthy=3, total=3))
    assert (d.announce, d.med, d.preferred) == (True, 100, True)
    assert d.why == (
        "active-backup: instance VI_1 is MASTER, preferred MED; 3/3 real servers healthy (quorum 2)"
    )
