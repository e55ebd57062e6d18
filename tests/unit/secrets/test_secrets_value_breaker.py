"""SecretValue masking and the circuit breaker's state machine (fake clock, no sleeping)."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from stella.secrets import (
    AppRoleAuth,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    KubernetesAuth,
    SecretsError,
    SecretValue,
    TokenAuth,
    VaultSettings,
)
from stella.secrets.vault import _kv_payload


def test_secret_value_never_renders(caplog: pytest.LogCaptureFixture) -> None:
    v = SecretValue("s3cr3t-canary")
    assert repr(v) == str(v) == f"{v}" == "SecretValue(***)"
    assert "%s" % v == "SecretValue(***)"  # noqa: UP031
    assert v.reveal() == "s3cr3t-canary"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("t").info("value %s %r", v, [v, {"k": v}])
    assert "s3cr3t" not in caplog.text
    with pytest.raises(TypeError):
        json.dumps(v)
    with pytest.raises(TypeError):
        pickle.dumps(v)
    assert v == SecretValue("s3cr3t-canary") and v != SecretValue("other")
    assert "s3cr3t" not in repr(TokenAuth(token=v))
    with pytest.raises(AttributeError):
        v.__dict__


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def breaker(**kw: float) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    policy = BreakerPolicy(
        failure_threshold=int(kw.get("threshold", 3)),
        base_backoff=kw.get("base", 1.0),
        max_backoff=kw.get("max", 8.0),
        jitter=0,
        trial_timeout=kw.get("trial", 30.0),
    )
    return CircuitBreaker("t", policy, clock=clock), clock


def state(b: CircuitBreaker) -> BreakerState:
    """b.state read afresh (mypy keeps an asserted attribute narrowed across calls)."""
    return b.state


def test_breaker_opens_after_threshold_and_half_opens_after_backoff() -> None:
    b, clock = breaker()
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    assert state(b) is BreakerState.OPEN and not b.allow()
    assert b.retry_after() == pytest.approx(1.0)
    clock.t += 1.0
    assert state(b) is BreakerState.HALF_OPEN
    assert b.allow()  # the one trial
    assert not b.allow()  # everyone else waits for it
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()


def test_breaker_backoff_doubles_up_to_max_and_resets_on_success() -> None:
    b, clock = breaker(threshold=1, base=1, max=4)
    waits = []
    for _ in range(5):
        b.allow()
        b.record_failure()
        waits.append(b.retry_after())
        clock.t += waits[-1]
    assert waits == [1, 2, 4, 4, 4]
    assert b.allow()
    b.record_success()
    b.record_failure()
    assert b.retry_after() == 1


def test_success_resets_the_failure_count() -> None:
    b, _ = breaker(threshold=2)
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_lost_trial_is_forgotten_after_trial_timeout() -> None:
    b, clock = breaker(threshold=1, trial=5)
    b.record_failure()
    clock.t += 1
    assert b.allow()
    assert not b.allow()
    clock.t += 6
    assert b.allow()


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def test_jitter_stays_within_bounds() -> None:
    for r in (0.0, 0.5, 0.999):
        clock = Clock()
        b = CircuitBreaker(
            "j",
            BreakerPolicy(failure_threshold=1, base_backoff=10, jitter=0.1),
            clock,
            constant(r),
        )
        b.record_failure()
        assert 9.0 <= b.retry_after() <= 11.0


def test_settings_from_env() -> None:
    s = VaultSettings.from_env({"STELLA_VAULT_ADDR": "https://v:8200", "VAULT_TOKEN": "root-tok"})
    assert isinstance(s.auth, TokenAuth) and s.auth.token is not None
    assert "root-tok" not in repr(s)
    s = VaultSettings.from_env(
        {
            "VAULT_ADDR": "https://v:8200",
            "STELLA_VAULT_ROLE_ID": "rid",
            "STELLA_VAULT_SECRET_ID_FILE": "/run/secrets/sid",
        }
    )
    assert s.auth == AppRoleAuth(role_id="rid", secret_id_file=Path("/run/secrets/sid"))
    s = VaultSettings.from_env(
        {
            "BAO_ADDR": "https://v:8200",
            "STELLA_VAULT_KUBERNETES_ROLE": "stella",
            "STELLA_VAULT_CACERT": "/ca.pem",
        }
    )
    assert s.auth == KubernetesAuth(role="stella")
    assert s.verify == "/ca.pem"
    with pytest.raises(SecretsError, match="STELLA_VAULT_ADDR"):
        VaultSettings.from_env({})
    with pytest.raises(SecretsError, match="STELLA_VAULT_SECRET_ID_FILE"):
        VaultSettings.from_env({"VAULT_ADDR": "x", "STELLA_VAULT_AUTH": "approle"})
    with pytest.raises(SecretsError, match="use kubernetes, approle or token"):
        VaultSettings.from_env({"VAULT_ADDR": "x", "STELLA_VAULT_AUTH": "ldap"})


def test_kv_payload_with_and_without_wrappers() -> None:
    inner = {"token": "t"}
    assert _kv_payload({"data": {"data": inner, "metadata": {"version": 1}}}, 2) == inner
    assert _kv_payload({"data": inner, "metadata": {"version": 1}}, 2) == inner
    assert _kv_payload({"data": inner}, 1) == inner
    assert _kv_payload(inner, 1) == inner
