"""RecordingExecutor: the executor double that records actions instead of doing them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from pyvrrp.proto.events import (
    Action,
    AddVips,
    IPInterface,
    RemoveVips,
)

__all__ = ["RecordingExecutor"]

A = TypeVar("A")


class RecordingExecutor:
    """Records ``(now, action)`` pairs and tracks the VIPs the host would hold.

    ``vips`` follows AddVips/RemoveVips exactly as the netlink adapter would,
    so tests can assert "MASTER holds its VIPs, nobody else does".
    Adding a VIP that is already held, or removing one that is not, is
    recorded in ``errors`` (the engine should never ask for either).
    """

    def __init__(self) -> None:
        self.log: list[tuple[float, Action]] = []
        self.vips: set[IPInterface] = set()
        self.errors: list[str] = []

    def run(self, actions: Iterable[Action], *, now: float) -> None:
        for action in actions:
            self.log.append((now, action))
            if isinstance(action, AddVips):
                for vip in action.vips:
                    if vip in self.vips:
                        self.errors.append(f"{now}: AddVips {vip} already held")
                    self.vips.add(vip)
            elif isinstance(action, RemoveVips):
                for vip in action.vips:
                    if vip not in self.vips:
                        self.errors.append(f"{now}: RemoveVips {vip} not held")
                    self.vips.discard(vip)

    @property
    def actions(self) -> list[Action]:
        return [a for _, a in self.log]

    def of_type(self, kind: type[A]) -> list[tuple[float, A]]:
        """``(now, action)`` for every recorded action of ``kind``."""
        return [(t, a) for t, a in self.log if isinstance(a, kind)]

    def since(self, when: float) -> list[Action]:
        return [a for t, a in self.log if t >= when]

    def clear(self) -> None:
        self.log.clear()
