"""Build the evidence pieces from settings: one place for the operator and the CLI.

log = open_log(settings.evidence_log)          # "postgresql://..." or "/var/lib/.../log.jsonl"
store = ConfigMapStore(api_client, settings.namespace)
signer = make_signer("vault", vault_client=hvac_client, key_name="stella-evidence")
recorder = Recorder(signer, log, store, operator_version=stella.__version__)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from stella.evidence.errors import MalformedPacket
from stella.evidence.log_jsonl import JsonlLog
from stella.evidence.log_postgres import PostgresLog
from stella.evidence.records import EvidenceLog
from stella.secrets.signers import LocalKeySigner, Signer, VaultTransitSigner


def open_log(url: str, *, fsync: bool = True) -> EvidenceLog:
    """``postgresql://user@host:port/db`` (password from PGPASSWORD or ~/.pgpass preferably)
    or a JSON-lines file: ``file:///path/log.jsonl`` or a plain path."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLog(url)
    if url.startswith("file://"):
        return JsonlLog(url.removeprefix("file://"), fsync=fsync)
    if url and "://" not in url:
        return JsonlLog(Path(url), fsync=fsync)
    raise MalformedPacket(
        "evidence log must be postgresql://... or a file path (file:///.../evidence.jsonl)"
    )


def make_signer(
    kind: Literal["vault", "local"],
    *,
    vault_client: Any = None,
    key_name: str = "stella-evidence",
    mount_point: str = "transit",
    key_path: str | Path | None = None,
) -> Signer:
    if kind == "vault":
        if vault_client is None:
            raise MalformedPacket("a Vault transit signer needs an hvac client")
        return VaultTransitSigner(vault_client, key_name, mount_point)
    if key_path is None:
        raise MalformedPacket("a local signer needs a key file path")
    return LocalKeySigner(key_path)
