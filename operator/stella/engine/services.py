"""The engine's collaborators, built once from settings: evidence, registry, Vault.

Each is a real client. Evidence is never optional: without a recorder there is no
authorization packet, and without one nothing is deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from stella import __version__
from stella.engine import evidence_startup
from stella.evidence.factory import make_signer, open_log
from stella.evidence.recorder import Recorder
from stella.evidence.store_configmap import ConfigMapStore
from stella.k8s.client import api_client
from stella.registry import RegistryClient
from stella.secrets import VaultClient, VaultSettings
from stella.settings import Settings

log = logging.getLogger("stella.engine")


@dataclass
class Services:
    recorder: Recorder
    registry: RegistryClient
    vault: VaultClient | None
    evidence_repair: asyncio.Task[list[str]] | None = None

    async def close(self) -> None:
        if self.evidence_repair is not None:
            self.evidence_repair.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.evidence_repair
        await self.registry.close()
        if self.vault is not None:
            self.vault.close()


class _ManagedHvac:
    """Hands the transit signer an hvac client whose token VaultClient keeps fresh."""

    def __init__(self, vault: VaultClient) -> None:
        self._vault = vault

    @property
    def secrets(self) -> object:
        return self._vault.call(lambda client: client).secrets


def _vault_from_env() -> VaultClient | None:
    if not (os.environ.get("STELLA_VAULT_ADDR") or os.environ.get("VAULT_ADDR")):
        return None
    return VaultClient(VaultSettings.from_env())


def build(settings: Settings) -> Services:
    """Wire the real collaborators. Call inside the operator's event loop."""
    vault = _vault_from_env()
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    if settings.evidence_signer == "vault":
        if vault is None:
            raise RuntimeError(
                "STELLA_EVIDENCE_SIGNER=vault needs Vault: set STELLA_VAULT_ADDR and an auth method"
            )
        signer = make_signer(
            "vault", vault_client=_ManagedHvac(vault), key_name=settings.evidence_transit_key
        )
    else:
        signer = make_signer("local", key_path=settings.evidence_key or state / "evidence-key.pem")
    evidence_log = open_log(settings.evidence_log or str(state / "evidence.jsonl"))
    recorder = Recorder(
        signer,
        evidence_log,
        ConfigMapStore(api_client(), settings.namespace),
        operator_version=__version__,
        operator_instance=os.environ.get("HOSTNAME") or None,
    )
    log.info(
        "evidence: signer %s, log %s, ConfigMaps in %s",
        signer.key_id,
        type(evidence_log).__name__,
        settings.namespace,
    )
    # Keys published before the engine runs (raises: kopf retries startup, nothing deploys);
    # lost ConfigMaps re-created from the log in the background. See evidence_startup.
    try:
        repair = evidence_startup.start(recorder)
    except Exception:
        evidence_log.close()
        if vault is not None:
            vault.close()
        raise
    return Services(
        recorder=recorder, registry=RegistryClient.from_env(), vault=vault, evidence_repair=repair
    )
