"""Unit-test helpers for evidence: an in-memory signer, a clock and events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import ApprovalEvidence, PolicyEvidence, ReleaseRef

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


class MemorySigner:
    """A P-256 key in memory: a Signer for tests."""

    def __init__(self, key_id: str = "test:key-1") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._key_id = key_id
        self.calls = 0
        self.fail: Exception | None = None

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, payload: bytes) -> bytes:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self._key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def public_keys(self) -> dict[str, str]:
        return {self._key_id: self.public_key_pem()}


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


def promotion_event(
    env: str = "prod", n: int = 1, kind: str = "PromotionAuthorized"
) -> EvidenceEvent:
    return EvidenceEvent.model_validate(
        {
            "kind": kind,
            "eventId": f"uid-{n}/{env}/attempt-1/{kind}",
            "environment": env,
            "release": ReleaseRef(
                namespace="shop", name=f"shop-{n}", uid=f"uid-{n}", version=f"1.{n}.0"
            ),
            "images": [
                f"registry.example.com/shop/web@sha256:{DIGEST_A}",
                f"registry.example.com/shop/api:1.2@sha256:{DIGEST_B}",
            ],
            "actor": "system:serviceaccount:stella:operator",
            "approvals": [
                ApprovalEvidence(
                    approval="shop-1-prod-x7k2",
                    approver="alice@example.com",
                    groups=["release-approvers"],
                    decision="Approve",
                    at=datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
                    counted=True,
                )
            ],
            "policy": PolicyEvidence(
                inputs={"required": 1, "approverGroups": ["release-approvers"], "frozen": False},
                outcome="Allowed",
                reasons=["1 of 1 approvals", "no freeze window"],
            ),
        }
    )
