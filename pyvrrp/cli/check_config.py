"""``pyvrrp check-config``: validate a configuration file (keepalived ``-t``).

Exit 0: valid; prints a one-line summary per instance and any warnings.
Exit 1: invalid (every error, one per line, ``file:line: key.path: message``), or the file
is missing, unreadable or not text.  Never a traceback.
``--strict``: every warning counts as an error (exit 1), for people who want a file with
nothing ignored or approximated.  Each warning is printed once.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from pyvrrp.config.errors import ConfigError, ConfigIssue


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


def _instance_rows(cfg: Any) -> list[dict[str, Any]]:
    rows = []
    for name, inst in cfg.vrrp_instance.items():
        rows.append(
            {
                "name": name,
                "interface": inst.interface,
                "vrid": inst.virtual_router_id,
                "version": inst.version,
                "family": inst.family,
                "priority": inst.priority,
                "advert_int_s": inst.advert_int,
                "preempt": inst.preempt,
                "vips": [str(v.address) for v in inst.virtual_ipaddress],
                "unicast_peers": [str(p) for p in inst.unicast_peer],
                "sync_group": cfg.sync_group_of(name),
                "witness_key": _witness_key(cfg, name),
            }
        )
    return rows


def _witness_key(cfg: Any, name: str) -> str | None:
    """The full etcd key gating ``name`` (None: not witnessed)."""
    key = cfg.witness_key(name)
    return None if key is None else f"{cfg.global_defs.witness.prefix.rstrip('/')}/{key}"


def _witness_lines(cfg: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Which instances the witness gates (issue 13: check-config says so)."""
    wit = cfg.global_defs.witness
    if wit is None:
        return []
    lines = [
        f"witness: etcd {', '.join(wit.endpoints)} (ttl {wit.ttl} s, margin {wit.margin:g} s, "
        f"on_unavailable {wit.on_unavailable})"
    ]
    for r in rows:
        key = r["witness_key"]
        lines.append(f"  {r['name']}: " + (f"witnessed, key {key}" if key else "not witnessed"))
    return lines


def _render(rows: list[dict[str, Any]]) -> list[str]:
    table = [["INSTANCE", "IFACE", "VRID", "VER", "PRIO", "ADVERT", "PREEMPT", "VIPS", "PEERS"]]
    for r in rows:
        table.append(
            [
                r["name"],
                r["interface"],
                str(r["vrid"]),
                f"v{r['version']}",
                str(r["priority"]),
                _fmt_s(r["advert_int_s"]),
                "yes" if r["preempt"] else "no",
                ",".join(r["vips"]) or "-",
                ",".join(r["unicast_peers"]) or "multicast",
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]


def _issue_dict(issue: ConfigIssue) -> dict[str, Any]:
    return {
        "severity": issue.severity,
        "path": issue.path,
        "message": issue.message,
        "file": issue.file,
        "line": issue.line,
    }


def _unique(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """``issues`` without repeats (same text), in order: each problem is printed once."""
    seen: set[str] = set()
    out = []
    for issue in issues:
        key = f"{issue.severity}:{issue}"
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def run_check(file: str, config_id: str | None, as_json: bool, strict: bool = False) -> int:
    """The command body; returns the exit code (split out for tests and other commands)."""
    from pyvrrp.config.load import load_config

    try:
        cfg = load_config(file, config_id=config_id)
    except ConfigError as exc:
        return _report_errors(file, _unique(exc.issues), as_json, strict)
    except Exception as exc:  # a bug in a front-end: still one clear line, no traceback
        typer.echo(f"error: {file}: internal error while loading: {type(exc).__name__}: {exc}", err=True)
        return 1

    if not cfg.vrrp_instance and not cfg.virtual_server:  # empty, or caught half-written
        why = "no vrrp_instance and no virtual_server: pyvrrp would have nothing to do"
        nothing = ConfigIssue("", why, file=file)
        return _report_errors(file, [nothing], as_json, strict)
    found = _unique(cfg.warnings())
    if strict and found:
        return _report_errors(file, found, as_json, strict)
    warnings = [str(w) for w in found]
    warning_docs = [_issue_dict(w) for w in found]
    kernel_note = _ipvs_note(cfg)
    if kernel_note:
        warnings.append(kernel_note)
        warning_docs.append(
            {
                "severity": "warning",
                "path": "virtual_server",
                "message": kernel_note,
                "file": None,
                "line": None,
            }
        )
    rows = _instance_rows(cfg)
    from pyvrrp.ipvs.syncd import SyncDaemonSpec

    syncd = SyncDaemonSpec.from_config(cfg)
    if as_json:
        doc = {
            "ok": True,
            "file": file,
            "format": cfg.source_format,
            "instances": rows,
            "sync_groups": {k: list(g.group) for k, g in cfg.vrrp_sync_group.items()},
            "virtual_servers": sorted(cfg.virtual_server),
            "lvs_sync_daemon": syncd.describe() if syncd is not None else None,
            "witness": None
            if cfg.global_defs.witness is None
            else {
                "endpoints": list(cfg.global_defs.witness.endpoints),
                "ttl_s": cfg.global_defs.witness.ttl,
                "margin_s": cfg.global_defs.witness.margin,
                "on_unavailable": cfg.global_defs.witness.on_unavailable,
                "witnessed": [r["name"] for r in rows if r["witness_key"]],
            },
            "warnings": warning_docs,
        }
        typer.echo(json.dumps(doc, indent=2))
        return 0

    fmt = {"toml": "TOML", "keepalived": "keepalived.conf"}.get(cfg.source_format or "", "config")
    counts = [
        f"{len(cfg.vrrp_instance)} vrrp_instance",
        f"{len(cfg.vrrp_sync_group)} vrrp_sync_group",
        f"{len(cfg.vrrp_script)} vrrp_script",
        f"{len(cfg.virtual_server)} virtual_server",
    ]
    if cfg.vrrp_track_process:
        counts.insert(3, f"{len(cfg.vrrp_track_process)} vrrp_track_process")
    typer.echo(f"{file}: OK ({fmt}): {', '.join(counts)}")
    if rows:
        for line in _render(rows):
            typer.echo(f"  {line}")
    for gname, group in cfg.vrrp_sync_group.items():
        typer.echo(f"  vrrp_sync_group {gname}: {', '.join(group.group)}")
    for line in _witness_lines(cfg, rows):
        typer.echo(f"  {line}")
    for key, vs in cfg.virtual_server.items():
        n = len(vs.real_server)
        typer.echo(
            f"  virtual_server {key}: {vs.protocol} {vs.lvs_method} {vs.lvs_sched}, "
            f"{n} real server{'s' if n != 1 else ''}"
        )
    if syncd is not None:
        typer.echo(f"  lvs_sync_daemon {syncd.describe()}")
    if any(i.announce for i in cfg.vrrp_instance.values()) or any(
        getattr(v, "announce", None) for v in cfg.virtual_server.values()
    ):
        from pyvrrp.runtime.announce import entries_from_config

        for e in entries_from_config(cfg):
            follows = f", follows {e.instance}" if e.instance and e.virtual_server else ""
            typer.echo(
                f"  announce {', '.join(e.prefixes)} via {e.spec.speaker} ({e.spec.mode}, "
                f"MED {e.spec.med_preferred}/{e.spec.med_backup}{follows}; {e.source})"
            )
    for w in warnings:
        typer.echo(f"warning: {w}")
    return 0


def _report_errors(file: str, issues: list[ConfigIssue], as_json: bool, strict: bool) -> int:
    """Print a refusal: every issue, warnings counted as errors under ``--strict``; returns 1."""

    def is_error(i: ConfigIssue) -> bool:
        return i.severity == "error" or strict

    if as_json:
        doc = {
            "ok": False,
            "strict": strict,
            "errors": [_issue_dict(i) for i in issues if is_error(i)],
            "warnings": [_issue_dict(i) for i in issues if not is_error(i)],
        }
        typer.echo(json.dumps(doc, indent=2))
        return 1
    for issue in issues:
        typer.echo(f"{'error' if is_error(issue) else 'warning'}: {issue}", err=True)
    n = sum(1 for i in issues if is_error(i))
    why = (
        " (--strict: warnings count as errors)"
        if strict and any(i.severity == "warning" for i in issues)
        else ""
    )
    typer.echo(f"{file}: {n} error{'s' if n != 1 else ''}{why}", err=True)
    return 1


def _ipvs_note(cfg: object) -> str | None:
    """A warning when virtual_server is configured but this kernel has no IPVS (VRRP still works)."""
    if not getattr(cfg, "virtual_server", None):
        return None
    try:
        from pyvrrp.ipvs.kernel import ipvs_available

        status = ipvs_available(try_modprobe=False)
    except Exception as exc:  # probing must never break check-config
        return f"virtual_server: could not probe IPVS ({exc}); VRRP is unaffected"
    if status:
        return None
    return f"virtual_server: {status.reason}: services will not be programmed here; VRRP works"


def register(app: typer.Typer) -> None:
    @app.command("check-config")
    def check_config(
        file: str = typer.Option(..., "-f", "--file", help="Config file (TOML or keepalived.conf)."),
        config_id: str | None = typer.Option(
            None, "-i", "--config-id", help="keepalived @id selector (keepalived -i)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable result on stdout."),
        strict: bool = typer.Option(
            False, "--strict", help="Treat every warning (ignored or approximated keyword ...) as an error."
        ),
    ) -> None:
        """Validate a config file: exit 0 and a summary, or exit 1 and every error."""
        raise typer.Exit(run_check(file, config_id, as_json, strict))
