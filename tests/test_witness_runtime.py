"""WitnessRuntime against an in-memory etcd double: acquire, take back our own key, release, give up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyvrrp.adapters.witness_etcd import KeyInfo, WitnessUnavailable
from pyvrrp.config.models import Witness
from pyvrrp.runtime.witness import WitnessRuntime
from pyvrrp.splitbrain.witness import KeyValue


class FakeEtcd:
    """The EtcdWitness interface over a dict; ``down = True`` makes every call fail."""

    endpoint = "http://fake:2379"

    def __init__(self) -> None:
        self.kv: dict[str, KeyInfo] = {}
        self.rev = 1
        self.leases: set[int] = set()
        self.next_lease = 100
        self.down = False
        self.deleted: list[str] = []
        self.revoked: list[int] = []

    def _check(self) -> None:
        if self.down:
            raise WitnessUnavailable("fake: down")

    async def grant(self, ttl_s: int) -> tuple[int, int]:
        self._check()
        self.next_lease += 1
        self.leases.add(self.next_lease)
        return self.next_lease, ttl_s

    async def keepalive(self, lease_id: int) -> int:
        self._check()
        return 5 if lease_id in self.leases else 0

    async def revoke(self, lease_id: int) -> None:
        self._check()
        self.revoked.append(lease_id)
        self.leases.discard(lease_id)
        self.kv = {k: v for k, v in self.kv.items() if v.lease != lease_id}

    async def create(self, key: str, value: bytes, lease_id: int) -> tuple[bool, int, KeyInfo | None]:
        self._check()
        if key in self.kv:
            return False, 0, self.kv[key]
        self.rev += 1
        self.kv[key] = KeyInfo(value, self.rev, self.rev, lease_id)
        return True, self.rev, None

    async def replace(self, key: str, value: bytes, lease_id: int, mod_revision: int) -> tuple[bool, int]:
        self._check()
        if key not in self.kv or self.kv[key].mod_revision != mod_revision:
            return False, 0
        self.rev += 1
        self.kv[key] = KeyInfo(value, self.rev, self.kv[key].create_revision, lease_id)
        return True, self.rev

    async def delete(self, key: str, mod_revision: int) -> bool:
        self._check()
        if key in self.kv and self.kv[key].mod_revision == mod_revision:
            del self.kv[key]
            self.deleted.append(key)
            return True
        return False

    async def put(self, key: str, value: bytes, lease_id: int) -> int:
        self._check()
        self.rev += 1
        self.kv[key] = KeyInfo(value, self.rev, self.rev, lease_id)
        return self.rev

    async def get(self, key: str) -> KeyInfo | None:
        self._check()
        return self.kv.get(key)

    async def close(self) -> None:
        pass


def make(
    policy: str = "release", **kw: Any
) -> tuple[WitnessRuntime, FakeEtcd, list[tuple[str, str]], list[int]]:
    cfg = Witness(endpoints=["http://10.0.0.1:2379"], ttl=2, margin=0.5, on_unavailable=policy, **kw)
    fake = FakeEtcd()
    gave_up: list[tuple[str, str]] = []
    back: list[int] = []
    rt = WitnessRuntime(
        cfg,
        fake,
        router_id="lb1",
        on_give_up=lambda k, r: gave_up.append((k, r)),
        on_back=lambda: back.append(1),
    )  # type: ignore[arg-type]
    return rt, fake, gave_up, back


VALUE = KeyValue("lb1", "192.0.2.1", 150, "VI_1", 1)
OTHER = KeyValue("lb2", "192.0.2.2", 100, "VI_1", 9)


def test_acquire_release_and_fencing_token() -> None:
    async def main() -> None:
        rt, fake, _, back = make()
        await rt.start()
        assert back == [1]
        ok, why = await rt.acquire("instance/VI_1", VALUE)
        assert ok and "revision 2" in why
        assert rt.revision("instance/VI_1") == 2
        assert KeyValue.decode(fake.kv["/pyvrrp/instance/VI_1"].value) == VALUE
        snap = rt.snapshot("instance/VI_1")
        assert snap["held"] and snap["revision"] == 2 and snap["holder"] == "lb1"
        rt.release("instance/VI_1")
        await asyncio.sleep(0.01)
        assert fake.deleted == ["/pyvrrp/instance/VI_1"]
        await rt.close()
        assert fake.revoked

    asyncio.run(main())


def test_held_by_another_node_is_denied_after_waiting() -> None:
    async def main() -> None:
        rt, fake, _, _ = make()
        await rt.start()
        fake.kv["/pyvrrp/instance/VI_1"] = KeyInfo(OTHER.encode(), 7, 7, 999)
        ok, why = await rt.acquire("instance/VI_1", VALUE, wait_s=0.12)
        assert not ok and "held by lb2" in why
        assert rt.snapshot("instance/VI_1")["holder"] == "lb2"

        # the holder releases while we wait: we get it
        async def release_soon() -> None:
            await asyncio.sleep(0.05)
            del fake.kv["/pyvrrp/instance/VI_1"]

        task = asyncio.ensure_future(release_soon())
        ok, _ = await rt.acquire("instance/VI_1", VALUE, wait_s=0.5)
        await task
        assert ok
        await rt.close()

    asyncio.run(main())


def test_our_own_key_from_an_earlier_lease_is_taken_back() -> None:
    async def main() -> None:
        rt, fake, _, _ = make()
        await rt.start()
        fake.kv["/pyvrrp/instance/VI_1"] = KeyInfo(VALUE.encode(), 5, 5, 1)
        ok, _ = await rt.acquire("instance/VI_1", VALUE, wait_s=0)
        assert ok and fake.kv["/pyvrrp/instance/VI_1"].lease == rt.gate.lease.lease_id
        await rt.close()

    asyncio.run(main())


def test_etcd_down_gives_up_at_the_deadline_not_later() -> None:
    async def main() -> None:
        rt, fake, gave_up, _ = make()
        await rt.start()
        assert (await rt.acquire("instance/VI_1", VALUE))[0]
        loop = asyncio.get_running_loop()
        fake.down = True
        t0 = loop.time()
        deadline = rt.gate.lease.deadline
        assert deadline is not None
        while not gave_up and loop.time() - t0 < 3.0:
            await asyncio.sleep(0.01)
        assert gave_up and gave_up[0][0] == "instance/VI_1"
        late = loop.time() - deadline
        assert -0.001 <= late < 0.3, late  # at the deadline (ttl 2 - margin 0.5 after the last renewal)
        assert rt.renew_failures >= 1
        ok, why = await rt.acquire("instance/VI_1", VALUE)
        assert not ok and "on_unavailable = release" in why
        await rt.close(budget_s=0.05)

    asyncio.run(main())


def test_policy_vrrp_keeps_the_vips_and_reports_back() -> None:
    async def main() -> None:
        rt, fake, gave_up, back = make("vrrp")
        fake.down = True
        await rt.start()
        ok, why = await rt.acquire("instance/VI_1", VALUE)
        assert ok and "unwitnessed" in why
        fake.down = False
        await asyncio.sleep(0.5)  # the lease loop grants a lease: on_back
        assert back == [1] and not gave_up
        assert rt.gate.to_reacquire(asyncio.get_running_loop().time()) == ["instance/VI_1"]
        await rt.close()

    asyncio.run(main())


def test_import_of_the_client_is_lazy() -> None:
    """A config without a witness never imports httpx (start-up time of other configs)."""
    import subprocess
    import sys

    code = "import sys, pyvrrp.runtime.daemon, pyvrrp.cli.app; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_preemption_claim_reaches_the_holder() -> None:
    async def main() -> None:
        claims: list[tuple[str, KeyValue]] = []
        holder, fake, _, _ = make()
        holder.on_claim = lambda k, v: claims.append((k, v))
        await holder.start()
        assert (await holder.acquire("instance/VI_1", VALUE))[0]
        # another runtime (lb2, higher priority) on the same fake etcd
        cfg = Witness(endpoints=["http://10.0.0.1:2379"], ttl=2, margin=0.5)
        other = WitnessRuntime(cfg, fake, router_id="lb2", on_give_up=lambda k, r: None, on_back=lambda: None)  # type: ignore[arg-type]
        await other.start()
        higher = KeyValue("lb2", "192.0.2.2", 200, "VI_1", 3)

        async def holder_yields() -> None:
            while not claims:
                await asyncio.sleep(0.01)
            holder.release("instance/VI_1")

        task = asyncio.ensure_future(holder_yields())
        ok, why = await other.acquire("instance/VI_1", higher, claim=True, wait_s=0.1)
        await task
        assert ok, why
        assert claims[0][0] == "instance/VI_1" and claims[0][1].priority == 200
        await asyncio.sleep(0.05)
        assert "/pyvrrp/claim/instance/VI_1" not in fake.kv  # the claim is dropped afterwards
        await holder.close()
        await other.close()

    asyncio.run(main())


def test_state_table_shows_the_revision_beside_the_epoch() -> None:
    from pyvrrp.runtime.state_view import witness_line

    w = {
        "key": "/pyvrrp/instance/VI_1",
        "held": True,
        "holder": "lb1",
        "revision": 17,
        "lease_id": 7668682643270624261,
        "deadline_in_s": 3.25,
        "endpoint": "http://10.0.0.1:2379",
        "available": True,
        "renew_failures": 2,
        "unwitnessed": False,
    }
    line = witness_line("VI_1", w, 4)
    assert "held by this node, revision 17 (epoch 4)" in line
    assert "deadline in 3.25s" in line and "renew failures 2" in line and "UNAVAILABLE" not in line
    other = witness_line(
        "VI_1", {**w, "held": False, "holder": "lb2", "revision": None, "available": False}, 4
    )
    assert "held by lb2, revision - (epoch 4)" in other and "UNAVAILABLE" in other


def test_a_reload_that_changes_the_witness_needs_a_restart() -> None:
    from pyvrrp.config import loads_toml
    from pyvrrp.runtime.daemon import _witness_change

    base = """
[global_defs]
witness = {{ endpoints = ["http://10.0.0.1:2379"], ttl = {ttl} }}
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.168.233.200/32"]
witness = {w}
"""
    a = loads_toml(base.format(ttl=5, w="true"))
    assert _witness_change(a, loads_toml(base.format(ttl=5, w="true"))) is None
    assert _witness_change(a, loads_toml(base.format(ttl=6, w="true"))) == "global_defs.witness"
    assert (
        _witness_change(a, loads_toml(base.format(ttl=5, w="false"))) == "the witness of vrrp_instance VI_1"
    )


def test_lease_lost_in_etcd_gives_up_then_a_new_lease_reports_back() -> None:
    async def main() -> None:
        rt, fake, gave_up, back = make()
        await rt.start()
        assert (await rt.acquire("instance/VI_1", VALUE))[0]
        fake.leases.clear()  # etcd expired or revoked our lease
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while len(back) < 2 and loop.time() - t0 < 3.0:
            await asyncio.sleep(0.01)
        assert gave_up and gave_up[0] == ("instance/VI_1", "witness lease expired in etcd")
        assert back == [1, 1], "the new lease must clear the witness fault (on_back)"
        assert rt.lease_grants == 2
        await rt.close()

    asyncio.run(main())


def test_keys_given_up_at_the_deadline_are_deleted_when_etcd_answers_again() -> None:
    """The deadline passed but the lease survived in etcd (slow answers): the key must not
    stay bound to our renewed lease while we are no longer MASTER."""

    async def main() -> None:
        rt, fake, gave_up, back = make()
        await rt.start()
        assert (await rt.acquire("instance/VI_1", VALUE))[0]
        fake.down = True
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while not gave_up and loop.time() - t0 < 3.0:
            await asyncio.sleep(0.01)
        assert gave_up
        fake.down = False  # the lease is still alive in the fake: keepalive answers 5
        while len(back) < 2 and loop.time() - t0 < 5.0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert "/pyvrrp/instance/VI_1" not in fake.kv and fake.deleted == ["/pyvrrp/instance/VI_1"]
        await rt.close()

    asyncio.run(main())


def test_check_config_of_a_config_without_witness_does_not_import_httpx(tmp_path: Path) -> None:
    """Loading and checking a witness-free config (what every start does first) leaves httpx unloaded."""
    import subprocess
    import sys

    conf = tmp_path / "p.toml"
    conf.write_text(
        '[global_defs]\nrouter_id = "lb1"\n\n[vrrp_instance.VI_1]\ninterface = "eth0"\n'
        'virtual_router_id = 51\npriority = 150\nvirtual_ipaddress = ["192.168.233.200/32"]\n'
    )
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom pyvrrp.cli.app import app\n"
        "import pyvrrp.runtime.daemon\n"
        f"r = CliRunner().invoke(app, ['check-config', '-f', {str(conf)!r}])\n"
        "assert r.exit_code == 0, r.output\nprint('httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout
