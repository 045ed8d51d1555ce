"""The etcd client's auth handling (pyvrrp.adapters.witness_etcd) against an in-memory etcd gateway."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from pyvrrp.adapters.witness_etcd import EtcdWitness, WitnessAuthFailed, WitnessUnavailable


class FakeEtcd:
    """/v3/auth/authenticate hands out tokens; ``expire()`` invalidates them (an etcd restart)."""

    def __init__(self, password: str = "s3cret") -> None:
        self.password = password
        self.tokens: set[str] = set()
        self.auths = 0

    def expire(self) -> None:
        self.tokens.clear()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        if request.url.path == "/v3/auth/authenticate":
            if body.get("password") != self.password:
                err = "etcdserver: authentication failed, invalid user ID or password"
                return httpx.Response(400, json={"error": err, "code": 3, "message": err})
            self.auths += 1
            token = f"tok{self.auths}"
            self.tokens.add(token)
            return httpx.Response(200, json={"token": token})
        if request.headers.get("authorization") not in self.tokens:
            err = "etcdserver: invalid auth token"
            return httpx.Response(401, json={"error": err, "code": 16, "message": err})
        return httpx.Response(200, json={"header": {"revision": "7"}, "ID": "42", "TTL": "5"})


def client(fake: FakeEtcd, password: str) -> EtcdWitness:
    w = EtcdWitness(["http://etcd:2379"], timeout_s=1.0, user="pyvrrp", password=password)
    w._http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return w


def test_expired_token_reauthenticates_and_retries_at_once() -> None:
    fake = FakeEtcd()

    async def run() -> None:
        w = client(fake, "s3cret")
        assert await w.grant(5) == (42, 5)
        fake.expire()
        assert await w.grant(5) == (42, 5)  # no WitnessUnavailable round in between
        assert (w.reauths, fake.auths) == (1, 2)
        await w.close()

    asyncio.run(run())


def test_wrong_password_is_an_auth_error_naming_the_keys() -> None:
    async def run() -> None:
        w = client(FakeEtcd(), "wrong")
        with pytest.raises(WitnessAuthFailed) as info:
            await w.grant(5)
        assert isinstance(info.value, WitnessUnavailable)  # the policy applies as for an outage
        msg = str(info.value)
        assert "refused user 'pyvrrp'" in msg and "global_defs.witness.user" in msg and "invalid user" in msg
        await w.close()

    asyncio.run(run())
