"""pyvrrpd (pyvrrp.cli.launcher): `pyvrrp run` started as `python -S`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pyvrrp
from pyvrrp.cli import launcher
from pyvrrp.cli.app import app
from pyvrrp.lab import topology

ROOT = str(Path(pyvrrp.__file__).resolve().parent.parent)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYVRRP_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_launcher_text_pins_this_python_with_dash_s() -> None:
    text = launcher.render()
    assert text.splitlines()[0] == f"#!{sys.executable} -S"
    assert f"sys.path.append({ROOT!r})" in text and 'sys.argv[1:1] = ["run"]' in text
    compile(text, "pyvrrpd", "exec")  # valid Python
    with pytest.raises(launcher.LauncherError, match="#! line"):
        launcher.render(python="/opt/my venv/bin/python")


def test_the_launcher_runs_the_daemon_front_door(tmp_path: Path) -> None:
    """Site-packages come back after listening: the config error path needs pydantic."""
    path = tmp_path / "pyvrrpd"
    launcher.write(path, launcher.render())
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    missing = _run([str(path), "-f", str(tmp_path / "nope.toml")])
    assert missing.returncode == 1, missing.stderr
    assert "nope.toml: no such file" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[vrrp_instance.VI_1]\ninterface = "lo"\nvirtual_router_id = 300\n')
    invalid = _run([str(path), "-f", str(bad)])
    assert invalid.returncode == 1 and "virtual_router_id" in invalid.stderr, invalid.stderr
    assert "Traceback" not in invalid.stderr
    helped = _run([str(path), "--help"])  # `run --help`: typer, after site.main()
    assert helped.returncode == 0 and "--config-id" in helped.stdout


def test_entry_adds_site_packages_only_when_python_skipped_them() -> None:
    code = (
        f"import sys; sys.path.append({ROOT!r})\n"
        "import pyvrrp.cli.entry as e\n"
        "before = any(p.endswith('site-packages') for p in sys.path)\n"
        "e._site(); e._site()\n"
        "import pydantic\n"
        f"print(before, sys.path.count({ROOT!r}))"
    )
    out = _run([sys.executable, "-S", "-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "1"]  # no site-packages before; pydantic after; no dup


def test_install_launcher_command(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "bin" / "pyvrrpd"
    target.parent.mkdir()
    result = runner.invoke(app, ["install-launcher", str(target)])
    assert result.exit_code == 0 and f"wrote {target}" in result.output
    assert target.read_text() == launcher.render()
    for bad in (tmp_path, tmp_path / "no-such-dir" / "pyvrrpd"):
        result = runner.invoke(app, ["install-launcher", str(bad)])
        assert result.exit_code == 1, result.output
        assert "pyvrrp install-launcher:" in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "bin").glob(".*tmp"))  # nothing left behind


def test_lab_uses_the_launcher_only_when_it_matches_this_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = tmp_path / "pyvrrpd"
    monkeypatch.setattr(launcher, "default_path", lambda: quick)
    assert topology.daemon_command()[-1] == "run"  # none written: console script / -m
    quick.write_text(launcher.render().replace(ROOT, "/elsewhere/checkout"))
    assert topology.daemon_command()[-1] == "run"  # stale (another tree): not used
    launcher.write(quick, launcher.render())
    assert topology.daemon_command() == [str(quick)]


def test_nothing_but_c_modules_before_listening_under_dash_s() -> None:
    """pyvrrpd's point: until early_listen has opened its sockets, only pyvrrp's three small
    modules and C modules load (no os, struct, __future__ or site: ~2-3 ms together)."""
    code = (
        f"import sys; sys.path.append({ROOT!r})\n"
        "import pyvrrp.cli.entry, pyvrrp.runtime.early_listen as el\n"
        "heavy = {'os', 'struct', '__future__', 'site', 'typing', 're'} & set(sys.modules)\n"
        "print(sorted(heavy), el._env_set('PYVRRP_NO_EARLY_LISTEN'), el._env_set('HOME'))"
    )
    out = _run([sys.executable, "-S", "-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "False", "True"]


def test_env_check_sees_in_process_changes_once_os_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvrrp.runtime import early_listen

    monkeypatch.delenv("PYVRRP_NO_EARLY_LISTEN", raising=False)
    assert not early_listen._env_set("PYVRRP_NO_EARLY_LISTEN")
    monkeypatch.setenv("PYVRRP_NO_EARLY_LISTEN", "1")
    assert early_listen._env_set("PYVRRP_NO_EARLY_LISTEN")
    assert early_listen.start(["-f", "/etc/hostname"]) is None  # disabled: no sockets opened


def test_systemd_unit_starts_the_launcher_its_install_line_writes() -> None:
    """conf/pyvrrp.service: ExecStart runs pyvrrpd with `pyvrrp run` options only, at the path
    its install comment tells the operator to write with `pyvrrp install-launcher`."""
    import shlex

    from pyvrrp.cli.run import OPTIONS

    unit = (Path(ROOT) / "conf" / "pyvrrp.service").read_text()
    (exec_start,) = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "pyvrrpd"
    assert f"pyvrrp install-launcher {argv[0]}" in unit
    flags = {flag for opt in OPTIONS for flag in opt.flags}
    assert all(arg in flags for arg in argv[1:] if arg.startswith("-")), argv
    assert "-f" in argv or "--file" in argv
