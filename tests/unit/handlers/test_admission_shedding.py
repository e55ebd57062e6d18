"""Backpressure at the admission webhook (stella.admission.shedding): a review that waited
too long for a worker is answered 429 with retryAfterSeconds at once — before the API
server's deadline turns it into a 500 — and changes nothing."""

from __future__ import annotations

import time

from stella.admission import shedding
from stella.engine.view import ClusterView
from stella.handlers.admission import Admission
from stella.handlers.webhook import WebhookServer
from stella.settings import Settings


def test_the_budget_is_the_api_servers_timeout() -> None:
    assert shedding.budget("5s") == 5.0
    assert shedding.budget("2.5s") == 2.5
    assert shedding.budget(None) == shedding.DEFAULT_BUDGET
    assert shedding.budget("5m") == shedding.DEFAULT_BUDGET  # not what the API server sends
    assert shedding.budget("999s") == 30.0
    assert not shedding.too_late(2.4, 5.0) and shedding.too_late(2.6, 5.0)


def _server() -> WebhookServer:
    return WebhookServer(Admission(Settings()), ClusterView(), "127.0.0.1", 0, "-", "-", workers=1)


def test_a_review_that_waited_half_its_budget_is_shed_with_429() -> None:
    review = {"request": {"uid": "u-7", "kind": {"kind": "Release"}}}
    out = _server()._respond_in_time("validate-release", review, time.monotonic() - 3, 5.0)
    response = out["response"]
    assert response["uid"] == "u-7" and response["allowed"] is False
    assert response["status"]["code"] == 429
    assert response["status"]["details"]["retryAfterSeconds"] == shedding.RETRY_AFTER
    assert "nothing was changed" in response["status"]["message"]


def test_a_review_in_time_is_decided_as_usual() -> None:
    review = {"request": {"uid": "u-8", "resource": {"group": "evil.io", "resource": "x"}}}
    out = _server()._respond_in_time("validate-release", review, time.monotonic(), 5.0)
    assert out["response"]["status"]["code"] == 400  # routed and refused, not shed
