"""Persisted MASTER-term counters (fencing tokens).

Theory: every MASTER term of an instance gets an *epoch*, a counter that only
grows and survives restarts (issue #4 §3, ANCHORS §5 item 2).  The epoch is
passed to the fence hook, notify scripts and ``pyvrrp state`` so an external
system (a database, a cloud API, an IPVS sync consumer) can reject a stale
master: a request carrying an epoch lower than the highest one it has seen
comes from a master that has since been replaced (Pacemaker's fencing-token
idea, ANCHORS §4.4).

Storage: one small text file per instance, ``<state_dir>/<name>.epoch``,
holding the decimal counter.  Writes are atomic (temporary file in the same
directory, ``fsync``, ``rename``, then ``fsync`` of the directory) so a crash
leaves either the old or the new value, never a torn file.  A missing or
corrupt file reads as 0 with a warning: losing the epoch must never stop the
daemon from starting (the worst case is a reused token, which is logged).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import structlog

__all__ = ["EpochStore"]

_log = structlog.get_logger("pyvrrp.splitbrain.epoch")

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_EPOCH = 2**63 - 1


def parse_epoch(text: str) -> int | None:
    """The counter in an epoch file's text; None when corrupt (not plain decimal digits, or too large)."""
    stripped = text.strip()
    if not stripped.isdigit():
        return None
    value = int(stripped)
    return value if value <= _MAX_EPOCH else None


def _file_name(name: str) -> str:
    """Instance name -> file name (keeps ``[A-Za-z0-9_.-]``, escapes the rest as ``%XX``)."""
    if not name:
        raise ValueError("instance name must not be empty")
    safe = _SAFE_NAME.sub(lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), name)
    if safe.startswith("."):  # never a hidden file, never "." or ".."
        safe = "%2E" + safe[1:]
    return f"{safe}.epoch"


class EpochStore:
    """Per-instance epoch counters persisted under ``state_dir``.

    ``load(name)`` returns the last saved epoch (0 if none or unreadable);
    ``save(name, epoch)`` persists atomically; ``bump(name)`` = load + 1, saved,
    returned (call it when a new MASTER term starts).
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)

    def path_for(self, name: str) -> Path:
        """The file that holds ``name``'s epoch."""
        return self.state_dir / _file_name(name)

    def load(self, name: str) -> int:
        """Last saved epoch of instance ``name``; 0 (with a warning) when missing or corrupt."""
        path = self.path_for(name)
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            _log.warning("epoch_unreadable", instance=name, path=str(path), error=str(exc))
            return 0
        value = parse_epoch(text)
        if value is None:
            _log.warning("epoch_corrupt", instance=name, path=str(path), content=text.strip()[:40])
            return 0
        return value

    def save(self, name: str, epoch: int) -> None:
        """Persist ``epoch`` for ``name`` atomically (tmp file + fsync + rename + dir fsync).

        Raises:
            ValueError: ``epoch`` is negative or not an int.
            OSError: the state directory cannot be created or written (the caller
                decides whether that is fatal; the in-memory epoch stays valid).
        """
        self.save_many([(name, epoch)])

    def save_many(self, items: list[tuple[str, int]]) -> None:
        """:meth:`save` for several instances, one directory fsync for them all (a mass failover).

        Raises:
            ValueError, OSError: as :meth:`save`; the items before the failing one are saved.
        """
        for _name, epoch in items:
            if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= _MAX_EPOCH:
                raise ValueError(f"epoch must be an int in 0..2**63-1, got {epoch!r}")
        if not items:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name, epoch in items:
            self._write(name, epoch)
        self._fsync_dir()

    def _write(self, name: str, epoch: int) -> None:
        path = self.path_for(name)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.state_dir)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(f"{epoch}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                _log.debug("epoch_tmp_already_gone", path=tmp_name)
            raise

    def bump(self, name: str) -> int:
        """Start a new term: ``load(name) + 1``, saved, returned."""
        epoch = self.load(name) + 1
        self.save(name, epoch)
        return epoch

    def _fsync_dir(self) -> None:
        try:
            dir_fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            _log.warning("epoch_dir_fsync_failed", path=str(self.state_dir), error=str(exc))
            return
        try:
            os.fsync(dir_fd)
        except OSError as exc:
            _log.warning("epoch_dir_fsync_failed", path=str(self.state_dir), error=str(exc))
        finally:
            os.close(dir_fd)
