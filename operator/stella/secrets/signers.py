"""Signers for evidence: ECDSA P-256 over SHA-256, DER signatures, each naming its key id.

* :class:`VaultTransitSigner` — the private key lives in Vault/OpenBao transit and never
  leaves it; the key id is ``<mount>/<name>:v<version>``. Rotation adds a version; every
  version's public key stays readable, so old packets stay verifiable.
* :class:`LocalKeySigner` — a PEM file (PKCS#8, mode 0600), generated when absent: the
  embedded default. The key id is ``local:<first 16 hex of sha256(SPKI DER)>``. Rotation
  keeps the retired public keys next to the key file.

Both fail closed with the typed errors of :mod:`stella.secrets.errors`; nothing here ever
logs or returns private material or tokens.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import hvac.exceptions as hx
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.secrets.breaker import CircuitBreaker
from stella.secrets.errors import SecretNotFound, SecretsError, VaultAuthFailed, VaultUnavailable


@runtime_checkable
class Signer(Protocol):
    """What the evidence recorder needs from a signing key."""

    @property
    def key_id(self) -> str:
        """The id of the key the next :meth:`sign` uses (goes into the DSSE ``keyid``)."""
        ...

    def sign(self, payload: bytes) -> bytes:
        """ECDSA P-256 / SHA-256 signature over ``payload``, DER-encoded."""
        ...

    def public_key_pem(self) -> str:
        """PEM SubjectPublicKeyInfo of the current key."""
        ...

    def public_keys(self) -> dict[str, str]:
        """Every key id this signer has signed with (current and retired) -> PEM."""
        ...


class KeyFileError(SecretsError):
    """The local signing key file is unreadable, malformed or too widely readable."""

    reason = "EvidenceKeyFileInvalid"


def _pem_of(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def local_key_id(public_pem: str) -> str:
    key = serialization.load_pem_public_key(public_pem.encode())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "local:" + hashlib.sha256(der).hexdigest()[:16]


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey, *, exclusive: bool) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalKeySigner:
    """A P-256 private key in a PEM file; generated (0600) when absent."""

    def __init__(self, path: str | os.PathLike[str], *, generate: bool = True) -> None:
        self.path = Path(path)
        self.retired_dir = self.path.with_name(self.path.name + ".retired")
        if not self.path.exists():
            if not generate:
                raise KeyFileError(f"evidence signing key {self.path} does not exist")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Two processes racing to create the key: one wins, the other loads it.
            with contextlib.suppress(FileExistsError):
                _write_private(self.path, ec.generate_private_key(ec.SECP256R1()), exclusive=True)
        self._load()

    def _load(self) -> None:
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXO):
            raise KeyFileError(
                f"evidence signing key {self.path} is accessible to other users "
                f"(mode {stat.S_IMODE(mode):o}); chmod 600 it"
            )
        try:
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise KeyFileError(f"cannot load evidence signing key {self.path}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise KeyFileError(f"evidence signing key {self.path} is not an ECDSA P-256 key")
        self._key = key
        self._pem = _pem_of(key.public_key())
        self._key_id = local_key_id(self._pem)

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> str:
        return self._pem

    def public_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        if self.retired_dir.is_dir():
            for pub in sorted(self.retired_dir.glob("*.pem")):
                pem = pub.read_text()
                keys[local_key_id(pem)] = pem
        keys[self._key_id] = self._pem
        return keys

    def rotate(self) -> str:
        """Retire the current key (its public half is kept) and start a new one."""
        self.retired_dir.mkdir(mode=0o755, exist_ok=True)
        name = self._key_id.replace(":", "-") + ".pem"
        (self.retired_dir / name).write_text(self._pem)
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        _write_private(tmp, ec.generate_private_key(ec.SECP256R1()), exclusive=True)
        tmp.replace(self.path)
        self._load()
        return self._key_id


# --- Vault / OpenBao transit ---------------------------------------------------------


def _data(response: Any) -> dict[str, Any]:
    """hvac 2.x returns some reads with the ``data`` wrapper and some without."""
    if isinstance(response, dict):
        inner = response.get("data")
        return inner if isinstance(inner, dict) else response
    raise VaultUnavailable("Vault returned an unexpected response")


def _vault_error(exc: Exception, what: str) -> SecretsError:
    if isinstance(exc, hx.Forbidden | hx.Unauthorized):
        return VaultAuthFailed(f"Vault refused to {what}: permission denied")
    if isinstance(exc, hx.InvalidPath):
        return SecretNotFound(f"Vault has no transit key to {what}; run `stella evidence keys`")
    if isinstance(exc, hx.VaultDown):
        return VaultUnavailable(f"cannot {what}: Vault is sealed or down", retry_after=5)
    if isinstance(exc, requests.RequestException):
        return VaultUnavailable(f"cannot {what}: Vault is unreachable", retry_after=5)
    return VaultUnavailable(f"cannot {what}: Vault error {type(exc).__name__}", retry_after=5)


def ensure_transit_key(client: Any, key_name: str, mount_point: str = "transit") -> None:
    """Enable the transit engine (if absent) and create an ecdsa-p256 key (if absent).

    An installation step, run with a token allowed to do it; the operator's own token only
    needs ``update`` on ``<mount>/sign/<name>`` and ``read`` on ``<mount>/keys/<name>``.
    """
    try:
        mounts = _data(client.sys.list_mounted_secrets_engines())
        if f"{mount_point}/" not in mounts:
            client.sys.enable_secrets_engine("transit", path=mount_point)
        client.secrets.transit.create_key(key_name, key_type="ecdsa-p256", mount_point=mount_point)
    except Exception as exc:
        raise _vault_error(exc, f"create transit key {mount_point}/{key_name}") from exc


class VaultTransitSigner:
    """Signs with a Vault/OpenBao transit ecdsa-p256 key; the private key never leaves Vault.

    The key version is pinned when the signer is built (or :meth:`refresh` ed), and every
    signature is requested for that version, so ``key_id`` always names the key that signed.
    """

    def __init__(
        self,
        client: Any,
        key_name: str = "stella-evidence",
        mount_point: str = "transit",
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.client = client
        self.key_name = key_name
        self.mount_point = mount_point
        self.breaker = breaker
        self._version = 0
        self._pems: dict[int, str] = {}
        self.refresh()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.breaker is not None and not self.breaker.allow():
            raise VaultUnavailable(
                f"cannot {what}: Vault circuit breaker is open",
                retry_after=self.breaker.retry_after(),
            )
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            err = _vault_error(exc, what)
            if self.breaker is not None and isinstance(err, VaultUnavailable):
                self.breaker.record_failure()
            raise err from exc
        if self.breaker is not None:
            self.breaker.record_success()
        return result

    def key_id_for(self, version: int) -> str:
        return f"{self.mount_point}/{self.key_name}:v{version}"

    def refresh(self) -> None:
        """Re-read the key: latest version and every version's public key."""
        data = _data(
            self._call(
                f"read transit key {self.mount_point}/{self.key_name}",
                self.client.secrets.transit.read_key,
                self.key_name,
                mount_point=self.mount_point,
            )
        )
        if data.get("type") != "ecdsa-p256":
            raise VaultAuthFailed(
                f"transit key {self.mount_point}/{self.key_name} is {data.get('type')!r}, "
                "evidence needs ecdsa-p256"
            )
        pems: dict[int, str] = {}
        for version, info in (data.get("keys") or {}).items():
            if isinstance(info, dict) and info.get("public_key"):
                pems[int(version)] = str(info["public_key"])
        self._pems = pems
        self._version = int(data.get("latest_version") or max(pems, default=0))
        if self._version not in pems:
            raise SecretNotFound(f"transit key {self.key_name} has no public key to publish")

    @property
    def version(self) -> int:
        return self._version

    @property
    def key_id(self) -> str:
        return self.key_id_for(self._version)

    def sign(self, payload: bytes) -> bytes:
        resp = self._call(
            f"sign with transit key {self.mount_point}/{self.key_name}",
            self.client.secrets.transit.sign_data,
            self.key_name,
            hash_input=base64.b64encode(payload).decode(),
            key_version=self._version,
            hash_algorithm="sha2-256",
            marshaling_algorithm="asn1",
            mount_point=self.mount_point,
        )
        signature = str(_data(resp).get("signature", ""))
        prefix = f"vault:v{self._version}:"
        if not signature.startswith(prefix):
            raise VaultUnavailable(
                f"transit returned a signature for another key version than v{self._version}"
            )
        return base64.b64decode(signature.removeprefix(prefix))

    def public_key_pem(self) -> str:
        return self._pems[self._version]

    def public_keys(self) -> dict[str, str]:
        return {self.key_id_for(v): pem for v, pem in sorted(self._pems.items())}

    def rotate(self) -> str:
        """Rotate the transit key (needs a token allowed to) and sign with the new version."""
        self._call(
            f"rotate transit key {self.mount_point}/{self.key_name}",
            self.client.secrets.transit.rotate_key,
            self.key_name,
            mount_point=self.mount_point,
        )
        self.refresh()
        return self.key_id
