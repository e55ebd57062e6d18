"""Whether a task's registry credentials go out (T8): once, to ONE request of the task's
agent, within 15 minutes of the task being made — and again to that same request only,
when its first answer never arrived (the hub killed between spending and answering, the
connection lost).

The agent makes a random key for each credentials request (`request`, kept in its memory
only, sent only over mTLS) and repeats it when it asks again after a lost answer. The hub
spends the task's credentials with a compare-and-swap that records `credentialsIssued`
and the SHA-256 of the agent's certificate fingerprint and that key
(`credentialsRequest`), never the key itself. A request with that key, from that
certificate, while the task has not applied anything yet, is answered again; any other
request for spent credentials — a copy of the session, a second agent process — is
refused and is a security signal, as before. An agent restarted before it applied
anything has lost its key: its task fails, as before (it never deploys what it could not
verify).

Pure functions; agents/hub.py does the reads and writes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stella.models.agent_task import TERMINAL_TASK_PHASES

# A task's credentials are handed out only this long after the task was made.
CREDENTIALS_SECONDS = 15 * 60
# Phases in which the agent has not applied anything yet (it needs the credentials for
# its digest check, which comes before it applies).
BEFORE_APPLY = frozenset({"Pending", "Acknowledged"})
_REQUEST = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


def valid_request(request: object) -> bool:
    """A request key as the agent makes it (secrets.token_urlsafe(32): 43 characters)."""
    return isinstance(request, str) and bool(_REQUEST.fullmatch(request))


def request_digest(certificate_fingerprint: str, request: str) -> str:
    """What the task's status keeps of the request that got its credentials."""
    return hashlib.sha256(f"{certificate_fingerprint}\n{request}".encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    """Hand out (spend: record the spend first) or refuse (status, message; replay: the
    refusal is a security signal)."""

    hand_out: bool
    spend: bool = False
    status: int = 0
    message: str = ""
    replay: bool = False


def decide(status: Mapping[str, Any], digest: str | None, age_seconds: float) -> Decision:
    """The answer to a credentials request of the task's own agent. `digest`: the request's
    request_digest, None when the agent sent no key (it gets them once, never again)."""
    phase = str(status.get("phase") or "Pending")
    if phase in TERMINAL_TASK_PHASES:
        return Decision(
            False, status=409, message="the task is over; its credentials are no longer handed out"
        )
    expired = age_seconds >= CREDENTIALS_SECONDS
    if status.get("credentialsIssued"):
        spent_to = str(status.get("credentialsRequest") or "")
        if digest is None or not spent_to or not hmac.compare_digest(spent_to, digest):
            return Decision(
                False,
                status=409,
                message="this task's credentials were handed out already (once per task)",
                replay=True,
            )
        if phase not in BEFORE_APPLY:
            return Decision(
                False,
                status=409,
                message="this task applied its images already; its credentials are no longer "
                "handed out",
            )
        if expired:
            return _expired()
        return Decision(True)  # the same request again: its first answer was lost
    if expired:
        return _expired()
    return Decision(True, spend=True)


def _expired() -> Decision:
    return Decision(
        False,
        status=410,
        message="this task's credentials were valid for 15 minutes after it was made",
    )
