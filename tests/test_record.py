"""pyvrrp.proto.record against the stdlib dataclasses it stands in for.

The core's record types used to be ``@dataclass(frozen=True, slots=True)``;
a record class must behave the same for everything the code and the tests
do with them: construction (defaults, factories, __post_init__), equality,
hashing, repr, immutability, replace, pattern matching, copy and pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrp.proto import events as ev
from pyvrrp.proto import record
from pyvrrp.proto.packet import Advertisement
from pyvrrp.proto.record import FrozenRecordError, field


def _pair(specs: list[tuple[str, Any, bool]], frozen: bool) -> tuple[type, type]:
    """The same class body as a record and as a slotted dataclass.

    ``specs``: (name, default or record._MISSING, compare) per field.
    """

    def body(make_field: Any) -> dict[str, Any]:
        ns: dict[str, Any] = {"__annotations__": {name: "int" for name, _, _ in specs}}
        for name, default, compare in specs:
            if default is not record._MISSING or not compare:
                kw: dict[str, Any] = {"compare": compare}
                if default is not record._MISSING:
                    kw["default"] = default
                ns[name] = make_field(**kw)
        return ns

    rec = record.record(frozen=frozen)(type("R", (), body(record.field)))
    dc = dataclasses.dataclass(frozen=frozen, slots=True)(type("R", (), body(dataclasses.field)))
    return rec, dc


names = st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=5, unique=True)


@st.composite
def class_specs(draw: st.DrawFn) -> tuple[list[tuple[str, Any, bool]], list[int], list[int]]:
    fields = draw(names)
    n_required = draw(st.integers(0, len(fields)))
    specs = [
        (name, record._MISSING if i < n_required else draw(st.integers(-3, 3)), draw(st.booleans()))
        for i, name in enumerate(fields)
    ]
    values1 = draw(st.lists(st.integers(-3, 3), min_size=len(fields), max_size=len(fields)))
    values2 = draw(st.lists(st.integers(-3, 3), min_size=len(fields), max_size=len(fields)))
    return specs, values1, values2


@given(class_specs(), st.booleans(), st.integers(0, 5))
def test_record_behaves_like_a_slotted_dataclass(spec: Any, frozen: bool, n_given: int) -> None:
    specs, values1, values2 = spec
    rec, dc = _pair(specs, frozen)
    n_required = sum(1 for _, d, _ in specs if d is record._MISSING)
    n_args = max(n_required, min(n_given, len(specs)))
    r1, d1 = rec(*values1[:n_args]), dc(*values1[:n_args])
    r2, d2 = rec(*values2[:n_args]), dc(*values2[:n_args])
    names_ = [name for name, _, _ in specs]
    assert [getattr(r1, n) for n in names_] == [getattr(d1, n) for n in names_]  # defaults applied alike
    assert (r1 == r2) == (d1 == d2)  # compare=False fields ignored alike
    assert r1 == copy.copy(r1) and r1 != object() and (r1 == d1) is False
    assert repr(r1).replace("R(", "") == repr(d1).split("R(", 1)[1]
    assert rec.__match_args__ == dc.__match_args__ == tuple(names_)
    assert rec.__slots__ == tuple(names_) and not hasattr(r1, "__dict__")
    assert record.fields(r1) == tuple(f.name for f in dataclasses.fields(d1))
    if frozen:
        assert (hash(r1) == hash(r2)) or r1 != r2  # equal records hash equal
        for name in [*names_, "other"]:
            with pytest.raises(AttributeError):
                setattr(r1, name, 1)
        assert copy.deepcopy(r1) == r1
    else:
        with pytest.raises(TypeError):
            hash(r1)
        for name in names_:
            setattr(r1, name, 7)
            setattr(d1, name, 7)
        assert [getattr(r1, n) for n in names_] == [getattr(d1, n) for n in names_]
    if names_:
        changed = record.replace(r1, **{names_[0]: 99})
        assert getattr(changed, names_[0]) == 99
        assert record.asdict(changed) == dataclasses.asdict(dataclasses.replace(d1, **{names_[0]: 99}))


def test_frozen_error_is_an_attribute_error_with_the_field() -> None:
    advert = Advertisement(version=3, vrid=1, priority=100, addresses=(), interval_cs=1)
    with pytest.raises(FrozenRecordError, match="'priority'"):
        advert.priority = 1  # type: ignore[misc]
    with pytest.raises(FrozenRecordError):
        del advert.priority  # type: ignore[misc]
    assert issubclass(FrozenRecordError, AttributeError)


def test_frozen_records_pickle_and_copy() -> None:
    advert = Advertisement(version=2, vrid=7, priority=100, addresses=(), interval_cs=100, auth_data=b"x")
    got = ev.AdvertReceived(advert, src=ev.IPv4Address("192.0.2.1"), ttl=None)
    assert pickle.loads(pickle.dumps(got)) == got
    assert copy.deepcopy(got) == got and copy.copy(got) == got
    assert record.replace(got, ttl=255) == ev.AdvertReceived(advert, src=got.src)


def test_default_factory_gives_each_instance_its_own_value() -> None:
    @record.record(frozen=True)
    class Holder:
        name: str
        counters: dict[str, int] = field(default_factory=dict)

    a, b = Holder("a"), Holder("b")
    a.counters["x"] = 1
    assert b.counters == {} and Holder("c", {"y": 2}).counters == {"y": 2}


def test_post_init_runs_and_can_refuse() -> None:
    with pytest.raises(ValueError, match="MASTER or BACKUP"):
        ev.SyncCommand(target=ev.State.FAULT)
    assert ev.SyncCommand(target=ev.State.MASTER).reason == ""


def test_compare_false_field_is_left_out_of_eq_and_hash() -> None:
    a = ev.StateChanged(ev.State.BACKUP, ev.State.MASTER, "r", 100, trigger="master_down")
    b = ev.StateChanged(ev.State.BACKUP, ev.State.MASTER, "r", 100, trigger="")
    assert a == b and hash(a) == hash(b)
    assert a != ev.StateChanged(ev.State.BACKUP, ev.State.MASTER, "r", 101)


def test_pattern_matching_by_position() -> None:
    match ev.AnnounceVips((), 3):
        case ev.AnnounceVips(vips, repeat, reason):
            assert (vips, repeat, reason) == ((), 3, "master")
        case _:
            pytest.fail("no match")


def test_methods_the_class_defines_are_kept() -> None:
    @record.record(frozen=True)
    class Custom:
        a: int
        b: int = 0

        def __repr__(self) -> str:
            return f"<{self.a}>"

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Custom) and other.a == self.a

        def __hash__(self) -> int:
            return self.a

    assert repr(Custom(1, 2)) == "<1>" and Custom(1, 2) == Custom(1, 3) and hash(Custom(5)) == 5

    @record.record(frozen=True)
    class EqOnly:  # __eq__ without __hash__: Python's implicit None is replaced, as dataclasses do
        a: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, EqOnly) and other.a % 2 == self.a % 2

    assert EqOnly(1) == EqOnly(3) and hash(EqOnly(1)) == hash(EqOnly(1))

    @dataclasses.dataclass(frozen=True, slots=True)
    class EqOnlyDc:
        a: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, EqOnlyDc) and other.a % 2 == self.a % 2

    assert hash(EqOnlyDc(1)) == hash(EqOnlyDc(1))  # the stdlib behaves the same way


def test_bad_class_definitions_are_refused() -> None:
    with pytest.raises(TypeError, match="without a default follows"):

        @record.record(frozen=True)
        class Bad:
            a: int = 1
            b: int

    @record.record(frozen=True)
    class Base:
        a: int

    with pytest.raises(TypeError, match="cannot inherit"):

        @record.record(frozen=True)
        class Child(Base):
            b: int

    with pytest.raises(ValueError, match="not both"):
        field(default=1, default_factory=int)
    with pytest.raises(TypeError, match="not a record"):
        record.fields(object())
    assert not record.is_record(Base) and record.is_record(Base(1))


def test_the_protocol_core_does_not_import_dataclasses() -> None:
    """What this module is for: the fast-start path (with the GARP/NA and rtnetlink adapters
    its thread loads) imports neither dataclasses nor inspect/json/re/typing."""
    import subprocess
    import sys

    heavy = "{'dataclasses', 'inspect', 'json', 're', 'typing'}"
    path = "pyvrrp.runtime.fast_start, pyvrrp.adapters.rtnl_wire, pyvrrp.adapters.arp, pyvrrp.adapters.ndisc"
    code = f"import sys, {path}; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
