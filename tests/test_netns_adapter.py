"""adapters/netns.py: a missing or malformed net_namespace is a clear error, never a new namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrp.adapters.netns import NamespaceError, enter_namespace


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_bad_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(NamespaceError, match="namespace name"):
        enter_namespace(name, netns_dir=tmp_path)


def test_missing_namespace_names_the_fix_and_creates_nothing(tmp_path: Path) -> None:
    """pyroute2's setns defaults to O_CREAT: a typo must not start the daemon in an empty namespace."""
    with pytest.raises(NamespaceError) as ei:
        enter_namespace("blue", netns_dir=tmp_path)
    assert "ip netns add blue" in str(ei.value) and str(tmp_path / "blue") in str(ei.value)
    assert not (tmp_path / "blue").exists()


def test_a_file_that_is_not_a_namespace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blue").write_text("")
    with pytest.raises(NamespaceError, match="cannot enter"):
        enter_namespace("blue", netns_dir=tmp_path)
