"""Which instances the daemon hands to the fast-start path, and what it caches (no root).

The fast-start thread runs nothing but the engine: an instance whose decisions need
trackers, takeover guards, conflict detection or its sync group must never be cached,
or a restarted node could take over without the check that should have stopped it.
"""

from __future__ import annotations

import textwrap
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from pyvrrp.config.load import load_config
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.runtime import fast_start
from pyvrrp.runtime.daemon import Daemon, Instance, _family_of

CONFIG = textwrap.dedent(
    """\
    [vrrp_script.chk]
    script = "/bin/true"

    [vrrp_instance.PLAIN]
    interface = "eth0"
    virtual_router_id = 1
    priority = 150
    advert_int = 0.01
    version = 3
    virtual_ipaddress = ["192.0.2.1/32", {address = "192.0.2.2/32", label = "eth0:vip"}]

    [vrrp_instance.TRACKED]
    interface = "eth0"
    virtual_router_id = 2
    virtual_ipaddress = ["192.0.2.3/32"]
    track_script = ["chk"]

    [vrrp_instance.GUARDED]
    interface = "eth0"
    virtual_router_id = 3
    virtual_ipaddress = ["192.0.2.4/32"]
    gateway_check = { targets = ["192.0.2.254"] }

    [vrrp_instance.GROUPED]
    interface = "eth0"
    virtual_router_id = 4
    virtual_ipaddress = ["192.0.2.5/32"]

    [vrrp_sync_group.G]
    group = ["GROUPED"]
    """
)


def _daemon(tmp_path: Path, text: str = CONFIG) -> Daemon:
    conf = tmp_path / "pyvrrp.toml"
    conf.write_text(text)
    d = Daemon(str(conf), load_config(str(conf)), control_socket=str(tmp_path / "ctl.sock"))
    d._build_groups(d.config)
    for name, spec in d.config.vrrp_instance.items():  # what _add_instance builds, without sockets
        family = _family_of(spec)
        router = VirtualRouter(d._router_config(name, spec, ip_address("192.0.2.10"), family))
        d.instances[name] = Instance(
            name=name, spec=spec, router=router, ifname=spec.interface, family=family
        )
    return d


def test_only_instances_the_engine_can_run_alone_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYVRRP_FAST_START_DIR", str(tmp_path / "cache"))
    d = _daemon(tmp_path)
    assert {n: d._fast_eligible(i) for n, i in d.instances.items()} == {
        "PLAIN": True,
        "TRACKED": False,
        "GUARDED": False,
        "GROUPED": False,
    }
    d._write_fast_start()
    entries = fast_start.read_cache(d.config_path, Path(d.config_path).read_bytes())
    assert entries is not None and [e["name"] for e in entries] == ["PLAIN"]
    (entry,) = entries
    assert entry["vips"] == [["192.0.2.1/32", None], ["192.0.2.2/32", "eth0:vip"]]
    assert entry["control_socket"] == str(tmp_path / "ctl.sock") and entry["config_id"] is None
    # the cached engine config is exactly the daemon's, and the hand-over compares equal
    assert fast_start.config_from_dict(entry["router"]) == d.instances["PLAIN"].router.config
    assert entry == d._fast_entry(d.instances["PLAIN"])


def test_a_startup_delay_or_nothing_eligible_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYVRRP_FAST_START_DIR", str(tmp_path / "cache"))
    d = _daemon(tmp_path)
    d._write_fast_start()
    path = Path(fast_start.cache_file(d.config_path))
    assert path.exists()
    delayed = "[global_defs]\nvrrp_startup_delay = 5\n\n" + CONFIG
    d2 = _daemon(tmp_path, delayed)  # same file, rewritten: the old cache must go
    assert not any(d2._fast_eligible(i) for i in d2.instances.values())
    d2._write_fast_start()
    assert not path.exists()


def test_an_unwritable_cache_directory_is_logged_not_fatal(tmp_path: Path, monkeypatch: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PYVRRP_FAST_START_DIR", str(blocker / "sub"))  # a directory under a file
    d = _daemon(tmp_path)
    d._write_fast_start()  # no exception: the daemon runs on without the cache
    assert not (blocker / "sub").exists()


def test_freeze_heap_keeps_start_up_objects_out_of_collections_and_reload_collects() -> None:
    """The daemon's start-up heap is frozen (a full collection costs ~12 ms); a reload
    unfreezes, collects the old config's cycles and freezes again."""
    import gc
    import weakref

    from pyvrrp.runtime.daemon import _freeze_heap

    class Node:
        pass

    def cycle() -> weakref.ref[Node]:
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        return weakref.ref(a)

    try:
        gc.collect()
        ref = cycle()
        _freeze_heap(collect=False)
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert ref() is not None  # frozen: the collector does not see it
        _freeze_heap(collect=True)
        assert ref() is None  # the reload's collection found the old cycle
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
