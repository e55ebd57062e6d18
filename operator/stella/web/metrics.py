"""The console's metrics (its own registry: the console is its own process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LOGINS = Counter(
    "stella_console_logins_total",
    "Console logins by result (ok, refused, unavailable).",
    ["result"],
    registry=REGISTRY,
)
SESSION_SIGNALS = Counter(
    "stella_console_session_signals_total",
    "Session security signals: refresh-reuse (a rotated refresh token presented again: the "
    "family is revoked), address-change (a session used from another client address), "
    "csrf (a write without a valid CSRF token or from another origin).",
    ["signal"],
    registry=REGISTRY,
)
WRITES = Counter(
    "stella_console_writes_total",
    "Writes made in a person's name through the console, by kind and result.",
    ["kind", "result"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "stella_console_rate_limited_total",
    "Console requests refused with 429 by the per-identity rate limit.",
    registry=REGISTRY,
)
QUOTA_REFUSED = Counter(
    "stella_console_quota_refused_total",
    "Console requests refused with 429 by a per-identity quota (e.g. evidence exports per "
    "hour), by quota.",
    ["quota"],
    registry=REGISTRY,
)
READ_VOLUME_SIGNALS = Counter(
    "stella_console_read_volume_signals_total",
    "Times one identity crossed the evidence reads per hour threshold (the stella.security "
    "log line names who; no identity label, so this stays one series).",
    registry=REGISTRY,
)
EVIDENCE_READS = Counter(
    "stella_console_evidence_reads_total",
    "Reads of evidence through the console (page views and exports), by kind.",
    ["kind"],
    registry=REGISTRY,
)
EXPORT_BYTES = Histogram(
    "stella_console_evidence_export_bytes",
    "Size of each evidence export served (refused ones included, by their size).",
    buckets=(1e3, 1e4, 1e5, 1e6, 5e6, 2e7, 1e8),
    registry=REGISTRY,
)
HOOK_DELIVERIES = Counter(
    "stella_gateway_deliveries_total",
    "Webhook deliveries by result: accepted, or the refusal (too-large, malformed, "
    "stale-timestamp, bad-signature, replayed-nonce, rate-limited, bad-event, api-refused, "
    "unknown, vault).",
    ["result"],
    registry=REGISTRY,
)
SESSIONS = Gauge(
    "stella_console_sessions",
    "Live console session families.",
    registry=REGISTRY,
)
