"""``pyvrrp sniff``: show the VRRP adverts on a link (or in a capture) and flag conflicts."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("sniff")
    def sniff(
        read: str | None = typer.Option(None, "--read", "-r", help="Read a pcap/pcapng capture file."),
        iface: str | None = typer.Option(None, "--interface", "-i", help="Capture live here (root)."),
        as_json: bool = typer.Option(False, "--json", help="JSON lines: packets, then a summary."),
        count: int | None = typer.Option(None, "--count", "-c", min=1, help="Stop after N VRRP packets."),
        timeout: float | None = typer.Option(None, "--timeout", min=0.0, help="Live: stop after S seconds."),
        vrid: int | None = typer.Option(None, "--vrid", min=0, max=255, help="Only this VRID."),
        summary: bool = typer.Option(True, "--summary/--no-summary", help="Per-VRID summary at the end."),
    ) -> None:
        """Decode every VRRP packet (IP protocol 112) with pyvrrp's codec, one line each, then list
        the routers seen per VRID and flag conflicts: two masters at once, interval or address-list
        mismatches, TTL != 255, invalid packets."""
        from pyvrrp.sniff import Analyzer, SniffError, live_frames, read_pcap
        from pyvrrp.sniff import sniff as run_sniff

        if (read is None) == (iface is None):
            typer.echo("pyvrrp sniff: give exactly one of --read FILE or -i IFACE", err=True)
            raise typer.Exit(2)
        frames = read_pcap(read) if read is not None else live_frames(iface or "", timeout_s=timeout)
        analyzer = Analyzer()
        try:
            run_sniff(frames, as_json=as_json, emit=typer.echo, count=count, vrid=vrid, analyzer=analyzer)
        except SniffError as exc:
            typer.echo(f"pyvrrp sniff: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:  # live capture stopped with Ctrl-C: still summarise what we saw
            pass
        if summary:
            if as_json:
                typer.echo(json.dumps(analyzer.to_json(), sort_keys=True))
            else:
                typer.echo(analyzer.format_summary())
