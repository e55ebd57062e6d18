"""Agent admission: the certificate fingerprint, when given, is a SHA-256 in lowercase hex."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from stella.admission._util import mapping, parse_model, schema_message, spec_of
from stella.admission.base import (
    AGENT_ENROLLMENT,
    AGENT_FINGERPRINT,
    SCHEMA,
    AdmissionPolicy,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.models.agent import AgentSpec
from stella.models.common import SHA256_HEX

_FINGERPRINT = re.compile(SHA256_HEX)
# Five minutes of slack for clocks.
MAX_ENROLLMENT = timedelta(hours=24, minutes=5)


def validate_agent(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation not in ("CREATE", "UPDATE"):
        return allow()
    raw_spec = spec_of(req.obj)
    fingerprint = mapping(raw_spec).get("certificateFingerprint")
    if fingerprint is not None and (
        not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint)
    ):
        return deny(
            AGENT_FINGERPRINT,
            "spec.certificateFingerprint must be the SHA-256 of the agent's certificate as 64 "
            "lowercase hex digits without colons (openssl x509 -noout -fingerprint -sha256 "
            "-in agent.crt | cut -d= -f2 | tr -d : | tr A-F a-f)",
        )
    parsed = parse_model(AgentSpec, raw_spec)
    if not isinstance(parsed, AgentSpec):
        return deny(SCHEMA, schema_message("Agent", parsed))
    # A registration token is a short-lived secret: a long-lived one is a standing way in.
    enrollment = parsed.enrollment
    if enrollment is not None:
        expires = enrollment.expires_at
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        if expires > datetime.now(UTC) + MAX_ENROLLMENT:
            return deny(
                AGENT_ENROLLMENT,
                "spec.enrollment.expiresAt is more than 24h ahead: a registration token must "
                "be short-lived; run `stella agent enroll NAME --expires 1h`",
            )
    return allow()
