"""The operator's Vault (OpenBao) client: short-lived tokens, KV reads, a circuit breaker.

Construct one per process from settings and share it::

    vault = VaultClient(VaultSettings.from_env())
    password = vault.read("vault:secret/registry/prod#password")     # -> SecretValue
    password = await vault.aread(ref)                                 # from asyncio code

Authentication: a token (local runs; from a file or the settings), AppRole (role id plus
a secret id read from a file), or the Kubernetes auth method (the service account's JWT
file) in a cluster. Tokens obtained by logging in are short-lived; before each call the
client renews its token when less than ``renew_margin`` of its TTL is left, and logs in
again when renewal is refused or no longer extends it (max TTL reached). A 403 on a read
triggers one fresh login and retry (a token revoked behind our back).

Failure is closed: Vault unreachable, sealed or answering 5xx raises
:class:`VaultUnavailable`; after ``failure_threshold`` such failures the breaker opens and
calls fail at once (with ``retry_after``) until a half-open trial succeeds, so the
operator recovers on its own when Vault comes back, without a restart.

Values are returned as :class:`SecretValue` and never cached, logged or put in messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from stella.secrets.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from stella.secrets.errors import (
    SecretNotFound,
    SecretsError,
    VaultAuthFailed,
    VaultUnavailable,
)
from stella.secrets.refs import VaultRef, parse_vault_ref
from stella.secrets.value import SecretValue

log = logging.getLogger("stella.secrets.vault")

T = TypeVar("T")

K8S_JWT_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

_TRANSIENT_HVAC = (
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.VaultNotInitialized,
)
_NETWORK = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


@dataclass(frozen=True)
class TokenAuth:
    """A token given directly (local runs) or, preferably, read from a file at each login."""

    token: SecretValue | None = None
    token_file: Path | None = None

    def describe(self) -> str:
        return f"token from {self.token_file}" if self.token_file else "token"


@dataclass(frozen=True)
class AppRoleAuth:
    """AppRole: the role id is not secret; the secret id is read from a file at each login."""

    role_id: str
    secret_id_file: Path
    mount: str = "approle"

    def describe(self) -> str:
        return f"approle at auth/{self.mount}"


@dataclass(frozen=True)
class KubernetesAuth:
    """The Kubernetes auth method with the pod's (projected, rotating) service account JWT."""

    role: str
    jwt_file: Path = K8S_JWT_FILE
    mount: str = "kubernetes"

    def describe(self) -> str:
        return f"kubernetes role {self.role} at auth/{self.mount}"


AuthMethod = TokenAuth | AppRoleAuth | KubernetesAuth


@dataclass(frozen=True)
class VaultSettings:
    addr: str
    auth: AuthMethod
    namespace: str | None = None
    #: TLS verification: True, False (loopback only!) or a CA bundle path.
    verify: bool | str = True
    timeout: float = 5.0
    kv_version: int = 2
    #: renew when less than this fraction of the token's TTL is left
    renew_margin: float = 0.34
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VaultSettings:
        """Settings from ``STELLA_VAULT_*`` variables (``VAULT_ADDR``/``BAO_ADDR`` as fallback).

        ``STELLA_VAULT_AUTH``: ``kubernetes`` (``STELLA_VAULT_KUBERNETES_ROLE``,
        ``STELLA_VAULT_JWT_FILE``, ``STELLA_VAULT_KUBERNETES_MOUNT``), ``approle``
        (``STELLA_VAULT_ROLE_ID``, ``STELLA_VAULT_SECRET_ID_FILE``,
        ``STELLA_VAULT_APPROLE_MOUNT``) or ``token`` (``STELLA_VAULT_TOKEN_FILE``, else
        ``VAULT_TOKEN``/``BAO_TOKEN``). Without it, the method is inferred from which of
        these are set. Also ``STELLA_VAULT_NAMESPACE``, ``STELLA_VAULT_CACERT``
        (``VAULT_CACERT``), ``STELLA_VAULT_SKIP_VERIFY``, ``STELLA_VAULT_TIMEOUT``,
        ``STELLA_VAULT_KV_VERSION``.
        """
        e = dict(os.environ if env is None else env)
        addr = e.get("STELLA_VAULT_ADDR") or e.get("VAULT_ADDR") or e.get("BAO_ADDR")
        if not addr:
            raise SecretsError(
                "no Vault address: set STELLA_VAULT_ADDR (for example https://vault.vault:8200)"
            )
        method = e.get("STELLA_VAULT_AUTH", "").strip().lower()
        if not method:
            if e.get("STELLA_VAULT_KUBERNETES_ROLE"):
                method = "kubernetes"
            elif e.get("STELLA_VAULT_ROLE_ID"):
                method = "approle"
            else:
                method = "token"
        auth: AuthMethod
        if method == "kubernetes":
            role = e.get("STELLA_VAULT_KUBERNETES_ROLE")
            if not role:
                raise SecretsError(
                    "STELLA_VAULT_AUTH=kubernetes needs STELLA_VAULT_KUBERNETES_ROLE"
                )
            auth = KubernetesAuth(
                role=role,
                jwt_file=Path(e.get("STELLA_VAULT_JWT_FILE", str(K8S_JWT_FILE))),
                mount=e.get("STELLA_VAULT_KUBERNETES_MOUNT", "kubernetes"),
            )
        elif method == "approle":
            role_id, sid_file = e.get("STELLA_VAULT_ROLE_ID"), e.get("STELLA_VAULT_SECRET_ID_FILE")
            if not role_id or not sid_file:
                raise SecretsError(
                    "STELLA_VAULT_AUTH=approle needs STELLA_VAULT_ROLE_ID and "
                    "STELLA_VAULT_SECRET_ID_FILE (a file holding the secret id, never the value)"
                )
            auth = AppRoleAuth(
                role_id=role_id,
                secret_id_file=Path(sid_file),
                mount=e.get("STELLA_VAULT_APPROLE_MOUNT", "approle"),
            )
        elif method == "token":
            token_file = e.get("STELLA_VAULT_TOKEN_FILE")
            token = e.get("VAULT_TOKEN") or e.get("BAO_TOKEN")
            if not token_file and not token:
                raise SecretsError(
                    "STELLA_VAULT_AUTH=token needs STELLA_VAULT_TOKEN_FILE (or VAULT_TOKEN "
                    "for local runs); in a cluster use STELLA_VAULT_AUTH=kubernetes"
                )
            auth = TokenAuth(
                token=SecretValue(token) if token and not token_file else None,
                token_file=Path(token_file) if token_file else None,
            )
        else:
            raise SecretsError(f"STELLA_VAULT_AUTH is {method!r}; use kubernetes, approle or token")
        verify: bool | str = e.get("STELLA_VAULT_CACERT") or e.get("VAULT_CACERT") or True
        if e.get("STELLA_VAULT_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
            verify = False
        return cls(
            addr=addr,
            auth=auth,
            namespace=e.get("STELLA_VAULT_NAMESPACE") or None,
            verify=verify,
            timeout=float(e.get("STELLA_VAULT_TIMEOUT", "5")),
            kv_version=int(e.get("STELLA_VAULT_KV_VERSION", "2")),
        )


@dataclass
class _Lease:
    expires_at: float | None  # None: the token does not expire (a root token, local runs)
    ttl: float
    renewable: bool
    owned: bool  # we logged in for it, so we revoke it on close()


def _read_file(path: Path, what: str) -> str:
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise VaultAuthFailed(
            f"cannot read the {what} file {path} ({err.strerror}); mount it into the pod "
            "or fix STELLA_VAULT_* settings"
        ) from None
    if not text:
        raise VaultAuthFailed(f"the {what} file {path} is empty")
    return text


class VaultClient:
    def __init__(
        self,
        settings: VaultSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._client = hvac.Client(
            url=settings.addr,
            timeout=settings.timeout,
            verify=settings.verify,
            namespace=settings.namespace,
            session=session,
        )
        self._lock = threading.RLock()
        self._lease: _Lease | None = None
        self.breaker = CircuitBreaker(f"vault {settings.addr}", settings.breaker, clock=clock)
        #: counters for metrics and tests: logins and renewals performed
        self.logins = 0
        self.renewals = 0

    # ---- public API -------------------------------------------------------------------

    def read(self, ref: VaultRef | str, *, field_name: str = "reference") -> SecretValue:
        """The value of one key of a KV secret. Raises a :class:`SecretsError` subclass."""
        vref = ref if isinstance(ref, VaultRef) else parse_vault_ref(ref, field_name)
        data = self._call(lambda: self._read_kv(vref))
        return self._pick(vref, vref.key, data)

    def read_keys(self, ref: VaultRef | str, *keys: str) -> dict[str, SecretValue]:
        """Several keys of the secret ``ref`` points at (its own key first), in one read."""
        vref = ref if isinstance(ref, VaultRef) else parse_vault_ref(ref)
        data = self._call(lambda: self._read_kv(vref))
        return {k: self._pick(vref, k, data) for k in (vref.key, *keys)}

    async def aread(self, ref: VaultRef | str, *, field_name: str = "reference") -> SecretValue:
        """:meth:`read` from asyncio code, in a worker thread (hvac is blocking)."""
        return await asyncio.to_thread(self.read, ref, field_name=field_name)

    async def aread_keys(self, ref: VaultRef | str, *keys: str) -> dict[str, SecretValue]:
        return await asyncio.to_thread(self.read_keys, ref, *keys)

    def call(self, fn: Callable[[hvac.Client], T]) -> T:
        """Run ``fn`` with the authenticated hvac client, through login/renewal and the breaker.

        For other Vault APIs (transit signing): errors map as for :meth:`read` (network and
        5xx -> :class:`VaultUnavailable`, 403 after one fresh login -> :class:`VaultAuthFailed`,
        :class:`hvac.exceptions.InvalidPath` -> :class:`SecretNotFound`).
        """

        def run() -> T:
            try:
                return fn(self._client)
            except hvac.exceptions.InvalidPath:
                raise SecretNotFound("Vault has no such path; check the mount and name") from None

        return self._call(run)

    async def acall(self, fn: Callable[[hvac.Client], T]) -> T:
        return await asyncio.to_thread(self.call, fn)

    def check(self) -> None:
        """Log in (or renew) and return; raises like :meth:`read`. For readiness probes."""
        self._call(lambda: None)

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    def close(self) -> None:
        """Revoke a token this client logged in for (best effort) and close the session."""
        with self._lock:
            lease, self._lease = self._lease, None
            if lease is not None and lease.owned:
                try:
                    self._client.auth.token.revoke_self()
                except Exception:  # revocation is hygiene; the TTL bounds the token anyway
                    log.debug("revoke-self failed", exc_info=False)
            self._client.token = None
            self._client.adapter.close()

    # ---- the guarded call -------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        if not self.breaker.allow():
            wait = self.breaker.retry_after()
            raise VaultUnavailable(
                f"Vault at {self.settings.addr} is failing; not trying again for {wait:.0f}s "
                "(circuit breaker open). Nothing that needs a secret proceeds until it answers; "
                "check the Vault server and the network path to it",
                retry_after=max(wait, 1.0),
            )
        try:
            self._ensure_token()
            try:
                result = fn()
            except hvac.exceptions.Forbidden:
                # The token may have been revoked or expired early: log in once more.
                log.info("Vault refused the token; logging in again")
                self._relogin()
                result = fn()
        except _NETWORK as err:
            self.breaker.record_failure()
            raise VaultUnavailable(
                f"cannot reach Vault at {self.settings.addr} ({type(err).__name__}); "
                "failing closed. Check that Vault is running and reachable from the operator",
                retry_after=max(self.breaker.retry_after(), 1.0),
            ) from None
        except _TRANSIENT_HVAC as err:
            self.breaker.record_failure()
            raise VaultUnavailable(
                f"Vault at {self.settings.addr} answered {type(err).__name__} (sealed, "
                "overloaded or failing); failing closed until it recovers",
                retry_after=max(self.breaker.retry_after(), 1.0),
            ) from None
        except hvac.exceptions.Forbidden:
            self.breaker.record_success()  # Vault answered: it is up
            raise VaultAuthFailed(
                f"Vault denied access ({self.settings.auth.describe()}); grant the operator's "
                "policy read on the path, or fix its role",
                retry_after=30.0,
            ) from None
        except SecretsError:
            self.breaker.record_success()
            raise
        except hvac.exceptions.VaultError as err:
            self.breaker.record_success()
            raise SecretsError(
                f"Vault rejected the request ({type(err).__name__}); check the reference and "
                "the mount type"
            ) from None
        except BaseException:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return result

    # ---- tokens -----------------------------------------------------------------------

    def _ensure_token(self) -> None:
        with self._lock:
            lease = self._lease
            if lease is None:
                self._login()
                return
            if lease.expires_at is None:
                return
            left = lease.expires_at - self._clock()
            if left > lease.ttl * self.settings.renew_margin:
                return
            if lease.renewable and left > 0 and self._renew(lease):
                return
            self._login()

    def _relogin(self) -> None:
        with self._lock:
            self._lease = None
            self._login()

    def _renew(self, lease: _Lease) -> bool:
        """Renew the token; False when that is refused or would not extend it enough."""
        try:
            resp = self._client.auth.token.renew_self()
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
            return False
        auth = resp.get("auth") or {}
        ttl = float(auth.get("lease_duration") or 0)
        self.renewals += 1
        if ttl <= lease.ttl * self.settings.renew_margin:
            return False  # near its max TTL: a fresh login gives a full TTL
        self._lease = _Lease(
            expires_at=self._clock() + ttl,
            ttl=ttl,
            renewable=bool(auth.get("renewable", lease.renewable)),
            owned=lease.owned,
        )
        log.debug("renewed the Vault token for %.0fs", ttl)
        return True

    def _login(self) -> None:
        method = self.settings.auth
        if isinstance(method, TokenAuth):
            token = (
                _read_file(method.token_file, "Vault token")
                if method.token_file
                else (method.token.reveal() if method.token else "")
            )
            if not token:
                raise VaultAuthFailed("no Vault token configured; set STELLA_VAULT_TOKEN_FILE")
            self._client.token = token
            try:
                data = self._client.auth.token.lookup_self().get("data") or {}
            except hvac.exceptions.Forbidden:
                self._client.token = None
                raise VaultAuthFailed(
                    "the configured Vault token is invalid or expired; issue a new one "
                    "(bao token create -policy=stella-operator -ttl=1h) and update the token file"
                ) from None
            ttl = float(data.get("ttl") or 0)
            self._lease = _Lease(
                expires_at=self._clock() + ttl if ttl > 0 else None,
                ttl=ttl,
                renewable=bool(data.get("renewable")),
                owned=False,
            )
        else:
            try:
                if isinstance(method, AppRoleAuth):
                    resp = self._client.auth.approle.login(
                        role_id=method.role_id,
                        secret_id=_read_file(method.secret_id_file, "AppRole secret id"),
                        mount_point=method.mount,
                    )
                else:
                    resp = self._client.auth.kubernetes.login(
                        role=method.role,
                        jwt=_read_file(method.jwt_file, "service account token"),
                        mount_point=method.mount,
                    )
            except (
                hvac.exceptions.Forbidden,
                hvac.exceptions.InvalidRequest,
                hvac.exceptions.Unauthorized,
                hvac.exceptions.InvalidPath,
            ) as err:
                raise VaultAuthFailed(
                    f"Vault login failed ({method.describe()}: {type(err).__name__}); check "
                    "the role, its bound service account or secret id, and the auth mount"
                ) from None
            auth = resp.get("auth") or {}
            self._client.token = auth.get("client_token")
            ttl = float(auth.get("lease_duration") or 0)
            self._lease = _Lease(
                expires_at=self._clock() + ttl if ttl > 0 else None,
                ttl=ttl,
                renewable=bool(auth.get("renewable")),
                owned=True,
            )
        self.logins += 1
        log.info("logged in to Vault (%s), token ttl %.0fs", method.describe(), self._lease.ttl)

    # ---- KV ---------------------------------------------------------------------------

    def _read_kv(self, ref: VaultRef) -> dict[str, Any]:
        kv = self._client.secrets.kv
        try:
            if self.settings.kv_version == 1:
                resp = kv.v1.read_secret(path=ref.path, mount_point=ref.mount)
            else:
                resp = kv.v2.read_secret_version(
                    path=ref.path, mount_point=ref.mount, raise_on_deleted_version=True
                )
        except hvac.exceptions.InvalidPath:
            raise SecretNotFound(
                f"Vault holds no secret at {ref.kv_path}; store it with "
                f"`bao kv put {ref.kv_path} {ref.key}=...` (KV v{self.settings.kv_version} "
                f"mount '{ref.mount}')"
            ) from None
        return _kv_payload(resp, self.settings.kv_version)

    @staticmethod
    def _pick(ref: VaultRef, key: str, data: dict[str, Any]) -> SecretValue:
        if key not in data:
            names = ", ".join(sorted(data)) or "none"
            raise SecretNotFound(
                f"the Vault secret {ref.kv_path} has no key '{key}' (its keys: {names}); add it "
                f"with `bao kv patch {ref.kv_path} {key}=...`"
            )
        value = data[key]
        if not isinstance(value, str):
            raise SecretNotFound(
                f"the key '{key}' of Vault secret {ref.kv_path} holds a {type(value).__name__}, "
                "not a string"
            )
        return SecretValue(value)


def _kv_payload(resp: Any, kv_version: int) -> dict[str, Any]:
    """The key/value map of a KV read, with or without hvac's ``data`` wrappers."""
    if not isinstance(resp, dict):
        raise SecretsError("Vault returned an unexpected response to a KV read")
    body: Any = resp.get("data", resp) if "data" in resp else resp
    if kv_version == 2 and isinstance(body, dict) and "metadata" in body and "data" in body:
        body = body["data"]
    if body is None:  # a soft-deleted version with raise_on_deleted_version=False
        return {}
    if not isinstance(body, dict):
        raise SecretsError("Vault returned an unexpected response to a KV read")
    return body
