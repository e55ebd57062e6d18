"""An asyncio client of the OCI distribution API, for digest verification and tag resolution.

One :class:`RegistryClient` per process, shared, closed at shutdown: it keeps one pooled
``aiohttp`` session (keep-alive connections per host), bearer tokens per scope until they
expire, and a circuit breaker per registry host::

    async with RegistryClient(insecure_registries={"127.0.0.1:5000"}) as registry:
        manifest = await registry.verify_digest("reg.example.com/shop/web@sha256:...", creds)
        digest = await registry.resolve_tag("reg.example.com/shop/web:1.4.2", creds)

Authentication follows what registries do: the request goes out (with cached credentials
when the host is known to want them); a 401 carries ``WWW-Authenticate``; for ``Basic``
the client retries with the username and password; for ``Bearer realm=,service=,scope=``
it fetches a token from the realm (with basic credentials when it has them, anonymously
otherwise), caches it per (host, scope, user) until ``expires_in``, and retries.

HTTPS always, except for hosts listed in ``insecure_registries`` (loopback registries in
tests and dev); credentials are never sent over plain HTTP to any other host.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from stella.registry.errors import (
    DigestMismatch,
    InvalidImageReference,
    ManifestNotFound,
    RegistryAuthFailed,
    RegistryError,
    RegistryUnavailable,
    TagNotFound,
)
from stella.registry.reference import ImageRef, parse_image_ref, parse_pinned
from stella.secrets.breaker import BreakerPolicy, CircuitBreaker
from stella.secrets.value import SecretValue

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
#: The OCI distribution spec lets registries refuse manifests above 4 MiB; so do we.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "stella-registry-client/0.1"

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class RegistryCredentials:
    """Basic credentials for a registry or its token service (repr never shows the password)."""

    username: str
    password: SecretValue

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password.reveal()}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest (or index) fetched by digest whose bytes hash to that digest."""

    image: ImageRef
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lowercased
    params: Mapping[str, str]


def parse_www_authenticate(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` or ``Basic realm="..."``."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(rest):
        quoted = raw.startswith('"') and raw.endswith('"') and len(raw) >= 2
        params[key.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if quoted else raw
    return Challenge(scheme=scheme.lower(), params=params)


@dataclass
class _Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryClient:
    """Use one instance per event loop (its pooled session belongs to the loop it first ran in)."""

    def __init__(
        self,
        *,
        insecure_registries: Iterable[str] = (),
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        breaker_policy: BreakerPolicy | None = None,
        limit_per_host: int = 8,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.insecure_registries = frozenset(h.lower() for h in insecure_registries)
        self._timeout = aiohttp.ClientTimeout(
            total=timeout,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=timeout,
        )
        self._breaker_policy = breaker_policy or BreakerPolicy(
            failure_threshold=3, base_backoff=2.0, max_backoff=120.0
        )
        self._limit_per_host = limit_per_host
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._clock = clock
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._breakers: dict[str, CircuitBreaker] = {}
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._bearer: dict[str, Mapping[str, str]] = {}  # host -> realm/service of its challenge
        self._basic_hosts: set[str] = set()
        #: counters for metrics, tests and the benchmark
        self.requests = 0
        self.token_fetches = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kw: Any) -> RegistryClient:
        """``STELLA_INSECURE_REGISTRIES`` (comma-separated host:port served over plain HTTP;
        loopback and development only) and ``STELLA_REGISTRY_TIMEOUT`` (seconds, default 10)."""
        e = os.environ if env is None else env
        insecure = [h.strip() for h in e.get("STELLA_INSECURE_REGISTRIES", "").split(",")]
        kw.setdefault("timeout", float(e.get("STELLA_REGISTRY_TIMEOUT", "10")))
        return cls(insecure_registries=[h for h in insecure if h], **kw)

    def breaker_states(self) -> dict[str, str]:
        """Circuit breaker state per registry host, for a metric or a readiness detail."""
        return {host: b.state.value for host, b in self._breakers.items()}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self._tokens.clear()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=100,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=30,
                ttl_dns_cache=60,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": self._user_agent},
                auto_decompress=False,  # hash the exact bytes the registry sent
            )
        return self._session

    def breaker(self, host: str) -> CircuitBreaker:
        b = self._breakers.get(host)
        if b is None:
            b = self._breakers[host] = CircuitBreaker(f"registry {host}", self._breaker_policy)
        return b

    def scheme(self, host: str) -> str:
        return "http" if host.lower() in self.insecure_registries else "https"

    # ---- public API -------------------------------------------------------------------

    async def verify_digest(
        self, image: str | ImageRef, credentials: RegistryCredentials | None = None
    ) -> VerifiedManifest:
        """Fetch the manifest or index by its pinned digest and prove its bytes hash to it.

        Raises :class:`ManifestNotFound` (404), :class:`DigestMismatch` (the body's sha256
        or the ``Docker-Content-Digest`` header differs from the pin),
        :class:`RegistryUnavailable`, :class:`RegistryAuthFailed`, :class:`RegistryError`.
        """
        ref = image if isinstance(image, ImageRef) else parse_pinned(image)
        if ref.digest is None:
            raise InvalidImageReference(f"image {ref} is not pinned by digest", image=str(ref))
        expected = ref.digest
        resp = await self._get_manifest(ref, expected, credentials)
        if resp.status == 404:
            raise ManifestNotFound(
                f"registry {ref.registry} has no manifest {expected} in {ref.repository}: it "
                "was deleted or never pushed there. Restore the exact image (same digest) or "
                "create a new Release",
                image=str(ref),
            )
        self._expect_ok(resp, ref)
        actual = "sha256:" + hashlib.sha256(resp.body).hexdigest()
        header = resp.headers.get("Docker-Content-Digest")
        if actual != expected or (header is not None and header != expected):
            what = (
                f"its bytes hash to {actual}"
                if actual != expected
                else f"it answered with Docker-Content-Digest {header}"
            )
            raise DigestMismatch(
                f"registry {ref.registry} served a manifest for {ref.repository}@{expected} "
                f"but {what}: the content behind the pinned digest was altered. Nothing is "
                "deployed from it; investigate the registry before clearing the halt",
                image=str(ref),
                expected=expected,
                actual=actual,
                header=header,
            )
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return VerifiedManifest(
            image=ref, digest=expected, media_type=media_type, size=len(resp.body)
        )

    async def resolve_tag(
        self, image: str | ImageRef, credentials: RegistryCredentials | None = None
    ) -> str:
        """The digest a tag points at now: the sha256 of the manifest bytes served for it."""
        ref = image if isinstance(image, ImageRef) else parse_image_ref(image)
        if not ref.tag:
            raise InvalidImageReference(f"image {ref} has no tag to resolve", image=str(ref))
        resp = await self._get_manifest(ref, ref.tag, credentials)
        if resp.status == 404:
            raise TagNotFound(
                f"registry {ref.registry} has no tag {ref.tag} in {ref.repository}",
                image=str(ref),
            )
        self._expect_ok(resp, ref)
        actual = "sha256:" + hashlib.sha256(resp.body).hexdigest()
        header = resp.headers.get("Docker-Content-Digest")
        if header is not None and header != actual:
            raise DigestMismatch(
                f"registry {ref.registry} answered tag {ref.tag} of {ref.repository} with "
                f"Docker-Content-Digest {header} but bytes hashing to {actual}",
                image=str(ref),
                expected=header,
                actual=actual,
                header=header,
            )
        return actual

    async def request(
        self,
        ref: ImageRef,
        method: str,
        path: str,
        credentials: RegistryCredentials | None = None,
        *,
        push: bool = False,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = MAX_MANIFEST_BYTES,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One distribution API call for ``ref``'s repository (``path`` after
        ``/v2/<repository>/``, or an absolute upload URL the registry returned), through
        auth (pull scope, or pull+push), the breaker and the size cap. Used by
        :mod:`stella.registry.artifacts` for signatures, attestations and referrers."""
        host = ref.api_host
        if path.startswith(("http://", "https://")):
            url = URL(path, encoded=True)
            where = f"{url.host}:{url.port}" if url.explicit_port else str(url.host)
            if where.lower() != host.lower():
                raise RegistryError(
                    f"registry {ref.registry} sent an upload location on another host",
                    image=str(ref),
                )
        elif path.startswith("/v2/"):
            url = URL(f"{self.scheme(host)}://{host}{path}", encoded=True)
        else:
            url = URL(f"{self.scheme(host)}://{host}/v2/{ref.repository}/{path}", encoded=True)
        scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        resp = await self._guarded(
            ref, url, scope, credentials, method=method, body=body, headers=headers, limit=limit
        )
        return resp.status, resp.headers, resp.body

    async def ping(self, host: str, credentials: RegistryCredentials | None = None) -> None:
        """GET /v2/ (the API version check), through auth and the breaker."""
        ref = ImageRef(registry=host, repository="_ping")
        url = URL(f"{self.scheme(ref.api_host)}://{ref.api_host}/v2/")
        resp = await self._guarded(ref, url, "", credentials, method="GET")
        self._expect_ok(resp, ref)

    # ---- internals --------------------------------------------------------------------

    def _expect_ok(self, resp: _Response, ref: ImageRef) -> None:
        self.expect_ok_status(resp.status, ref)

    def expect_ok_status(self, status: int, ref: ImageRef) -> None:
        """Raise the error a non-200 answer means (auth refused, or another status)."""
        if status == 200:
            return
        if status in (401, 403):
            raise RegistryAuthFailed(
                f"registry {ref.registry} refused access to {ref.repository} "
                f"(HTTP {status}); check the registry credentials the Environment's "
                "registryCredentials reference points at, and their pull permission",
                image=str(ref),
            )
        raise RegistryError(
            f"registry {ref.registry} answered HTTP {status} for {ref.repository}",
            image=str(ref),
        )

    async def _get_manifest(
        self, ref: ImageRef, reference: str, credentials: RegistryCredentials | None
    ) -> _Response:
        host = ref.api_host
        url = URL(
            f"{self.scheme(host)}://{host}/v2/{ref.repository}/manifests/{reference}", encoded=False
        )
        scope = f"repository:{ref.repository}:pull"
        return await self._guarded(ref, url, scope, credentials, method="GET")

    async def _guarded(
        self,
        ref: ImageRef,
        url: URL,
        scope: str,
        credentials: RegistryCredentials | None,
        *,
        method: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = MAX_MANIFEST_BYTES,
    ) -> _Response:
        host = ref.api_host
        breaker = self.breaker(host)
        if not breaker.allow():
            wait = breaker.retry_after()
            raise RegistryUnavailable(
                f"registry {ref.registry} is failing; not trying again for {wait:.0f}s "
                "(circuit breaker open). Nothing is deployed unverified",
                image=str(ref),
                retry_after=max(wait, 1.0),
            )
        try:
            resp = await self._authorized(
                ref, url, scope, credentials, method, body=body, extra=headers, limit=limit
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            breaker.record_failure()
            raise RegistryUnavailable(
                f"cannot reach registry {ref.registry} ({type(err).__name__}); failing closed: "
                f"{ref} is not verified, so it is not deployed",
                image=str(ref),
                retry_after=max(breaker.retry_after(), 1.0),
            ) from None
        except RegistryUnavailable:
            breaker.record_failure()
            raise
        except RegistryError:
            breaker.record_success()
            raise
        except BaseException:
            breaker.record_failure()
            raise
        if resp.status >= 500 or resp.status == 429:
            breaker.record_failure()
            retry = resp.headers.get("Retry-After", "")
            raise RegistryUnavailable(
                f"registry {ref.registry} answered HTTP {resp.status}; failing closed",
                image=str(ref),
                retry_after=float(retry) if retry.isdigit() else max(breaker.retry_after(), 1.0),
            )
        breaker.record_success()
        return resp

    async def _send(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        limit: int,
        body: bytes | None = None,
    ) -> _Response:
        self.requests += 1
        session = self._get_session()
        async with session.request(
            method, url, headers=headers, data=body, allow_redirects=True
        ) as r:
            ok = r.status == 200
            cap = limit if ok else 64 * 1024  # an error document is read (capped), not kept
            if ok and r.content_length is not None and r.content_length > limit:
                raise RegistryError(f"{url.path}: response larger than {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in r.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > cap:
                    if ok:
                        raise RegistryError(f"{url.path}: response larger than {limit} bytes")
                    break
                chunks.append(chunk)
            return _Response(status=r.status, headers=r.headers, body=b"".join(chunks))

    def _cached_authorization(
        self, host: str, scope: str, credentials: RegistryCredentials | None
    ) -> str | None:
        user = credentials.username if credentials else ""
        tok = self._tokens.get((host, scope, user))
        if tok is not None:
            if tok.expires_at > self._clock():
                return f"Bearer {tok.value}"
            del self._tokens[(host, scope, user)]
        if credentials is not None and host in self._basic_hosts:
            return credentials.basic_header()
        return None

    async def _authorized(
        self,
        ref: ImageRef,
        url: URL,
        scope: str,
        credentials: RegistryCredentials | None,
        method: str,
        *,
        body: bytes | None = None,
        extra: Mapping[str, str] | None = None,
        limit: int = MAX_MANIFEST_BYTES,
    ) -> _Response:
        host = ref.api_host
        headers = {"Accept": ACCEPT, **(extra or {})}
        auth = self._cached_authorization(host, scope, credentials)
        if auth is None and host in self._bearer:
            # A bearer host we know: fetch the token for this scope before the first try.
            auth = await self._fetch_token(ref, dict(self._bearer[host]), scope, credentials)
        if auth:
            headers["Authorization"] = auth
        resp = await self._send(method, url, headers, limit, body)
        if resp.status != 401:
            return resp
        challenge = parse_www_authenticate(resp.headers.get("WWW-Authenticate"))
        user = credentials.username if credentials else ""
        self._tokens.pop((host, scope, user), None)
        if challenge is None:
            raise RegistryAuthFailed(
                f"registry {ref.registry} answered 401 without a WWW-Authenticate challenge",
                image=str(ref),
            )
        if challenge.scheme == "basic":
            if credentials is None:
                raise RegistryAuthFailed(
                    f"registry {ref.registry} requires credentials; set the Environment's "
                    "registryCredentials to a Vault reference holding them",
                    image=str(ref),
                )
            self._basic_hosts.add(host)
            headers["Authorization"] = credentials.basic_header()
        elif challenge.scheme == "bearer":
            params = dict(challenge.params)
            if "realm" not in params:
                raise RegistryAuthFailed(
                    f"registry {ref.registry} sent a Bearer challenge without a realm",
                    image=str(ref),
                )
            self._bearer[host] = {k: v for k, v in params.items() if k in ("realm", "service")}
            headers["Authorization"] = await self._fetch_token(
                ref, params, params.get("scope") or scope, credentials, cache_scope=scope
            )
        else:
            raise RegistryAuthFailed(
                f"registry {ref.registry} asks for {challenge.scheme!r} authentication, which "
                "Stella does not speak (basic and bearer only)",
                image=str(ref),
            )
        resp = await self._send(method, url, headers, limit, body)
        if resp.status == 401:
            self._tokens.pop((host, scope, user), None)
            raise RegistryAuthFailed(
                f"registry {ref.registry} refused the credentials for {ref.repository} "
                "(HTTP 401 after authenticating); check the username and password in Vault "
                "that the Environment's registryCredentials reference points at",
                image=str(ref),
            )
        return resp

    async def _fetch_token(
        self,
        ref: ImageRef,
        params: Mapping[str, str],
        scope: str,
        credentials: RegistryCredentials | None,
        *,
        cache_scope: str | None = None,
    ) -> str:
        realm = URL(params["realm"])
        if realm.scheme not in ("http", "https") or not realm.host:
            raise RegistryAuthFailed(f"registry {ref.registry} sent a bad token realm")
        realm_host = f"{realm.host}:{realm.port}" if realm.explicit_port else realm.host
        if (
            realm.scheme == "http"
            and realm_host.lower() not in self.insecure_registries
            and f"{realm.host}".lower() not in self.insecure_registries
        ):
            raise RegistryAuthFailed(
                f"registry {ref.registry} points to a token service over plain HTTP "
                f"({realm_host}); Stella sends credentials only over HTTPS (or to hosts listed "
                "in insecure registries)",
                image=str(ref),
            )
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if scope:
            query["scope"] = scope
        headers = {"Accept": "application/json"}
        if credentials is not None:
            headers["Authorization"] = credentials.basic_header()
        self.token_fetches += 1
        resp = await self._send("GET", realm.update_query(query), headers, MAX_TOKEN_RESPONSE_BYTES)
        if resp.status in (401, 403):
            raise RegistryAuthFailed(
                f"the token service of registry {ref.registry} refused the credentials "
                f"(HTTP {resp.status}); check the username and password in Vault that the "
                "Environment's registryCredentials reference points at",
                image=str(ref),
            )
        if resp.status >= 500 or resp.status == 429:
            raise RegistryUnavailable(
                f"the token service of registry {ref.registry} answered HTTP {resp.status}",
                image=str(ref),
            )
        if resp.status != 200:
            raise RegistryAuthFailed(
                f"the token service of registry {ref.registry} answered HTTP {resp.status}",
                image=str(ref),
            )
        try:
            doc: Any = json.loads(resp.body)
            token = doc.get("token") or doc.get("access_token")
            expires_in = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token, expires_in = None, 0.0
        if not isinstance(token, str) or not token:
            raise RegistryAuthFailed(
                f"the token service of registry {ref.registry} returned no token",
                image=str(ref),
            )
        margin = min(30.0, expires_in / 4)
        user = credentials.username if credentials else ""
        self._tokens[(ref.api_host, cache_scope or scope, user)] = _Token(
            value=token, expires_at=self._clock() + expires_in - margin
        )
        return f"Bearer {token}"


async def gather_limited(coros: Iterable[Any], limit: int) -> list[Any]:
    """Run awaitables with at most ``limit`` at a time, results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
