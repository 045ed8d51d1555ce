"""A real etcd for the witness tests and benchmarks (issue 13): one member, or a TLS cluster of three.

``Etcd``: one member in ``<prefix>-etcd`` on bridge ``wbr`` (10.99.0.100/24), a veth ``wit0`` to
each scheduler.  ``Cluster``: three members (e1 on lb1's site, e2 on lb2's, e3 at a third site),
each in its own namespace, on ``wbr`` of ``<prefix>-wcore``; ``minority(...)`` moves ports to a
second bridge (a partition of the etcd network).  ``Sampler`` samples who holds the VIP.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from pathlib import Path

from pyvrrp.lab.topology import Lab, wait_for

ETCD_IP = "10.99.0.100"
WIT_IP = {"lb1": "10.99.0.11", "lb2": "10.99.0.12"}
ENDPOINT = f"http://{ETCD_IP}:2379"


class Etcd:
    """One etcd member in its own namespace (stopped, frozen or resumed by the test)."""

    def __init__(self, lab: Lab) -> None:
        self.ns = f"{lab.prefix}-etcd"
        self.dir = lab.run_dir / "etcd"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        lines = [
            "link set lo up",
            "link add wbr type bridge stp_state 0 forward_delay 0",
            f"addr add {ETCD_IP}/24 dev wbr",
            "link set wbr up",
        ]
        for host in ("lb1", "lb2"):
            lines += [
                f"link add w-{host} type veth peer name wit0 netns {lab.ns(host)}",
                f"link set w-{host} master wbr up",
            ]
        subprocess.run(
            ["ip", "-n", self.ns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True
        )
        for host, ip in WIT_IP.items():
            lab.ip_cmd(host, "addr", "add", f"{ip}/24", "dev", "wit0")
            lab.ip_cmd(host, "link", "set", "wit0", "up")

    def start(self) -> Etcd:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "etcd.log", "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(
            [
                "ip", "netns", "exec", self.ns, "etcd",
                "--name", "w1",
                "--data-dir", str(self.dir / "data"),
                "--listen-client-urls", ENDPOINT,
                "--advertise-client-urls", ENDPOINT,
                "--listen-peer-urls", "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                "--initial-cluster", "w1=http://127.0.0.1:2380",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_for(self.healthy, 20.0, 0.1, what="etcd healthy")
        return self

    def healthy(self) -> bool:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns, "curl", "-s", "-m", "1", f"{ENDPOINT}/health"],
            capture_output=True,
            text=True,
            check=False,
        )
        return '"health":"true"' in proc.stdout

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        # `ip netns exec` execs etcd: the Popen pid is etcd's
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            self.proc.wait(timeout=10)

    def destroy(self) -> None:
        self.stop()
        subprocess.run(["ip", "netns", "del", self.ns], check=False)


class Sampler:
    """``ip addr`` in lb1 and lb2 every ~50 ms: (t, lb1 holds, lb2 holds)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.samples: list[tuple[float, bool, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            a = self.lab.holds_vip("lb1")
            b = self.lab.holds_vip("lb2")
            self.samples.append((t, a, b))
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def dual(self) -> list[float]:
        return [t for t, a, b in self.samples if a and b]

    def first(self, host: str, since: float) -> float | None:
        idx = 1 if host == "lb1" else 2
        return next((s[0] for s in self.samples if s[0] >= since and s[idx]), None)

    def last(self, host: str) -> float | None:
        idx = 1 if host == "lb1" else 2
        held = [s[0] for s in self.samples if s[idx]]
        return held[-1] if held else None


MEMBERS = {"e1": "10.99.0.101", "e2": "10.99.0.102", "e3": "10.99.0.103"}
"""e1 sits on lb1's site, e2 on lb2's, e3 at the third (witness) site."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> None:
    """A CA, one server certificate per member (IP SAN) and a client certificate."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=pyvrrp-test-ca", cwd=d)  # fmt: skip
    for name, ip in [*MEMBERS.items(), ("client", None)]:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        ext = d / f"{name}.ext"
        usage = "serverAuth,clientAuth" if ip else "clientAuth"
        ext.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName=IP:{ip}\n" if ip else ""))
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name, cwd=d)  # fmt: skip


class Cluster:
    """Three etcd members, each in its own namespace, on bridge ``wbr`` of ``<prefix>-wcore``.

    ``minority(...)`` moves ports to a second bridge ``wbra`` (a partition of the etcd network).
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.core = f"{lab.prefix}-wcore"
        self.dir = lab.run_dir / "etcd3"
        self.certs = self.dir / "certs"
        make_certs(self.certs)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        subprocess.run(["ip", "netns", "add", self.core], check=True)
        core = ["link set lo up"]
        for br in ("wbr", "wbra"):
            core += [f"link add {br} type bridge stp_state 0 forward_delay 0", f"link set {br} up"]
        for name in MEMBERS:
            ns = self.ns(name)
            subprocess.run(["ip", "netns", "add", ns], check=True)
            core += [
                f"link add c-{name} type veth peer name eth0 netns {ns}",
                f"link set c-{name} master wbr up",
            ]
        for host in ("lb1", "lb2"):
            core += [f"link add c-{host} type veth peer name wit0 netns {lab.ns(host)}",
                     f"link set c-{host} master wbr up"]  # fmt: skip
        subprocess.run(
            ["ip", "-n", self.core, "-batch", "-"], input="\n".join(core) + "\n", text=True, check=True
        )
        for name, ip in MEMBERS.items():
            batch = f"link set lo up\naddr add {ip}/24 dev eth0\nlink set eth0 up\n"
            subprocess.run(["ip", "-n", self.ns(name), "-batch", "-"], input=batch, text=True, check=True)
        for host, ip in WIT_IP.items():
            lab.ip_cmd(host, "addr", "add", f"{ip}/24", "dev", "wit0")
            lab.ip_cmd(host, "link", "set", "wit0", "up")

    def ns(self, member: str) -> str:
        return f"{self.lab.prefix}-{member}"

    def url(self, member: str) -> str:
        return f"https://{MEMBERS[member]}:2379"

    def start(self, *members: str) -> Cluster:
        cluster = ",".join(f"{n}=http://{ip}:2380" for n, ip in MEMBERS.items())
        c = self.certs
        for name in members or tuple(MEMBERS):
            ip = MEMBERS[name]
            log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
            self.procs[name] = subprocess.Popen(
                [
                    "ip", "netns", "exec", self.ns(name), "etcd", "--name", name,
                    "--data-dir", str(self.dir / f"{name}.data"),
                    "--listen-client-urls", self.url(name), "--advertise-client-urls", self.url(name),
                    "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                    "--initial-cluster", cluster, "--initial-cluster-state", "new",
                    "--pre-vote",
                    "--cert-file", str(c / f"{name}.pem"), "--key-file", str(c / f"{name}.key"),
                    "--client-cert-auth", "--trusted-ca-file", str(c / "ca.pem"),
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            log.close()
        for name in members or tuple(MEMBERS):
            wait_for(lambda n=name: self.healthy(n), 30.0, 0.2, what=f"etcd {name} healthy")  # type: ignore[misc]
        return self

    def healthy(self, member: str) -> bool:
        c = self.certs
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns(member), "curl", "-s", "-m", "1", "--cacert", str(c / "ca.pem"),
             "--cert", str(c / "client.pem"), "--key", str(c / "client.key"), f"{self.url(member)}/health"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return '"health":"true"' in proc.stdout

    def kill(self, member: str) -> None:
        proc = self.procs.pop(member)
        proc.kill()
        proc.wait(timeout=10)

    def minority(self, *ports: str) -> None:
        for port in ports:
            subprocess.run(["ip", "-n", self.core, "link", "set", f"c-{port}", "master", "wbra"], check=True)

    def destroy(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for ns in (self.core, *(self.ns(n) for n in MEMBERS)):
            subprocess.run(["ip", "netns", "del", ns], check=False)
