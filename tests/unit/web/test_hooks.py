"""The webhook gateway's checks: size, headers, timestamp window, signature, nonce, rate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stella.secrets.value import SecretValue
from stella.web.hooks import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadEvent,
    Gate,
    Limits,
    Push,
    Refusal,
    parse_distribution,
    parse_generic,
    sign,
)

SECRET = SecretValue("s3cret-hmac-key")
NOW = 1_800_000_000.0
BODY = json.dumps({"version": "1.4.2", "components": [{"name": "web", "image": "r/x:1"}]}).encode()


def headers(
    body: bytes = BODY, ts: float = NOW, nonce: str = "nonce-0001", secret: SecretValue = SECRET
) -> dict[str, str]:
    stamp = str(int(ts))
    return {
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(secret, stamp, nonce, body),
    }


def test_a_signed_fresh_delivery_is_accepted() -> None:
    verdict = Gate().check("ci", SECRET, headers(), BODY, NOW)
    assert verdict.accepted and verdict.status == 202 and not verdict.signal


@pytest.mark.parametrize(
    ("mutate", "refusal", "status"),
    [
        (lambda h, b: (h, b + b" " * 70_000), Refusal.TOO_LARGE, 413),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != NONCE_HEADER}, b),
            Refusal.MALFORMED,
            400,
        ),
        (lambda h, b: ({**h, NONCE_HEADER: "short"}, b), Refusal.MALFORMED, 400),
        (lambda h, b: (headers(ts=NOW - 301), b), Refusal.STALE, 401),
        (lambda h, b: (headers(ts=NOW + 301), b), Refusal.STALE, 401),
        (lambda h, b: (h, b.replace(b"1.4.2", b"1.4.3")), Refusal.BAD_SIGNATURE, 401),
        (lambda h, b: (headers(secret=SecretValue("other")), b), Refusal.BAD_SIGNATURE, 401),
        (lambda h, b: ({**h, NONCE_HEADER: "nonce-0002"}, b), Refusal.BAD_SIGNATURE, 401),
    ],
)
def test_each_bad_delivery_is_refused_with_its_reason(mutate, refusal, status) -> None:  # type: ignore[no-untyped-def]
    h, b = mutate(headers(), BODY)
    verdict = Gate().check("ci", SECRET, h, b, NOW)
    assert not verdict.accepted and verdict.refusal is refusal and verdict.status == status
    assert verdict.message


def test_a_replayed_delivery_is_refused_and_is_a_signal() -> None:
    gate = Gate()
    assert gate.check("ci", SECRET, headers(), BODY, NOW).accepted
    again = gate.check("ci", SECRET, headers(), BODY, NOW + 10)
    assert again.refusal is Refusal.REPLAYED and again.status == 409 and again.signal
    # The same nonce for another receiver is that receiver's own.
    assert gate.check("registry", SECRET, headers(), BODY, NOW).accepted


def test_an_unsigned_delivery_cannot_burn_a_nonce() -> None:
    gate = Gate()
    forged = {**headers(), SIGNATURE_HEADER: "sha256=" + "0" * 64}
    assert gate.check("ci", SECRET, forged, BODY, NOW).refusal is Refusal.BAD_SIGNATURE
    assert gate.check("ci", SECRET, headers(), BODY, NOW).accepted


def test_a_flood_of_signed_deliveries_is_rate_limited_per_receiver() -> None:
    gate = Gate(Limits(rate=1.0, burst=3))
    verdicts = [
        gate.check("ci", SECRET, headers(nonce=f"nonce-{i:04d}"), BODY, NOW) for i in range(5)
    ]
    assert [v.accepted for v in verdicts] == [True, True, True, False, False]
    assert verdicts[3].refusal is Refusal.RATE_LIMITED and verdicts[3].status == 429
    assert verdicts[3].retry_after > 0
    assert gate.check("other", SECRET, headers(nonce="nonce-9999"), BODY, NOW).accepted


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=len(BODY) - 1), st.integers(min_value=1, max_value=255))
def test_any_changed_byte_breaks_the_signature(position: int, flip: int) -> None:
    changed = bytearray(BODY)
    changed[position] ^= flip
    verdict = Gate().check("ci", SECRET, headers(), bytes(changed), NOW)
    assert verdict.refusal is Refusal.BAD_SIGNATURE


def test_generic_events_parse_and_bad_ones_say_what_is_missing() -> None:
    asked = parse_generic(BODY)
    assert asked.version == "1.4.2" and asked.images == {"web": "r/x:1"}
    for bad, words in [
        (b"nope", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"version": "1"}', "components"),
        (b'{"version": "1", "components": []}', "at least one"),
        (b'{"version": "1", "components": [{"name": "web"}]}', 'needs "image"'),
    ]:
        with pytest.raises(BadEvent, match=words):
            parse_generic(bad)


def test_registry_notifications_yield_manifest_pushes_only() -> None:
    digest = "sha256:" + "ab" * 32
    envelope: dict[str, Any] = {
        "events": [
            {
                "id": "event-0001",
                "timestamp": "2027-01-15T08:00:00.123456789Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "repository": "shop/web",
                    "digest": digest,
                    "tag": "1.4.2",
                },
                "request": {"host": "registry.example.com"},
            },
            {"id": "e2", "action": "pull", "target": {}, "request": {}},
            {
                "id": "e3",
                "action": "push",
                "target": {"mediaType": "application/octet-stream", "repository": "shop/web"},
                "request": {"host": "registry.example.com"},
            },
        ]
    }
    [push] = parse_distribution(json.dumps(envelope).encode())
    assert push.repository == "registry.example.com/shop/web"
    assert push.digest == digest and push.tag == "1.4.2" and push.id == "event-0001"
    assert push.at == 1_800_000_000.123456
    envelope["events"][0]["target"]["digest"] = "sha256:short"
    with pytest.raises(BadEvent, match="not a sha256 digest"):
        parse_distribution(json.dumps(envelope).encode())


def test_the_release_asked_for_is_pinned_and_targets_the_receivers_environments() -> None:
    from stella.models.receiver import ReceiverSpec
    from stella.web.gateway import release_body
    from stella.web.hooks import Requested

    spec = ReceiverSpec.model_validate(
        {
            "secret": "vault:secret/data/hooks/ci#hmac",
            "serviceAccountName": "stella-receiver-ci",
            "environments": ["dev", "staging"],
            "components": [
                {
                    "name": "web",
                    "repository": "registry.example.com/shop/web",
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        }
    )
    pinned = "registry.example.com/shop/web@sha256:" + "ab" * 32
    body = release_body("ci", spec, Requested("1.4.2+Build.7", {"web": "x"}), {"web": pinned})
    assert body["metadata"]["name"] == "ci-1-4-2-build-7"
    assert body["metadata"]["labels"] == {"stella.io/receiver": "ci"}
    assert body["spec"]["environments"] == ["dev", "staging"]
    [component] = body["spec"]["components"]
    assert component["image"] == pinned and component["workload"]["kind"] == "Deployment"
    assert "annotations" not in body["metadata"]  # no identity of its own: admission stamps it


def _push(event_id: str, at: float) -> Push:
    return Push(event_id, "registry.example.com/shop/web", "sha256:" + "ab" * 32, "1.4.2", at)


def test_a_registry_delivery_needs_the_key_as_bearer_and_fresh_new_events() -> None:
    gate = Gate(Limits(rate=1.0, burst=2))
    ok = gate.check_bearer("reg", SECRET, {"Authorization": f"Bearer {SECRET.reveal()}"}, b"{}")
    assert ok.accepted
    wrong = gate.check_bearer("reg", SECRET, {"Authorization": "Bearer nope"}, b"{}")
    assert wrong.refusal is Refusal.BAD_SIGNATURE and wrong.signal
    assert gate.check_bearer("reg", SECRET, {}, b"{}").refusal is Refusal.BAD_SIGNATURE
    fresh, verdict = gate.fresh("reg", [_push("event-0001", NOW)], NOW)
    assert verdict.accepted and [p.id for p in fresh] == ["event-0001"]
    again, replay = gate.fresh("reg", [_push("event-0001", NOW)], NOW + 1)
    assert again == [] and replay.refusal is Refusal.REPLAYED and replay.signal
    old, stale = gate.fresh("reg", [_push("event-0002", NOW - 3600)], NOW)
    assert old == [] and stale.refusal is Refusal.STALE
    none, nothing = gate.fresh("reg", [], NOW)  # a pull-only delivery: nothing to judge
    assert none == [] and nothing.accepted


def test_a_delivery_that_took_no_effect_gives_its_nonces_back_for_the_retry() -> None:
    gate = Gate(Limits(rate=1.0, burst=5))
    signed = gate.check("ci", SECRET, headers(nonce="nonce-retry1"), BODY, NOW)
    assert signed.accepted and signed.nonces == ("nonce-retry1",)
    gate.forget("ci", signed)  # e.g. the Release create was refused
    assert gate.check("ci", SECRET, headers(nonce="nonce-retry1"), BODY, NOW + 1).accepted
    replay = gate.check("ci", SECRET, headers(nonce="nonce-retry1"), BODY, NOW + 2)
    assert replay.refusal is Refusal.REPLAYED  # kept once the delivery took effect
    _, verdict = gate.fresh("reg", [_push("event-0001", NOW), _push("event-0002", NOW)], NOW)
    assert verdict.nonces == ("event-0001", "event-0002")
    gate.forget("reg", verdict)
    again, retried = gate.fresh("reg", [_push("event-0001", NOW)], NOW + 1)
    assert retried.accepted and [p.id for p in again] == ["event-0001"]


def test_a_rate_limited_delivery_may_come_again_with_its_nonce() -> None:
    clock = [100.0]
    gate = Gate(Limits(rate=0.5, burst=1), clock=lambda: clock[0])
    assert gate.check("ci", SECRET, headers(nonce="nonce-first"), BODY, NOW).accepted
    limited = gate.check("ci", SECRET, headers(nonce="nonce-later"), BODY, NOW)
    assert limited.refusal is Refusal.RATE_LIMITED and limited.retry_after == pytest.approx(2.0)
    clock[0] += limited.retry_after
    assert gate.check("ci", SECRET, headers(nonce="nonce-later"), BODY, NOW + 2).accepted
