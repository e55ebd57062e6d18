"""Plugin admission as pure rules: what installs a plugin, who lifts a quarantine."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from tests import plugin_support as ps

from stella.admission.base import (
    FORGED_IDENTITY,
    PLUGIN_PUBLISHER_KEY,
    PLUGIN_REENABLE,
    PLUGIN_REFUSED,
    UNAUTHORIZED_ACTION,
    UNTRUSTED_PLUGIN,
    Request,
)
from stella.admission.plugin import validate_plugin, validate_publisher
from stella.plugins.reenable import REENABLE_ANNOTATION, Reenable, quarantined
from stella.policy.identity import Identity

FRANK = Identity("frank", "u-frank", frozenset({"platform-engineers"}))
SINCE = "2026-11-30T06:00:00Z"


def check(req: Request, trust: Any, may: Any, held: dict[str, str] | None = None) -> Any:
    """validate_plugin with no other Plugin quarantined unless `held` says so."""
    return validate_plugin(req, trust, may, {} if held is None else held)


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> ps.Publisher:
    return ps.Publisher(tmp_path_factory.mktemp("keys"))


def _plugin(publisher: ps.Publisher, **meta: Any) -> dict[str, Any]:
    module = ps.build(ps.LOOP)
    return {
        "metadata": {"name": "smoke-test", **meta},
        "spec": {
            "manifest": publisher.sign(ps.manifest_for(module)),
            "module": {"file": "/var/lib/stella/plugins/smoke.wasm"},
        },
    }


def _req(op: str, obj: Any, old: Any = None, user: Identity = FRANK) -> Request:
    return Request(op, "Plugin", None, "smoke-test", user, obj, old)  # type: ignore[arg-type]


def test_signed_trusted_plugin_is_admitted(publisher: ps.Publisher) -> None:
    v = check(_req("CREATE", _plugin(publisher)), {"platform": publisher.trust}, lambda: None)
    assert v.allowed, v.message


def test_untrusted_or_tampered_is_refused_and_signalled(publisher: ps.Publisher) -> None:
    body = _plugin(publisher)
    v = check(_req("CREATE", body), {}, lambda: None)
    assert (v.allowed, v.rule, v.security_signal) == (False, PLUGIN_REFUSED, UNTRUSTED_PLUGIN)
    doc = json.loads(base64.b64decode(body["spec"]["manifest"]["payload"]))
    doc["limits"]["fuel"] = 10**10
    body["spec"]["manifest"]["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
    v = check(_req("UPDATE", body, _plugin(publisher)), {"platform": publisher.trust}, lambda: None)
    assert (v.rule, v.security_signal) == (PLUGIN_REFUSED, UNTRUSTED_PLUGIN)
    assert "altered after signing" in v.message


def test_publishers_unreadable_fails_closed(publisher: ps.Publisher) -> None:
    v = check(_req("CREATE", _plugin(publisher)), None, lambda: True)
    assert not v.allowed and "retry" in v.message


def test_plugin_named_otherwise_than_its_manifest_is_refused(publisher: ps.Publisher) -> None:
    body = _plugin(publisher)
    req = Request("CREATE", "Plugin", None, "other", FRANK, body, None)
    v = check(req, {"platform": publisher.trust}, lambda: True)
    assert not v.allowed and "name the Plugin smoke-test" in v.message


def _quarantined(publisher: ps.Publisher) -> dict[str, Any]:
    return {
        **_plugin(publisher),
        "status": {"quarantine": {"reason": "CapabilityViolation", "since": SINCE}},
    }


def _with_reenable(
    publisher: ps.Publisher, by: Identity, since: str = SINCE, reason: str = "INC-1"
) -> dict[str, Any]:
    ann = Reenable(by, since, reason).wire()
    return _plugin(publisher, annotations={REENABLE_ANNOTATION: ann})


@pytest.mark.parametrize(
    ("by", "since", "reason", "may", "rule", "signal", "words"),
    [
        (FRANK, SINCE, "INC-1", True, None, None, ""),
        (
            Identity("bob", "", frozenset()),
            SINCE,
            "INC-1",
            True,
            PLUGIN_REENABLE,
            FORGED_IDENTITY,
            "must name you",
        ),
        (
            FRANK,
            "2020-01-01T00:00:00Z",
            "INC-1",
            True,
            PLUGIN_REENABLE,
            None,
            "no quarantine since",
        ),
        (FRANK, SINCE, " ", True, PLUGIN_REENABLE, None, "say why"),
        (FRANK, SINCE, "INC-1", False, PLUGIN_REENABLE, UNAUTHORIZED_ACTION, "`reenable` verb"),
        (FRANK, SINCE, "INC-1", None, PLUGIN_REENABLE, None, "SubjectAccessReview failed"),
    ],
)
def test_reenable(
    publisher: ps.Publisher,
    by: Identity,
    since: str,
    reason: str,
    may: bool | None,
    rule: str | None,
    signal: str | None,
    words: str,
) -> None:
    old = _quarantined(publisher)
    new = {**_with_reenable(publisher, by, since, reason), "status": old["status"]}
    v = check(_req("UPDATE", new, old), {"platform": publisher.trust}, lambda: may)
    if rule is None:
        assert v.allowed, v.message
        assert not quarantined(new)  # the engine runs it again
    else:
        assert (v.allowed, v.rule, v.security_signal) == (False, rule, signal)
        assert words in v.message


def test_reenable_annotation_at_create_is_refused(publisher: ps.Publisher) -> None:
    v = check(
        _req("CREATE", _with_reenable(publisher, FRANK)),
        {"platform": publisher.trust},
        lambda: True,
    )
    assert (v.rule, v.security_signal) == (PLUGIN_REENABLE, FORGED_IDENTITY)


def test_a_later_quarantine_is_never_lifted_by_an_earlier_reenable(publisher: ps.Publisher) -> None:
    body = {
        **_with_reenable(publisher, FRANK),
        "status": {"quarantine": {"since": "2026-12-01T00:00:00Z"}},
    }
    assert quarantined(body)


def test_deleting_a_quarantined_plugin_needs_the_verb(publisher: ps.Publisher) -> None:
    old = _quarantined(publisher)
    assert not check(_req("DELETE", None, old), {}, lambda: False).allowed
    assert check(_req("DELETE", None, old), {}, lambda: True).allowed
    assert check(_req("DELETE", None, _plugin(publisher)), {}, lambda: False).allowed


def test_publisher_keys_must_be_p256_public_keys(publisher: ps.Publisher) -> None:
    ((key_id, pem),) = publisher.trust.items()

    def req(keys: list[dict[str, str]]) -> Request:
        return Request(
            "CREATE", "PluginPublisher", None, "p", FRANK, {"spec": {"keys": keys}}, None
        )

    assert validate_publisher(req([{"keyId": key_id, "publicKey": pem}])).allowed
    private = publisher.signer.path.read_text()
    v = validate_publisher(req([{"keyId": "k", "publicKey": private}]))
    assert (v.allowed, v.rule) == (False, PLUGIN_PUBLISHER_KEY)
    assert "PRIVATE" not in v.message and "a private key" in v.message
    v = validate_publisher(
        req([{"keyId": "k", "publicKey": pem}, {"keyId": "k", "publicKey": pem}])
    )
    assert "once" in v.message


def test_a_module_quarantined_under_another_name_is_refused(publisher: ps.Publisher) -> None:
    body = _plugin(publisher)
    digest = ps.manifest_for(ps.build(ps.LOOP)).module.digest
    v = check(_req("CREATE", body), {"platform": publisher.trust}, lambda: True, {digest: "evil"})
    assert (v.allowed, v.rule, v.security_signal) == (False, PLUGIN_REFUSED, UNTRUSTED_PLUGIN)
    assert "quarantined as Plugin evil" in v.message
    # The Plugins could not be listed: refused, nothing changed.
    v = validate_plugin(_req("CREATE", body), {"platform": publisher.trust}, lambda: True, None)
    assert not v.allowed and "retry" in v.message
