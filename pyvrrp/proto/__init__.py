"""The pure, sans-IO protocol core.

Rule 1: nothing in this package does I/O, reads a clock, logs, or imports
asyncio, socket, subprocess, time, pyroute2 or structlog. Time is passed in
as ``now`` (monotonic seconds, float); results are returned as data.
A test (tests/test_purity.py) enforces this.
"""
