"""The hub: what an agent may ask, decided here; the HTTP server (handlers/agent_hub.py)
only carries requests in and answers out.

Every request is judged against the Agent as the API server has it now (a GET each time:
a revocation or a new enrolment token takes effect at the next request):

* enrol (TLS, no client certificate yet): a one-time registration token and a CSR; the
  agents' CA signs a client certificate; the token is spent by a compare-and-swap on the
  Agent's status, so two racing uses of one token enrol at most once;
* log in (mTLS): the certificate must be the one recorded for that Agent, from an
  allowed network, not revoked; the answer is a session (agents/tokens.py);
* refresh, heartbeat, renew (mTLS + session): the session must belong to the certificate.

A refusal carries a security signal where it is one (threat model T2, T3, T8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography import x509

from stella.agents import enrollment, liveness, revocation, task_credentials
from stella.agents.ca import AgentCA, CSRRefused, agent_of, fingerprint
from stella.agents.evidence import registered_event
from stella.agents.tokens import SESSION_OTHER_CERT, Grant, TokenRefused, TokenService
from stella.models.agent_task import TASK_PHASE_ORDER, TERMINAL_TASK_PHASES
from stella.models.common import parse_time

log = logging.getLogger("stella.agents")

# Security signals the hub raises besides those of enrolment and sessions.
UNKNOWN_CERTIFICATE = "AgentUnknownCertificate"
# A client certificate that failed the TLS handshake (another CA, expired, malformed): the
# request never reaches the hub, the server tells (handlers/agent_hub.py).
UNTRUSTED_CERTIFICATE = "AgentUntrustedCertificate"
CAPABILITY_MISMATCH = "AgentCapabilityMismatch"
FOREIGN_TASK = "AgentForeignTask"
CREDENTIALS_REPLAY = "AgentCredentialsReplay"


class Conflict(Exception):
    """The Agent changed since it was read (compare-and-swap lost)."""


class AgentStore(Protocol):
    def agents(self) -> list[dict[str, Any]]: ...

    def get(self, name: str) -> Mapping[str, Any] | None: ...

    def replace_status(self, agent: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Write status guarded by the body's resourceVersion; Conflict when it moved."""

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None: ...

    def tasks(self, agent: str) -> list[dict[str, Any]]: ...

    def task(self, name: str) -> dict[str, Any] | None: ...

    def replace_task_status(self, task: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Guarded by the task's resourceVersion; Conflict when it moved."""

    def environment(self, name: str) -> Mapping[str, Any] | None: ...


Signal = Callable[[str, Mapping[str, Any] | None, str], None]


class HubRefused(Exception):
    def __init__(self, status: int, message: str, signal: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.signal = signal


@dataclass(frozen=True)
class Peer:
    address: str
    certificate: x509.Certificate | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Hub:
    def __init__(
        self,
        ca: AgentCA,
        tokens: TokenService,
        store: AgentStore,
        signal: Signal = lambda _s, _a, _m: None,
        secrets: Callable[[str], dict[str, str]] | None = None,
        record: revocation.Record | None = None,
    ) -> None:
        """secrets: reads a Vault reference into {username, password} (the operator's Vault
        client); None: no task gets registry credentials. record: writes an evidence packet
        (the engine's recorder: enrolments and revocations go to the cluster's chain)."""
        self.ca = ca
        self.tokens = tokens
        self.store = store
        self._signal = signal
        self._secrets = secrets
        self._record = record
        self._revocation_backoff: dict[str, tuple[float, float]] = {}

    def carry_out_revocations(self) -> list[str]:
        """`stella agent revoke`, made durable (agents/revocation.py); the names done."""
        return revocation.sweep(
            self.store, self.tokens, self.ca, self._record, self._revocation_backoff
        )

    def mark_offline(self) -> list[str]:
        """Online agents that stopped calling in become Offline (Ready False)."""
        now, done = datetime.now(UTC), []
        for agent in self.store.agents():
            patch = liveness.offline(agent, now)
            if patch is not None:
                name = str(agent["metadata"]["name"])
                self.store.patch_status(name, patch)
                log.info("agent %s: no heartbeat for %ss, Offline", name, liveness.OFFLINE_SECONDS)
                done.append(name)
        return done

    def _refuse(
        self, status: int, message: str, signal: str | None, agent: Mapping[str, Any] | None
    ) -> HubRefused:
        if signal is not None:
            self._signal(signal, agent, message)
        return HubRefused(status, message, signal)

    def certificate_refused(self, address: str, reason: str) -> None:
        """The TLS layer refused a client certificate before any request (another CA,
        expired, malformed): the hub never sees the request, but it is a sign of attack."""
        self._signal(
            UNTRUSTED_CERTIFICATE,
            None,
            f"a client certificate from {address} was refused in the TLS handshake ({reason}): "
            "not issued by the agents' CA, expired or malformed",
        )

    # ---- enrolment -----------------------------------------------------------------
    def enroll(self, name: str, token: str, csr_pem: str, peer: Peer) -> dict[str, str]:
        agent = self.store.get(name)
        if agent is None:
            # Same answer as a wrong token: a caller learns nothing about which Agents exist.
            raise self._refuse(
                403, "this registration token is not valid", enrollment.ENROLL_INVALID, None
            )
        decision = enrollment.check_token(agent, token, peer.address)
        if not decision.ok:
            raise self._refuse(403, decision.message, decision.signal, agent)
        try:
            issued = self.ca.sign(name, csr_pem)
        except CSRRefused as exc:
            raise HubRefused(400, str(exc)) from None
        status = dict(agent.get("status") or {})
        status.update(
            certificate={
                "serial": issued.serial,
                "fingerprint": issued.fingerprint,
                "notAfter": issued.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            enrolledTokenSha256=enrollment.token_hash(token),
            enrolledAt=_now(),
            sourceAddress=peer.address,
            state="Registered",
        )
        try:
            self.store.replace_status(agent, status)
        except Conflict:
            # Someone else wrote this Agent since we read it: most likely the same token
            # used twice at once. The certificate we signed is never handed out.
            self.ca.revoke(issued.serial)
            raise self._refuse(
                409,
                "this agent changed while enrolling (was the token used twice?); ask for a "
                "new token",
                enrollment.ENROLL_REUSED,
                agent,
            ) from None
        log.info("agent %s enrolled from %s (serial %s)", name, peer.address, issued.serial)
        if self._record is not None:
            # After the status write: a failed enrolment leaves no packet. A log that is
            # down costs the agent nothing (its certificate is issued); it is logged.
            try:
                self._record(registered_event(agent, issued, peer.address))
            except Exception as exc:
                log.error(
                    "agent %s enrolled, but its evidence packet was not written: %s", name, exc
                )
        return {"certificate": issued.pem, "ca": issued.ca_pem or self.ca.ca_pem()}

    # ---- sessions ------------------------------------------------------------------
    def authenticate(self, peer: Peer) -> tuple[str, Mapping[str, Any], str]:
        """(agent name, Agent, certificate fingerprint) of an mTLS caller."""
        cert = peer.certificate
        if cert is None:
            raise HubRefused(401, "present the agent's client certificate (mTLS)")
        name = agent_of(cert)
        agent = self.store.get(name) if name else None
        fp = fingerprint(cert)
        recorded = ((agent or {}).get("status") or {}).get("certificate") or {}
        if agent is None or recorded.get("fingerprint") != fp:
            raise self._refuse(
                403,
                "this certificate is not the one issued to this agent; enrol it again",
                UNKNOWN_CERTIFICATE,
                agent,
            )
        if (agent.get("spec") or {}).get("revoked"):
            raise self._refuse(403, "this agent is revoked", enrollment.AGENT_REVOKED, agent)
        decision = enrollment.source_allowed(agent, peer.address)
        if not decision.ok:
            raise self._refuse(403, decision.message, decision.signal, agent)
        return str(name), agent, fp

    def login(self, peer: Peer) -> Grant:
        name, _agent, fp = self.authenticate(peer)
        return self.tokens.login(name, fp, peer.address)

    def refresh(self, refresh_token: str, peer: Peer) -> Grant:
        _name, agent, fp = self.authenticate(peer)
        try:
            return self.tokens.refresh(refresh_token, fp, peer.address)
        except TokenRefused as exc:
            raise self._refuse(401, exc.message, exc.signal, agent) from None

    def session(self, bearer: str, peer: Peer) -> tuple[str, Mapping[str, Any]]:
        name, agent, fp = self.authenticate(peer)
        try:
            claims = self.tokens.check(bearer, fp)
        except TokenRefused as exc:
            raise self._refuse(401, exc.message, exc.signal, agent) from None
        if claims.agent != name:
            raise self._refuse(
                401, "this token belongs to another agent", SESSION_OTHER_CERT, agent
            )
        return name, agent

    def heartbeat(self, bearer: str, peer: Peer, capabilities: Sequence[str]) -> dict[str, Any]:
        name, agent = self.session(bearer, peer)
        declared = set((agent.get("spec") or {}).get("capabilities") or [])
        extra = sorted(set(capabilities) - declared)
        if extra:
            raise self._refuse(
                403,
                f"this agent was enrolled without {', '.join(extra)}; a platform engineer "
                "must add it to the Agent's spec.capabilities",
                CAPABILITY_MISMATCH,
                agent,
            )
        self.store.patch_status(
            name,
            {
                "lastHeartbeat": _now(),
                "sourceAddress": peer.address,
                "reportedCapabilities": sorted(set(capabilities)),
                **liveness.online(agent, peer.address, datetime.now(UTC)),
            },
        )
        return {"agent": name, "state": "Online"}

    def renew(self, bearer: str, peer: Peer, csr_pem: str) -> dict[str, str]:
        """A fresh certificate before the current one expires (same checks as a session)."""
        name, agent = self.session(bearer, peer)
        try:
            issued = self.ca.sign(name, csr_pem)
        except CSRRefused as exc:
            raise HubRefused(400, str(exc)) from None
        old = ((agent.get("status") or {}).get("certificate") or {}).get("serial")
        status = dict(agent.get("status") or {})
        status["certificate"] = {
            "serial": issued.serial,
            "fingerprint": issued.fingerprint,
            "notAfter": issued.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            self.store.replace_status(agent, status)
        except Conflict:
            self.ca.revoke(issued.serial)
            raise HubRefused(409, "the agent changed meanwhile; renew again") from None
        if old:
            self.ca.revoke(str(old))
        self.tokens.revoke_agent(name)  # sessions were bound to the old certificate
        return {"certificate": issued.pem, "ca": issued.ca_pem or self.ca.ca_pem()}

    # ---- tasks ---------------------------------------------------------------------
    def tasks(self, bearer: str, peer: Peer) -> list[dict[str, Any]]:
        """This agent's unfinished tasks (a task it acknowledged and did not finish comes
        back: an agent restarted mid-task resumes it, never starts another)."""
        name, _agent = self.session(bearer, peer)
        out = []
        for task in self.store.tasks(name):
            if (task.get("spec") or {}).get("agent") != name:
                continue  # a label is not proof; the spec says whose it is
            phase = (task.get("status") or {}).get("phase") or "Pending"
            if phase not in TERMINAL_TASK_PHASES:
                out.append(
                    {
                        "name": task["metadata"]["name"],
                        "spec": task.get("spec") or {},
                        "phase": phase,
                        # A task that took over from a revoked agent brings what ran
                        # before that agent applied anything (spec.previousImages).
                        "previousImages": (task.get("status") or {}).get("previousImages")
                        or (task.get("spec") or {}).get("previousImages")
                        or [],
                    }
                )
        return out

    def _own_task(
        self, bearer: str, peer: Peer, task_name: str
    ) -> tuple[str, Mapping[str, Any], dict[str, Any]]:
        """(agent name, Agent, task) when the task names the caller. T8: an agent asking
        about another agent's task (or none) learns nothing, and the attempt is a signal."""
        name, agent = self.session(bearer, peer)
        task = self.store.task(task_name)
        if task is None or (task.get("spec") or {}).get("agent") != name:
            raise self._refuse(
                403, "no such task for this agent", FOREIGN_TASK if task else None, agent
            )
        return name, agent, task

    def report(
        self, bearer: str, peer: Peer, task_name: str, update: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A task's progress from its agent: the phase only moves forward; a terminal phase
        is final (the same report again is answered, not applied twice)."""
        _name, agent, task = self._own_task(bearer, peer, task_name)
        status = dict(task.get("status") or {})
        current = str(status.get("phase") or "Pending")
        phase = str(update.get("phase") or "")
        if phase not in TASK_PHASE_ORDER:
            raise HubRefused(400, f"phase must be one of {', '.join(TASK_PHASE_ORDER)}")
        if current in TERMINAL_TASK_PHASES:
            if phase == current:
                return {"task": task_name, "phase": current}
            raise HubRefused(409, f"the task already ended {current}")
        if TASK_PHASE_ORDER[phase] < TASK_PHASE_ORDER[current]:
            return {"task": task_name, "phase": current}  # a late, older report
        status["phase"] = phase
        status["message"] = str(update.get("message") or "")[:2048]
        if phase == "Acknowledged" or not status.get("certificateSerial"):
            cert = ((agent.get("status") or {}).get("certificate") or {}).get("serial")
            status["certificateSerial"] = cert
            status.setdefault("acknowledgedAt", _now())
        previous = update.get("previousImages")
        if isinstance(previous, list) and not status.get("previousImages"):
            status["previousImages"] = [
                {"component": str(p.get("component")), "image": str(p.get("image"))}
                for p in previous[:64]
                if isinstance(p, Mapping)
            ]
        if update.get("rolledBack"):
            status["rolledBack"] = True
        if phase in TERMINAL_TASK_PHASES:
            status["finishedAt"] = _now()
        try:
            self.store.replace_task_status(task, status)
        except Conflict:
            raise HubRefused(409, "the task changed meanwhile; report again") from None
        return {"task": task_name, "phase": phase}

    def credentials(
        self, bearer: str, peer: Peer, task_name: str, request: object = None
    ) -> dict[str, Any]:
        """The registry credentials of ONE task's target, to the agent the task names, once,
        within 15 minutes of the task being made (T8): an agent never obtains credentials
        for a target it does not serve, and a copy of its session cannot fetch them again.
        `request`: the agent's key for this request; the same request repeated after its
        answer was lost gets them again, no other (agents/task_credentials.py)."""
        _name, agent, task = self._own_task(bearer, peer, task_name)
        if request is not None and not task_credentials.valid_request(request):
            raise HubRefused(400, "request must be 32 to 128 characters of [A-Za-z0-9_-]")
        assert peer.certificate is not None  # the session checked it
        digest = (
            task_credentials.request_digest(fingerprint(peer.certificate), str(request))
            if request is not None
            else None
        )
        status = dict(task.get("status") or {})
        made = parse_time((task.get("metadata") or {}).get("creationTimestamp"))
        window = task_credentials.CREDENTIALS_SECONDS
        age = (datetime.now(UTC) - made).total_seconds() if made else window
        decision = task_credentials.decide(status, digest, age)
        if not decision.hand_out:
            signal = CREDENTIALS_REPLAY if decision.replay else None
            raise self._refuse(decision.status, decision.message, signal, agent)
        env = self.store.environment(str((task.get("spec") or {}).get("environment") or ""))
        spec = (env or {}).get("spec") or {}
        hosts = [str(h) for h in spec.get("allowedRegistries") or []]
        # Credentials go only to registries listed explicitly (T1/T9): none listed, none
        # handed out, and Vault is not read.
        ref = spec.get("registryCredentials") if hosts else None
        # Read first (Vault down: nothing spent, ask again), then spend, then hand out.
        values = self._secrets(str(ref)) if ref and self._secrets is not None else None
        if decision.spend:
            status["credentialsIssued"] = True
            if digest is not None:
                status["credentialsRequest"] = digest
            try:
                self.store.replace_task_status(task, status)
            except Conflict:
                raise HubRefused(409, "the task changed meanwhile; ask again") from None
        else:
            log.warning(
                "task %s: its credentials handed out again to the request that got them "
                "first (that answer never reached the agent)",
                task_name,
            )
        expires = int(window - age)
        if values is None:
            return {"registries": [], "expiresIn": expires}
        return {
            "registries": [
                {
                    "hosts": hosts,
                    "username": values["username"],
                    "password": values["password"],
                }
            ],
            "expiresIn": expires,
        }
