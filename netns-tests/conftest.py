"""Fixtures for the root-only namespace tests.

Everything here needs root (network namespaces) and is skipped otherwise.  Each test gets
its own ``Lab`` with a unique ``pv<6 hex>`` prefix, torn down even when the test fails; at
the end of the session no namespace of any lab built here may remain.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyvrrp.lab import DaemonNode, InstanceSpec, make_node  # noqa: E402
from pyvrrp.lab.keepalived import keepalived_available  # noqa: E402
from pyvrrp.lab.topology import Lab, destroy_prefix, list_netns  # noqa: E402
from pyvrrp.lab.topology import wait_for as _wait_for  # noqa: E402

IS_ROOT = os.geteuid() == 0
_PREFIXES: list[str] = []
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this directory ``netns`` and skip it (clearly) when not root."""
    skip_root = pytest.mark.skip(reason="netns-tests need root (network namespaces): run `sudo scripts/test`")
    skip_ka = pytest.mark.skip(reason="keepalived binary not found (apt-get install keepalived)")
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.netns)
        if not IS_ROOT:
            item.add_marker(skip_root)
        elif item.get_closest_marker("keepalived") and not keepalived_available():
            item.add_marker(skip_ka)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; raise TimeoutError after ``timeout`` seconds."""
    return _wait_for(predicate, timeout, interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


def make_lab(**kw: Any) -> Lab:
    lab = Lab(**kw)
    _PREFIXES.append(lab.prefix)
    return lab


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., Lab]]:
    """Build labs with options (``ipv6=True``, ``gateway=True``); all torn down after the test."""
    built: list[Lab] = []

    def factory(**kw: Any) -> Lab:
        lab = make_lab(**kw)
        built.append(lab)
        return lab.up()

    yield factory
    for lab in built:
        lab.down()


@pytest.fixture
def lab(lab_factory: Callable[..., Lab]) -> Lab:
    """The default lab (client, lb1, lb2, rs1, rs2; IPv4 only), up."""
    return lab_factory()


@pytest.fixture
def vrrp_pair(lab: Lab) -> Callable[..., tuple[DaemonNode, DaemonNode]]:
    """Start a VRRP pair in ``lab``: ``lb1, lb2 = vrrp_pair("pyvrrp", "keepalived", version=3,
    advert_int_s=0.1)``.  lb1 gets priority 150 (``state MASTER`` hint), lb2 100; lb2 starts
    first.  Extra keywords go to both ``InstanceSpec``s.  The lab fixture's teardown kills them."""

    def start(
        lb1: str = "pyvrrp",
        lb2: str = "pyvrrp",
        *,
        priorities: tuple[int, int] = (150, 100),
        **spec_kw: Any,
    ) -> tuple[DaemonNode, DaemonNode]:
        node1 = make_node(lab, "lb1", lb1, [InstanceSpec(priority=priorities[0], state="MASTER", **spec_kw)])
        node2 = make_node(lab, "lb2", lb2, [InstanceSpec(priority=priorities[1], **spec_kw)])
        node2.start()
        node1.start()
        return node1, node2

    return start


@pytest.fixture(scope="session", autouse=True)
def _no_namespace_left_behind() -> Iterator[None]:
    """Session check: no namespace with a prefix used by these tests survives."""
    yield
    if not _PREFIXES:
        return
    leftover = [n for n in list_netns() if any(n.startswith(f"{p}-") for p in _PREFIXES)]
    for prefix in _PREFIXES:
        destroy_prefix(prefix)
    assert not leftover, f"namespaces left behind by netns-tests: {leftover}"


@pytest.fixture
def wlab(lab_factory: Callable[..., Lab]) -> Iterator[tuple[Lab, Any]]:
    """A lab plus one etcd member in its own namespace (``_etcd.Etcd``), for the witness tests."""
    from _etcd import Etcd

    lab = lab_factory(real_servers=False)
    etcd = Etcd(lab)
    try:
        yield lab, etcd.start()
    finally:
        etcd.destroy()
