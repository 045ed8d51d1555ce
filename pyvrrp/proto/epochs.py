"""The text of an epoch file (``<state_dir>/<name>.epoch``): one rule for every reader.

Pure, and here rather than in :mod:`pyvrrp.splitbrain.epoch` (whose package imports
structlog and every guard) so that the fast-start engine (:mod:`pyvrrp.runtime.fast_start`)
reads an epoch exactly as the daemon's :class:`~pyvrrp.splitbrain.epoch.EpochStore` does,
without those imports.
"""

from __future__ import annotations

MAX_EPOCH = 2**63 - 1


def parse_epoch(text: str) -> int | None:
    """The counter in an epoch file's text; None when corrupt (not plain decimal digits, or too large)."""
    stripped = text.strip()
    if not stripped.isdigit():
        return None
    value = int(stripped)
    return value if value <= MAX_EPOCH else None
