"""Epoch store (issue #4 §3): persisted MASTER-term counters, atomic writes, corrupt files read as 0."""

from __future__ import annotations

import os

import pytest
from structlog.testing import capture_logs

from pyvrrp.splitbrain.epoch import EpochStore


def test_missing_file_is_zero_without_warning(tmp_path):
    """Issue #4 §3: a fresh instance starts at epoch 0."""
    store = EpochStore(tmp_path / "state")
    with capture_logs() as logs:
        assert store.load("VI_1") == 0
    assert logs == []


def test_save_load_roundtrip_survives_new_store(tmp_path):
    """Issue #4 §3: the epoch persists across restarts (a new store on the same directory)."""
    EpochStore(tmp_path).save("VI_1", 7)
    assert EpochStore(tmp_path).load("VI_1") == 7
    EpochStore(tmp_path).save("VI_1", 8)
    assert EpochStore(tmp_path).load("VI_1") == 8


def test_bump_increments_and_persists(tmp_path):
    """Issue #4 §3: every MASTER term gets a new, higher epoch."""
    store = EpochStore(tmp_path)
    assert store.bump("VI_1") == 1
    assert store.bump("VI_1") == 2
    assert EpochStore(tmp_path).load("VI_1") == 2
    assert store.load("VI_2") == 0  # per instance


def test_atomic_write_leaves_no_temp_files(tmp_path):
    """Issue #4 §3: writes go through a temp file + rename; nothing is left behind."""
    store = EpochStore(tmp_path)
    for i in range(5):
        store.save("VI_1", i)
    assert sorted(os.listdir(tmp_path)) == ["VI_1.epoch"]
    assert (tmp_path / "VI_1.epoch").read_text() == "4\n"


@pytest.mark.parametrize("content", ["", "abc", "-3", "1.5", "9" * 40, "\xff"])
def test_corrupt_file_reads_zero_with_warning(tmp_path, content):
    """Issue #4 §3: a corrupt epoch file never crashes the daemon: 0 and a warning."""
    store = EpochStore(tmp_path)
    store.path_for("VI_1").write_bytes(content.encode("latin-1"))
    with capture_logs() as logs:
        assert store.load("VI_1") == 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] in (
        ["epoch_corrupt"],
        ["epoch_unreadable"],
    )


def test_unreadable_path_reads_zero_with_warning(tmp_path):
    """Issue #4 §3: an epoch path that is a directory is reported, not fatal."""
    store = EpochStore(tmp_path)
    store.path_for("VI_1").mkdir()
    with capture_logs() as logs:
        assert store.load("VI_1") == 0
    assert logs and logs[0]["event"] == "epoch_unreadable"


def test_invalid_epoch_values_rejected(tmp_path):
    """Issue #4 §3: epochs are non-negative ints."""
    store = EpochStore(tmp_path)
    for bad in (-1, 1.0, True, "3", 2**63):
        with pytest.raises(ValueError):
            store.save("VI_1", bad)  # type: ignore[arg-type]
    assert store.load("VI_1") == 0


def test_instance_names_map_to_distinct_safe_files(tmp_path):
    """Issue #4 §3: any instance name stays inside the state dir and names don't collide."""
    store = EpochStore(tmp_path)
    names = ["VI_1", "../evil", "a/b", "a%2Fb", ".hidden", "..", "ä"]
    for i, n in enumerate(names):
        store.save(n, i + 1)
    for i, n in enumerate(names):
        assert store.load(n) == i + 1
        assert store.path_for(n).parent == tmp_path
        assert not store.path_for(n).name.startswith(".")
    assert len(os.listdir(tmp_path)) == len(names)
    with pytest.raises(ValueError):
        store.path_for("")


def test_save_many_writes_every_epoch_with_one_directory_fsync(tmp_path, monkeypatch):
    store = EpochStore(tmp_path / "state")
    dir_fsyncs = []
    monkeypatch.setattr(store, "_fsync_dir", lambda: dir_fsyncs.append(1))
    store.save_many([(f"VI_{i}", i + 1) for i in range(50)])
    assert dir_fsyncs == [1]
    fresh = EpochStore(tmp_path / "state")
    assert [fresh.load(f"VI_{i}") for i in range(50)] == list(range(1, 51))
    with pytest.raises(ValueError):
        store.save_many([("VI_0", 7), ("VI_1", -1)])
    assert fresh.load("VI_0") == 1  # a bad item refuses the batch before anything is written
