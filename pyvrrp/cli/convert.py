"""``pyvrrp convert -f keepalived.conf [--config-id ID] [-o OUT]``: keepalived.conf → native TOML.

Prints the TOML to stdout (or writes ``-o FILE``).  Every keyword pyvrrp ignores or
approximates is listed on stderr with its file:line, and also as comments at the top of the
output, so nothing is lost silently.  Exit codes: 0 converted, 1 the file cannot be used
(each error printed with file:line).
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("convert")
    def convert(
        file: str = typer.Option(..., "-f", "--file", help="keepalived.conf to convert."),
        config_id: str | None = typer.Option(
            None, "-i", "--config-id", help="keepalived -i: selects `@ID` conditional lines."
        ),
        output: str | None = typer.Option(None, "-o", "--output", help="Write here instead of stdout."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Do not list warnings on stderr."),
    ) -> None:
        """Convert a keepalived.conf into pyvrrp's native TOML config."""
        from pyvrrp.config.errors import ConfigError
        from pyvrrp.config.keepalived import load_with_report
        from pyvrrp.config.toml_writer import config_to_toml

        try:
            cfg, warnings = load_with_report(file, config_id=config_id)
        except ConfigError as exc:
            typer.echo(f"pyvrrp: {file}: cannot convert:", err=True)
            for issue in exc.issues:
                sev = getattr(issue, "severity", "error")
                typer.echo(f"  {sev}: {issue}", err=True)
            raise typer.Exit(1) from None
        header = [f"pyvrrp config converted from {file}" + (f" (config id {config_id})" if config_id else "")]
        if warnings:
            header.append("keepalived keywords pyvrrp ignores or approximates:")
            header.extend(f"  {w}" for w in warnings)
        text = config_to_toml(cfg, header="\n".join(header))
        if not quiet:
            for w in warnings:
                typer.echo(f"warning: {w}", err=True)
        if output:
            Path(output).write_text(text, encoding="utf-8")
        else:
            typer.echo(text, nl=False)
