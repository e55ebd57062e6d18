"""Operator settings, read once from the environment (12-factor; the chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    # Where the operator keeps its own objects (evidence ConfigMaps, keys, leases).
    namespace: str = field(default_factory=lambda: _env("STELLA_NAMESPACE", "stella-system"))
    # The identity admission trusts to write stamped identities and delete Approvals.
    service_account: str = field(
        default_factory=lambda: _env(
            "STELLA_SERVICE_ACCOUNT", "system:serviceaccount:stella-system:stella-operator"
        )
    )
    http_host: str = field(default_factory=lambda: _env("STELLA_HTTP_HOST", "127.0.0.1"))
    http_port: int = field(default_factory=lambda: int(_env("STELLA_HTTP_PORT", "8080")))
    # Leader election: the name of a Lease in `namespace`. Set, several replicas may run
    # and the one holding the Lease runs the engine (the others serve admission and stand
    # by); unset, this process runs the engine at once (one replica only).
    leader_election: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_LEADER_ELECTION") or None
    )
    # Seconds an unrenewed Lease stays its holder's (failover takes about this long).
    lease_seconds: float = field(default_factory=lambda: float(_env("STELLA_LEASE_SECONDS", "15")))
    drift_seconds: float = field(default_factory=lambda: float(_env("STELLA_DRIFT_SECONDS", "300")))
    resync_seconds: float = field(
        default_factory=lambda: float(_env("STELLA_RESYNC_SECONDS", "30"))
    )
    workers: int = field(default_factory=lambda: int(_env("STELLA_WORKERS", "4")))
    state_dir: Path = field(
        default_factory=lambda: Path(
            _env("STELLA_STATE_DIR", str(Path.home() / ".local/share/stella"))
        )
    )
    # Evidence: "local" (a PEM key under state_dir, the embedded default) or "vault" (transit).
    evidence_signer: str = field(default_factory=lambda: _env("STELLA_EVIDENCE_SIGNER", "local"))
    evidence_key: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_EVIDENCE_KEY") or None
    )
    evidence_transit_key: str = field(
        default_factory=lambda: _env("STELLA_EVIDENCE_TRANSIT_KEY", "stella-evidence")
    )
    # postgresql://writer@host/db (password from PGPASSWORD / .pgpass) or a .jsonl path.
    evidence_log: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_EVIDENCE_LOG") or None
    )
    # Admission webhooks over TLS: served when a certificate is given.
    webhook_host: str = field(default_factory=lambda: _env("STELLA_WEBHOOK_HOST", "127.0.0.1"))
    webhook_port: int = field(default_factory=lambda: int(_env("STELLA_WEBHOOK_PORT", "9443")))
    webhook_cert: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_WEBHOOK_CERT") or None
    )
    webhook_key: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_WEBHOOK_KEY") or None
    )
    # The agent hub (mTLS API for deployment agents): served when a port and a serving
    # certificate are given, by the replica that runs the engine; the agents' CA is the PKI
    # engine at agent_pki_mount in Vault (STELLA_VAULT_*).
    agent_hub_host: str = field(default_factory=lambda: _env("STELLA_AGENT_HUB_HOST", "127.0.0.1"))
    agent_hub_port: int = field(default_factory=lambda: int(_env("STELLA_AGENT_HUB_PORT", "0")))
    agent_hub_cert: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_AGENT_HUB_CERT") or None
    )
    agent_hub_key: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_AGENT_HUB_KEY") or None
    )
    agent_pki_mount: str = field(
        default_factory=lambda: _env("STELLA_AGENT_PKI_MOUNT", "stella-agent-pki")
    )
    agent_cert_ttl: str = field(default_factory=lambda: _env("STELLA_AGENT_CERT_TTL", "24h"))
    # In a cluster: the selector-less Service agents dial; the engine's replica publishes
    # its own address (the downward API's status.podIP, spec.nodeName) as its endpoint.
    agent_hub_service: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_AGENT_HUB_SERVICE") or None
    )
    pod_ip: str | None = field(default_factory=lambda: os.environ.get("STELLA_POD_IP") or None)
    node_name: str | None = field(
        default_factory=lambda: os.environ.get("STELLA_NODE_NAME") or None
    )
    # Per-identity token bucket on the webhooks (requests per second, burst).
    webhook_rate: float = field(default_factory=lambda: float(_env("STELLA_WEBHOOK_RATE", "20")))
    webhook_burst: float = field(default_factory=lambda: float(_env("STELLA_WEBHOOK_BURST", "40")))
    # Connections to the admission server (docs/quotas.md): an idle kept-alive connection is
    # closed after this long (longer than the API server's own 90 s idle timeout, so the
    # API server closes first and never writes into a closing connection) ...
    webhook_idle_seconds: float = field(
        default_factory=lambda: float(_env("STELLA_WEBHOOK_IDLE_SECONDS", "120"))
    )
    # ... and past this many open connections each answer closes its connection. 0 = no cap,
    # the default: under a burst it closes nearly every connection, and the handshakes cost
    # more than the memory it saves (bench/bench_webhook_connections.py, docs/quotas.md).
    webhook_keepalive_connections: int = field(
        default_factory=lambda: int(_env("STELLA_WEBHOOK_KEEPALIVE_CONNECTIONS", "0"))
    )
    # T10 quotas and loop detection (docs/quotas.md).
    pending_releases_per_namespace: int = field(
        default_factory=lambda: int(_env("STELLA_PENDING_RELEASES_PER_NAMESPACE", "500"))
    )
    release_loop_threshold: int = field(
        default_factory=lambda: int(_env("STELLA_RELEASE_LOOP_THRESHOLD", "5"))
    )
    release_loop_window: float = field(
        default_factory=lambda: float(_env("STELLA_RELEASE_LOOP_WINDOW_SECONDS", "600"))
    )
    # The same promotion asked again and again (Promote Actions for one Release into one
    # Environment): refused past this many earlier requests within the window; 0 = off.
    promotion_loop_threshold: int = field(
        default_factory=lambda: int(_env("STELLA_PROMOTION_LOOP_THRESHOLD", "5"))
    )
    promotion_loop_window: float = field(
        default_factory=lambda: float(_env("STELLA_PROMOTION_LOOP_WINDOW_SECONDS", "600"))
    )
    max_promotions: int = field(default_factory=lambda: int(_env("STELLA_MAX_PROMOTIONS", "50")))
    plugin_runs_max: int = field(default_factory=lambda: int(_env("STELLA_PLUGIN_RUNS_MAX", "4")))
    # Free heap pages handed back to the OS this often (glibc malloc_trim; docs/quotas.md);
    # 0 = never.
    memory_trim_seconds: float = field(
        default_factory=lambda: float(_env("STELLA_MEMORY_TRIM_SECONDS", "60"))
    )
    # Opt-in retention of finished Releases per namespace (docs/quotas.md); 0 = off.
    keep_finished_releases: int = field(
        default_factory=lambda: int(_env("STELLA_KEEP_FINISHED_RELEASES", "0"))
    )


def load() -> Settings:
    return Settings()
