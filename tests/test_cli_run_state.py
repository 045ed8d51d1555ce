"""`pyvrrp run` refuses bad input with actionable errors; `pyvrrp state` reports an absent daemon."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from pyvrrp.cli.app import app
from pyvrrp.runtime.control import ControlServer
from pyvrrp.runtime.state_view import render_table

runner = CliRunner()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`pyvrrp run` configures structlog on CliRunner's (temporary) stderr: undo it."""
    yield
    structlog.reset_defaults()


def test_run_with_invalid_config_lists_every_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 0\npriority = 300\n'
        'virtual_ipaddress = ["192.0.2.1/32"]\n'
    )
    result = runner.invoke(app, ["run", "-f", str(cfg)])
    assert result.exit_code == 1
    assert "virtual_router_id" in result.output and "priority" in result.output
    assert "Traceback" not in result.output


def test_run_with_missing_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "-f", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert "nope.toml" in result.output
    assert "Traceback" not in result.output


def test_state_without_daemon_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["state", "--socket", str(tmp_path / "none.sock")])
    assert result.exit_code == 2
    assert "no daemon answers" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _view(**over: object) -> dict[str, object]:
    view: dict[str, object] = {
        "name": "VI_1",
        "interface": "eth0",
        "vrid": 51,
        "version": 2,
        "state": "BACKUP",
        "priority": 100,
        "effective_priority": 90,
        "master_ip": "192.168.233.10",
        "master_priority": 150,
        "last_advert_age_s": 0.4,
        "vips": ["192.168.233.200/32"],
        "vips_held": False,
        "last_transition": {"from": "INIT", "to": "BACKUP", "reason": "startup", "at": 0.0},
        "faults": [],
    }
    view.update(over)
    return view


def test_state_against_a_live_control_socket(tmp_path: Path) -> None:
    """`state --json` prints the daemon's document; the table answers "why BACKUP?"."""
    sock = tmp_path / "ctl.sock"
    doc = {"router_id": "lb2", "pid": 1, "uptime_s": 1.0, "instances": [_view()]}

    async def scenario() -> tuple[str, str]:
        server = ControlServer(sock)

        async def state(params: dict[str, object]) -> dict[str, object]:
            return doc

        server.register("state", state)
        await server.start()
        try:
            out_json = await asyncio.to_thread(runner.invoke, app, ["state", "--json", "--socket", str(sock)])
            out_text = await asyncio.to_thread(runner.invoke, app, ["state", "--socket", str(sock)])
        finally:
            await server.close()
        assert out_json.exit_code == 0, out_json.output
        assert out_text.exit_code == 0, out_text.output
        return out_json.output, out_text.output

    js, text = asyncio.run(scenario())
    assert json.loads(js)["instances"][0]["master_ip"] == "192.168.233.10"
    assert "master is 192.168.233.10 (priority 150" in text
    assert "90 (100)" in text


def test_render_table_fault_and_master() -> None:
    text = render_table(
        [
            _view(state="FAULT", faults=["link", "script:chk"], master_ip=None),
            _view(name="VI_2", state="MASTER", vips_held=True, effective_priority=100),
        ]
    )
    assert "fault: link, script:chk" in text
    assert "192.168.233.200/32 *" in text
