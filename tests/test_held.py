"""runtime.held: the record of what this node holds, for crash clean-up (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrp.runtime.held import HeldState


def test_round_trip_and_absent_file(tmp_path: Path) -> None:
    assert HeldState.load(tmp_path / "held.json").vips == set()
    held = HeldState.in_dir(tmp_path / "run")
    held.vips = {("eth0", "192.0.2.1/32"), ("eth1", "2001:db8::1/128")}
    held.ipvs_state = "/var/lib/pyvrrp/ipvs-owned.json"
    held.nft_table = "pyvrrp"
    held.save()
    back = HeldState.load(held.path)
    assert back.vips == held.vips and back.ipvs_state == held.ipvs_state
    assert back.nft_table == "pyvrrp"
    assert not list((tmp_path / "run").glob("*.tmp"))
    back.remove()
    back.remove()  # twice is fine
    assert not held.path.exists()


@pytest.mark.parametrize("text", ["{not json", '{"vips": 5}', '["x"]'])
def test_a_foreign_or_torn_file_is_refused_with_its_path(tmp_path: Path, text: str) -> None:
    path = tmp_path / "held.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"held\.json"):
        HeldState.load(path)
