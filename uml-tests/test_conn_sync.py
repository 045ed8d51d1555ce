"""``lvs_sync_daemon``: an established TCP connection through the VIP survives a director
failover when pyvrrp runs the IPVS connection-sync daemon, and is reset without it.

Two LVS-DR directors (lb1 priority 150, lb2 100) run the pyvrrp daemon in their own network
namespaces of the UML kernel, each with its own IPVS table for VIP:9000 -> rs1, rs2 (echo
servers).  The client holds one TCP connection to VIP:9000 and exchanges a line every
100 ms.  The failover is a priority drop on lb1 (a track_file), so both directors stay up
and the sync daemons' roles can be watched swapping:

* with sync on, lb1 runs the master sync thread and lb2 the backup (``ipvsadm -L --daemon``
  and pyvrrp's own netlink read-back); lb2's IPVS table learns the client's connection from
  lb1; after the failover lb2 runs the master thread and lb1 the backup, and the client's
  connection carries on to the same real server without an error;
* with sync off, lb2 never learns the connection; after the failover the client's next
  segment reaches lb2, which has no IPVS entry for it and answers with a reset (or the
  exchange stalls): the connection breaks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyvrrp.cli.run")
from pyvrrp.lab import VIP4, InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml

PY = sys.executable
PORT = 9000
RS = {"rs1": "192.168.233.100", "rs2": "192.168.233.110"}
CLIENT_IP = "192.168.233.20"

ECHO = r"""
import socket, sys, threading
name = sys.argv[1]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
def serve(c):
    f = c.makefile("rwb")
    for line in f:
        f.write(name.encode() + b" " + line)
        f.flush()
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# One connection, one line every 100 ms, each answer awaited (3 s): a JSON line per exchange,
# then {"end": ...} (the stop file appeared) or {"error": ...} (reset, timeout, EOF).
CLIENT = r"""
import json, os, socket, sys, time
vip, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = socket.create_connection((vip, port), timeout=5)
c.settimeout(3)
f = c.makefile("rwb")
i = 0
while not os.path.exists(stop):
    i += 1
    try:
        f.write(b"%d\n" % i)
        f.flush()
        line = f.readline()
    except OSError as exc:
        print(json.dumps({"t": time.time(), "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(0)
    if not line:
        print(json.dumps({"t": time.time(), "error": "EOF"}), flush=True)
        sys.exit(0)
    print(json.dumps({"t": time.time(), "i": i, "reply": line.decode().strip()}), flush=True)
    time.sleep(0.1)
print(json.dumps({"t": time.time(), "end": i}), flush=True)
"""


def _vs_toml() -> str:
    key = f'virtual_server."{VIP4}:{PORT}"'
    text = f'\n[{key}]\nprotocol = "TCP"\nlb_algo = "rr"\nlb_kind = "DR"\n'
    for ip in RS.values():
        text += f"[[{key}.real_server]]\nip = {json.dumps(ip)}\nport = {PORT}\n"
    return text


def _config(lab: Lab, host: str, priority: int, *, sync: bool) -> str:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    node_dir.mkdir(parents=True, exist_ok=True)
    drop = node_dir / "drop"
    drop.write_text("0\n")
    text = pyvrrp_toml(
        host,
        [InstanceSpec(priority=priority, version=3, advert_int_s=0.2, extra={"track_file": ["drop"]})],
        control_socket=str(node_dir / "control.sock"),
        state_dir=str(node_dir),
    )
    if sync:
        text += '\n[global_defs.lvs_sync_daemon]\ninterface = "eth0"\ninstance = "VI_51"\n'
    text += f"\n[track_file.drop]\nfile = {json.dumps(str(drop))}\nweight = -1\n"
    return text + _vs_toml()


def _daemons(lab: Lab, host: str) -> dict[str, str]:
    """``ipvsadm -L --daemon`` in ``host``: role -> the rest of its line."""
    out = lab.exec(host, ["ipvsadm", "-L", "--daemon"], timeout=60).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"(master|backup) sync daemon \((.*)\)", line.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


def _netlink_daemons(lab: Lab, host: str) -> dict[str, dict[str, object]]:
    """pyvrrp's own read-back (IPVS_CMD_GET_DAEMON through pyroute2) in ``host``."""
    code = (
        "import json; from pyvrrp.ipvs import kernel; "
        "print(json.dumps({r: d.as_dict() for r, d in kernel.sync_daemons().items()}))"
    )
    return dict(json.loads(lab.exec(host, [PY, "-c", code], timeout=60).stdout))


def _client_conn_on(lab: Lab, host: str) -> str | None:
    """The client's VIP:9000 connection in ``host``'s IPVS table (``ipvsadm -Lnc``), or None."""
    out = lab.exec(host, ["ipvsadm", "-Lnc"], timeout=60).stdout
    for line in out.splitlines():
        if f"{CLIENT_IP}:" in line and f"{VIP4}:{PORT}" in line:
            return line.strip()
    return None


def _wait(pred, timeout_s: float, what: str, step_s: float = 0.3):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() - t0 < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(step_s)


def _lines(path: Path) -> list[dict[str, object]]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def _run(sync: bool) -> dict[str, object]:
    with Lab() as lab:
        for name in RS:
            proc = lab.popen(name, [PY, "-c", ECHO, name, str(PORT)], stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        nodes = {
            host: PyvrrpNode(lab, host, _config(lab, host, prio, sync=sync))
            for host, prio in (("lb1", 150), ("lb2", 100))
        }
        nodes["lb2"].start()
        nodes["lb1"].start()
        nodes["lb1"].wait_state("MASTER", 60)
        nodes["lb2"].wait_state("BACKUP", 60)
        result: dict[str, object] = {}
        if sync:
            _wait(lambda: set(_daemons(lab, "lb1")) == {"master"}, 20, "lb1 master sync daemon")
            _wait(lambda: set(_daemons(lab, "lb2")) == {"backup"}, 20, "lb2 backup sync daemon")
            result["before"] = {h: _daemons(lab, h) for h in ("lb1", "lb2")}
            nl = _netlink_daemons(lab, "lb1")
            assert list(nl) == ["master"] and nl["master"]["interface"] == "eth0", nl
            assert nl["master"]["sync_id"] == 51, "sync id defaults to the instance's VRID"
            state = nodes["lb2"].state_json() or {}
            assert state["lvs_sync_daemon"]["running"] == ["backup"], state.get("lvs_sync_daemon")
        else:
            assert _daemons(lab, "lb1") == {} and _daemons(lab, "lb2") == {}

        out = lab.run_dir / "client.jsonl"
        stop = lab.run_dir / "client.stop"
        with out.open("w") as fh:
            client = lab.popen("client", [PY, "-c", CLIENT, VIP4, str(PORT), str(stop)], stdout=fh)
        _wait(lambda: len(_lines(out)) >= 10, 30, "10 exchanges before the failover")
        first = _lines(out)[0]
        assert "reply" in first, first
        server = str(first["reply"]).split()[0]
        assert server in RS, first
        assert _client_conn_on(lab, "lb1"), "lb1 (MASTER) forwards the connection"
        if sync:
            # the master thread sends within ~2 s (IPVS_SYNC_FLUSH_TIME); the backup adds it
            result["synced"] = _wait(lambda: _client_conn_on(lab, "lb2"), 15, "connection synced to lb2")
        else:
            time.sleep(4)
            assert _client_conn_on(lab, "lb2") is None, "no sync daemon: lb2 cannot know it"

        t_fail = time.time()
        (lab.run_dir / "pyvrrp-lb1" / "drop").write_text("100\n")  # 150 - 100 < 100: lb2 preempts
        nodes["lb2"].wait_state("MASTER", 30)
        nodes["lb1"].wait_state("BACKUP", 30)
        result["failover_s"] = round(time.time() - t_fail, 2)
        if sync:
            _wait(lambda: set(_daemons(lab, "lb2")) == {"master"}, 20, "lb2 master sync daemon")
            _wait(lambda: set(_daemons(lab, "lb1")) == {"backup"}, 20, "lb1 backup sync daemon")
            result["daemons_after"] = {h: _daemons(lab, h) for h in ("lb1", "lb2")}
            assert (nodes["lb1"].state_json() or {})["lvs_sync_daemon"]["running"] == ["backup"]

        # traffic now reaches lb2 (its GARP moved the VIP): give the connection 6 s there
        def settled() -> bool:
            lines = _lines(out)
            return client.poll() is not None or any(float(x["t"]) > t_fail + 6 for x in lines)

        _wait(settled, 40, "client after failover")
        stop.write_text("")
        client.wait(30)
        lines = _lines(out)
        after = [x for x in lines if float(x["t"]) > t_fail]
        result.update(server=server, lines=lines, after=after)
        nodes["lb1"].stop()
        nodes["lb2"].stop()
        if sync:
            assert _daemons(lab, "lb1") == {} and _daemons(lab, "lb2") == {}, "stopped with the daemon"
        return result


def test_connection_survives_failover_with_sync_daemon() -> None:
    r = _run(sync=True)
    after = r["after"]
    assert isinstance(after, list)
    errors = [x for x in after if "error" in x]
    assert not errors, f"the connection broke although it was synced: {errors}"
    replies = [x for x in after if "reply" in x]
    assert len(replies) >= 20, f"too few exchanges after the failover: {len(replies)}"
    assert {str(x["reply"]).split()[0] for x in r["lines"] if "reply" in x} == {r["server"]}  # type: ignore[union-attr]
    gaps = [float(b["t"]) - float(a["t"]) for a, b in zip(r["lines"], r["lines"][1:], strict=False)]  # type: ignore[arg-type,index]
    print(
        f"\nsync on: failover {r['failover_s']} s, {len(replies)} exchanges after it on {r['server']}, "
        f"longest gap {max(gaps):.2f} s; synced entry on lb2: {r['synced']}; "
        f"daemons before {r['before']} after {r['daemons_after']}"
    )


def test_connection_breaks_on_failover_without_sync_daemon() -> None:
    r = _run(sync=False)
    after = r["after"]
    assert isinstance(after, list)
    errors = [x for x in after if "error" in x]
    assert errors, f"the connection survived without a sync daemon (test proves nothing): {after[-3:]}"
    print(f"\nsync off: failover {r['failover_s']} s, client: {errors[0]['error']}")


def test_cleanup_after_kill9_stops_the_sync_daemon() -> None:
    """kill -9 leaves the kernel's sync thread running; `pyvrrp cleanup` (ExecStopPost) stops it,
    and so would the next start (keepalived stops both threads at start too)."""
    with Lab() as lab:
        node = PyvrrpNode(lab, "lb1", _config(lab, "lb1", 150, sync=True)).start()
        node.wait_state("MASTER", 60)
        _wait(lambda: set(_daemons(lab, "lb1")) == {"master"}, 20, "lb1 master sync daemon")
        node.kill9()
        assert set(_daemons(lab, "lb1")) == {"master"}, "kill -9 leaves the thread"
        sock = lab.run_dir / "pyvrrp-lb1" / "control.sock"
        proc = lab.exec(
            "lb1", [PY, "-m", "pyvrrp", "cleanup", "--socket", str(sock)], check=False, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "IPVS sync daemons: stopped" in proc.stdout
        assert _daemons(lab, "lb1") == {}


def test_reload_restarts_the_sync_daemon_only_when_its_settings_change() -> None:
    from pyvrrp.runtime.control import request_sync

    with Lab() as lab:
        text = _config(lab, "lb1", 150, sync=True)
        node = PyvrrpNode(lab, "lb1", text).start()
        node.wait_state("MASTER", 60)
        _wait(lambda: "syncid=51" in _daemons(lab, "lb1").get("master", ""), 20, "master, sync id 51")

        def reload(new_text: str) -> None:
            node.config_path.write_text(new_text)
            result = request_sync(str(node.socket_path), "reload", timeout=30)
            assert result.get("reloaded") is True, result

        reload(text.replace('instance = "VI_51"\n', 'instance = "VI_51"\nsync_id = 7\nport = 8850\n'))
        _wait(lambda: "syncid=7" in _daemons(lab, "lb1").get("master", ""), 20, "restarted with sync id 7")
        assert "port=8850" in _daemons(lab, "lb1")["master"]
        reload(text.replace('\n[global_defs.lvs_sync_daemon]\ninterface = "eth0"\ninstance = "VI_51"\n', ""))
        _wait(lambda: _daemons(lab, "lb1") == {}, 20, "stopped when the reload removed it")
        assert node.state() == "MASTER"
        node.stop()
