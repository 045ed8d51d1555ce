"""The bottom layer: the clock and the rate-limited logger, which every layer may import.

Why a package of its own: adapters, splitbrain and the runtime all need "now"
and a log that cannot flood; when these lived in ``pyvrrp.runtime`` every
adapter and guard depended on the runtime, which is the layer that calls
them (a cycle, and against the layer rules in tests/test_purity.py).  This
package imports nothing from pyvrrp outside itself, so it can sit under every
other one:

* :mod:`.clock`: the only clock read (``monotonic``, ``wall_time``, the
  :class:`~pyvrrp.base.clock.Clock` protocol);
* :mod:`.ratelog`: :class:`~pyvrrp.base.ratelog.RateLimitedLogger`, which
  takes its default "now" from :mod:`.clock` (hence one package, not two
  unrelated leaves).

The structlog set-up (``configure_logging``) is process start-up, so it stays
in :mod:`pyvrrp.runtime.logging`.
"""

from __future__ import annotations
