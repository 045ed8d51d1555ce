"""asyncio orchestration: clock, logging setup, control socket, supervisor.

Only this ring (and ``pyvrrp.adapters``) may read the clock, log, or touch
the event loop; ``pyvrrp.proto`` stays pure (docs/architecture.md).
"""
