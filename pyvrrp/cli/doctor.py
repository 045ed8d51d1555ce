"""``pyvrrp doctor [-f CONFIG] [--json] [--listen SECONDS]``: preflight of this host.

Loads the config as ``run`` would (``-f``, else the default paths), runs the checks of
:mod:`pyvrrp.doctor` and prints one line per check with a fix hint.  Exit 0 when
everything is ok or only warns, 1 when a check fails, 2 for usage errors or a config
that cannot be read or is invalid (check-config says why, line by line).
"""

from __future__ import annotations

import json
import sys

import typer

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def run_doctor(file: str | None, *, config_id: str | None, as_json: bool, listen_s: float | None) -> int:
    from pyvrrp.cli.run import DefaultConfigMissing, resolve_config
    from pyvrrp.config.errors import ConfigError
    from pyvrrp.config.load import load_config
    from pyvrrp.doctor import Probes, exit_code, run_checks
    from pyvrrp.runtime.logging import configure_logging

    # The sockets doctor opens log through structlog: keep that on stderr, warnings only,
    # so stdout stays the report (or one JSON document).
    configure_logging(fmt="console", level="warning", stream=sys.stderr)
    try:
        path = resolve_config(file)
    except DefaultConfigMissing as exc:
        print(f"pyvrrp doctor: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(path, config_id=config_id)
    except ConfigError as exc:
        print(
            f"pyvrrp doctor: {path}: invalid configuration (see `pyvrrp check-config -f {path}`):",
            file=sys.stderr,
        )
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    checks = run_checks(cfg, Probes(), listen_s=listen_s)
    code = exit_code(checks)
    if as_json:
        doc = {
            "ok": code == 0,
            "file": str(path),
            "checks": [c.to_json() for c in checks],
            "counts": {s: sum(1 for c in checks if c.status == s) for s in ("ok", "warn", "fail", "skip")},
        }
        typer.echo(json.dumps(doc, indent=2))
        return code
    width = max((len(c.name) for c in checks), default=0)
    typer.echo(f"pyvrrp doctor: {path}")
    for c in checks:
        typer.echo(f"{_MARK[c.status]}  {c.name.ljust(width)}  {c.detail}")
        if c.fix and c.status in ("warn", "fail"):
            typer.echo(f"      {' ' * width}  fix: {c.fix}")
    fails = sum(1 for c in checks if c.status == "fail")
    warns = sum(1 for c in checks if c.status == "warn")
    typer.echo(f"{fails} failed, {warns} warnings, {len(checks)} checks")
    return code


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        file: str | None = typer.Option(
            None, "-f", "--file", help="Config file (default: /etc/pyvrrp/pyvrrp.toml, else keepalived.conf)."
        ),
        config_id: str | None = typer.Option(None, "-i", "--config-id", help="keepalived @id selector."),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
        listen_s: float | None = typer.Option(
            None,
            "--listen",
            min=0.0,
            help="Seconds to listen for adverts (default 3 advert intervals; 0: skip).",
        ),
    ) -> None:
        """Check this host for what breaks VRRP (capabilities, interfaces, firewall, adverts on the
        wire, duplicate VRIDs, director sysctls, IPVS) and say how to fix each."""
        raise typer.Exit(run_doctor(file, config_id=config_id, as_json=as_json, listen_s=listen_s))
