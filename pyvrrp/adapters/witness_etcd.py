"""The etcd client of the quorum witness: etcd's v3 JSON gateway over httpx (issue 13).

Why the gateway and httpx (and not a gRPC client):

* Every etcd v3 server (Debian's 3.4 included) serves the documented JSON mapping of
  its gRPC API on the client port (``/v3/kv/txn``, ``/v3/lease/grant``,
  ``/v3/lease/keepalive``, ``/v3/lease/revoke``, ``/v3/auth/authenticate``); the five
  calls the witness needs are plain POSTs, nothing hand-written at the gRPC level.
* httpx is a maintained, typed, pure-Python asyncio HTTP client: each request has its
  own hard timeout (the deadline logic needs a keepalive that fails *in time*, not a
  stream that hangs), TLS with a CA and a client certificate is the ssl module's, and
  nothing runs outside the event loop.  The gRPC clients on PyPI (``etcd3`` last
  released 2020; ``aetcd``) bring grpcio (19 MB of C core with its own threads and
  poller) and a protobuf version pin; measured here, ``import httpx`` and ``import aetcd``
  both take ~0.1 s, and this module is imported only when ``global_defs.witness`` is set.

The interface is small (:class:`EtcdWitness`): grant / keepalive / revoke a lease, create
a key bound to it if absent, replace or delete a key only at a given revision (compare-
and-swap on ``mod_revision``), read a key.  Failures are :class:`WitnessUnavailable`
(every endpoint failed or timed out); the caller (:mod:`pyvrrp.runtime.witness`) decides.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["EtcdWitness", "KeyInfo", "WitnessAuthFailed", "WitnessUnavailable"]


class WitnessUnavailable(Exception):
    """No endpoint answered within the timeout (or every one refused)."""


class WitnessAuthFailed(WitnessUnavailable):
    """etcd refused ``user``/``password`` (a configuration error, not an outage; the policy
    still applies: without a lease the node holds no witnessed VIP)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as etcd holds it."""

    value: bytes
    mod_revision: int
    create_revision: int
    lease: int


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _key_info(kv: dict[str, Any]) -> KeyInfo:
    return KeyInfo(
        value=base64.b64decode(kv.get("value", "")),
        mod_revision=int(kv.get("mod_revision", 0)),
        create_revision=int(kv.get("create_revision", 0)),
        lease=int(kv.get("lease", 0)),
    )


def _first_kv(response: dict[str, Any]) -> KeyInfo | None:
    kvs = response.get("kvs") or []
    return _key_info(kvs[0]) if kvs else None


class EtcdWitness:
    """A small etcd v3 client for the witness (module docstring)."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout_s: float,
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout_s = timeout_s
        self._current = 0
        self._user, self._password = user, password
        self._token: str | None = None
        verify: ssl.SSLContext | bool = True
        if any(e.startswith("https://") for e in endpoints):
            ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
            if cert is not None and key is not None:
                ctx.load_cert_chain(str(cert), str(key))
            verify = ctx
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_keepalive_connections=4, max_connections=8),
            trust_env=False,  # an HTTP(S)_PROXY of the environment must never sit between us and etcd
        )
        self.last_rtt_s: float | None = None
        self.requests = 0
        self.failures = 0
        self.reauths = 0
        """Requests retried after etcd rejected an expired auth token."""

    @property
    def endpoint(self) -> str:
        """The endpoint the last request went to (the one that answered, if any did)."""
        return self.endpoints[self._current]

    async def close(self) -> None:
        await self._http.aclose()

    # --------------------------------------------------------------- transport

    async def _post(self, path: str, body: dict[str, Any], *, auth: bool = True) -> dict[str, Any]:
        """POST to the current endpoint, then to each other one once; the first answer wins.

        Raises:
            WitnessUnavailable: no endpoint gave an answer (connection, timeout, 5xx, an
                etcd "unavailable" / "timed out" error); the message has each one's reason.
        """
        reasons = []
        n = len(self.endpoints)
        for i in range(n):
            idx = (self._current + i) % n
            url = self.endpoints[idx] + path
            self.requests += 1
            try:
                resp, doc = await self._send(idx, url, body, auth=auth)
                error = doc.get("error") or (doc.get("result") or {}).get("error")
                if error and "auth token" in str(error) and auth and self._user is not None:
                    # the token expired (simple tokens: --auth-token-ttl idle) or etcd restarted:
                    # authenticate again and retry here at once, not one renewal round later
                    self._token = None
                    self.reauths += 1
                    resp, doc = await self._send(idx, url, body, auth=auth)
                    error = doc.get("error") or (doc.get("result") or {}).get("error")
            except WitnessAuthFailed:
                self.failures += 1
                raise
            except (httpx.HTTPError, OSError, ValueError) as exc:
                self.failures += 1
                reasons.append(f"{self.endpoints[idx]}: {type(exc).__name__}: {exc}".rstrip(": "))
                continue
            if resp.status_code >= 500 or (
                error and resp.status_code >= 400 and "not found" not in str(error)
            ):
                self.failures += 1
                reasons.append(f"{self.endpoints[idx]}: HTTP {resp.status_code}: {error or resp.text[:200]}")
                continue
            self._current = idx
            return doc
        raise WitnessUnavailable("; ".join(reasons) or "no endpoint")

    async def _send(
        self, idx: int, url: str, body: dict[str, Any], *, auth: bool
    ) -> tuple[httpx.Response, dict[str, Any]]:
        if auth and self._user is not None and self._token is None:
            await self._authenticate(self.endpoints[idx])
        headers = {"Authorization": self._token} if auth and self._token else {}
        t0 = time.monotonic()
        resp = await self._http.post(url, content=json.dumps(body), headers=headers)
        self.last_rtt_s = time.monotonic() - t0
        return resp, self._decode(resp)

    @staticmethod
    def _decode(resp: httpx.Response) -> dict[str, Any]:
        text = resp.text.strip()
        if not text:
            return {}
        # streaming calls (lease keepalive) answer one JSON object per line
        doc = json.loads(text.splitlines()[0])
        if not isinstance(doc, dict):
            raise ValueError(f"unexpected answer {text[:100]!r}")
        return doc

    async def _authenticate(self, endpoint: str) -> None:
        resp = await self._http.post(
            endpoint + "/v3/auth/authenticate",
            content=json.dumps({"name": self._user, "password": self._password}),
        )
        doc = self._decode(resp)
        token = doc.get("token")
        if token:
            self._token = str(token)
            return
        error = str(doc.get("error") or doc.get("message") or f"HTTP {resp.status_code}")
        if "authentication failed" in error or "invalid user" in error or "password" in error:
            raise WitnessAuthFailed(
                f"{endpoint}: etcd refused user {self._user!r}: {error}; check global_defs.witness.user "
                "and .password (etcdctl user get / auth status on the etcd side)"
            )
        if "auth" in error and "not enabled" in error:
            raise WitnessAuthFailed(
                f"{endpoint}: {error}: etcd has no authentication enabled; remove global_defs.witness.user "
                "and .password, or run `etcdctl auth enable`"
            )
        raise ValueError(f"authentication failed: {error}")

    # ------------------------------------------------------------------ leases

    async def grant(self, ttl_s: int) -> tuple[int, int]:
        """A new lease: ``(lease id, granted TTL in seconds)``."""
        doc = await self._post("/v3/lease/grant", {"TTL": ttl_s})
        if doc.get("error"):
            raise WitnessUnavailable(f"lease grant refused: {doc['error']}")
        return int(doc["ID"]), int(doc.get("TTL", 0))

    async def keepalive(self, lease_id: int) -> int:
        """Renew ``lease_id``; returns its TTL (0: the lease is gone, etcd expired or revoked it)."""
        doc = await self._post("/v3/lease/keepalive", {"ID": lease_id})
        result = doc.get("result") or {}
        if doc.get("error") or result.get("error"):
            return 0
        return int(result.get("TTL", 0))

    async def revoke(self, lease_id: int) -> None:
        """Revoke the lease: every key bound to it is deleted at once."""
        await self._post("/v3/lease/revoke", {"ID": lease_id})

    # -------------------------------------------------------------------- keys

    async def create(self, key: str, value: bytes, lease_id: int) -> tuple[bool, int, KeyInfo | None]:
        """Put ``key`` bound to the lease if it does not exist (one transaction).

        Returns ``(True, revision, None)`` when created, else ``(False, 0, the key as it is)``.
        """
        k = _b64(key)
        doc = await self._post(
            "/v3/kv/txn",
            {
                "compare": [{"target": "CREATE", "key": k, "createRevision": "0", "result": "EQUAL"}],
                "success": [{"requestPut": {"key": k, "value": _b64(value), "lease": str(lease_id)}}],
                "failure": [{"requestRange": {"key": k}}],
            },
        )
        if doc.get("succeeded"):
            return True, int(doc["header"]["revision"]), None
        responses = doc.get("responses") or [{}]
        return False, 0, _first_kv(responses[0].get("response_range") or {})

    async def replace(self, key: str, value: bytes, lease_id: int, mod_revision: int) -> tuple[bool, int]:
        """Put ``key`` bound to the lease only if it is still at ``mod_revision``."""
        k = _b64(key)
        doc = await self._post(
            "/v3/kv/txn",
            {
                "compare": [{"target": "MOD", "key": k, "modRevision": str(mod_revision), "result": "EQUAL"}],
                "success": [{"requestPut": {"key": k, "value": _b64(value), "lease": str(lease_id)}}],
            },
        )
        if doc.get("succeeded"):
            return True, int(doc["header"]["revision"])
        return False, 0

    async def delete(self, key: str, mod_revision: int) -> bool:
        """Delete ``key`` only if it is still at ``mod_revision`` (ours); True when deleted."""
        k = _b64(key)
        doc = await self._post(
            "/v3/kv/txn",
            {
                "compare": [{"target": "MOD", "key": k, "modRevision": str(mod_revision), "result": "EQUAL"}],
                "success": [{"requestDeleteRange": {"key": k}}],
            },
        )
        return bool(doc.get("succeeded"))

    async def put(self, key: str, value: bytes, lease_id: int) -> int:
        """Put ``key`` bound to the lease, unconditionally; returns the revision."""
        doc = await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value), "lease": str(lease_id)})
        return int((doc.get("header") or {}).get("revision", 0))

    async def get(self, key: str) -> KeyInfo | None:
        """The key (linearizable read), or None when absent."""
        doc = await self._post("/v3/kv/range", {"key": _b64(key)})
        return _first_kv(doc)
