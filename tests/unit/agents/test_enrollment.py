"""One-time registration tokens: only the hash is kept; good once, until expiry, from the
allowed networks; each refusal names its security signal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stella.agents import enrollment as e

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def agent(token_hash: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "enrollment": {
            "tokenSha256": token_hash,
            "expiresAt": (NOW + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        },
        "allowedNetworks": ["127.0.0.0/24", "10.1.0.0/16"],
        **extra.pop("spec", {}),
    }
    return {"metadata": {"name": "eu-1"}, "spec": spec, "status": extra.pop("status", {})}


def test_a_fresh_token_enrols_once_from_an_allowed_network() -> None:
    token, digest = e.new_token()
    assert token.startswith(e.TOKEN_PREFIX) and digest == e.token_hash(token)
    assert token not in digest
    assert e.check_token(agent(digest), token, "127.0.0.1", NOW).ok
    assert e.check_token(agent(digest), token, "10.1.200.3", NOW).ok


def test_refusals_name_their_signal() -> None:
    token, digest = e.new_token()
    other, _ = e.new_token()
    cases = [
        (agent(digest), other, "127.0.0.1", NOW, e.ENROLL_INVALID),
        (agent(digest), token, "127.0.0.1", NOW + timedelta(hours=2), e.ENROLL_EXPIRED),
        (
            agent(digest, status={"enrolledTokenSha256": digest}),
            token,
            "127.0.0.1",
            NOW,
            e.ENROLL_REUSED,
        ),
        (agent(digest), token, "127.0.1.1", NOW, e.NETWORK_REFUSED),
        (agent(digest), token, "not-an-address", NOW, e.NETWORK_REFUSED),
        (agent(digest, spec={"revoked": True}), token, "127.0.0.1", NOW, e.AGENT_REVOKED),
        (agent(""), token, "127.0.0.1", NOW, e.ENROLL_INVALID),
    ]
    for body, presented, source, now, signal in cases:
        decision = e.check_token(body, presented, source, now)
        assert not decision.ok and decision.signal == signal, (signal, decision)
        assert presented not in decision.message  # a token is never echoed


def test_a_token_without_expiry_is_refused() -> None:
    token, digest = e.new_token()
    body = agent(digest)
    del body["spec"]["enrollment"]["expiresAt"]
    assert e.check_token(body, token, "127.0.0.1", NOW).signal == e.ENROLL_EXPIRED


def test_no_networks_listed_means_any() -> None:
    token, digest = e.new_token()
    body = agent(digest, spec={"allowedNetworks": []})
    assert e.check_token(body, token, "192.0.2.7", NOW).ok
