"""Every security signal the agent hub can raise is covered by one of the chart's alert
rules (a new signal without an alert fails here)."""

from __future__ import annotations

import re

from tests.unit.chart.test_chart import by_kind, rendered

from stella.agents import enrollment, hub, tokens

SIGNALS = {
    enrollment.ENROLL_INVALID,
    enrollment.ENROLL_EXPIRED,
    enrollment.ENROLL_REUSED,
    enrollment.NETWORK_REFUSED,
    enrollment.AGENT_REVOKED,
    tokens.REFRESH_REUSED,
    tokens.SESSION_OTHER_CERT,
    tokens.SESSION_TWO_ADDRESSES,
    hub.UNKNOWN_CERTIFICATE,
    hub.UNTRUSTED_CERTIFICATE,
    hub.CAPABILITY_MISMATCH,
    hub.FOREIGN_TASK,
    hub.CREDENTIALS_REPLAY,
}
# An expired registration token is an operational event (someone was slow), not an attack.
NOT_ALERTED = {enrollment.ENROLL_EXPIRED, tokens.SESSION_INVALID}


def _alert_patterns() -> list[str]:
    rule = by_kind(rendered("prometheusRule.enabled=true"), "PrometheusRule", "stella")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    return [m for e in exprs for m in re.findall(r'signal=~"([^"]+)"', e)]


def test_every_agent_signal_has_an_alert() -> None:
    patterns = _alert_patterns()
    for signal in SIGNALS - NOT_ALERTED:
        assert any(re.fullmatch(p, signal) for p in patterns), f"no alert for {signal}"
