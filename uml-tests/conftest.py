"""Tests that need a kernel with IPVS; they run inside User-Mode Linux, in one boot:

    tools/uml-run .venv/bin/python -m pytest uml-tests

The guest is a throw-away kernel: the tests use its root network namespace as the LVS
director and put the client and the real servers in namespaces (prefix ``pv-<random6>-``),
all deleted at the end.  Outside the guest (``PYVRRP_UML`` unset) every test is skipped, so
they can never touch a real host's IPVS table or root namespace.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

IN_UML = os.environ.get("PYVRRP_UML") == "1"
_t0 = time.monotonic()
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue  # this hook sees the whole session: leave tests/ alone
        item.add_marker(pytest.mark.uml)
        # a hang shows its stack trace (pytest-timeout) instead of eating UML_TIMEOUT
        item.add_marker(pytest.mark.timeout(150, method="thread"))
        if not IN_UML:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs the UML kernel: tools/uml-run .venv/bin/python -m pytest uml-tests"
                )
            )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(
        f"uml-tests: {time.monotonic() - _t0:.1f} s inside the guest (PYVRRP_UML={int(IN_UML)})"
    )
