"""The console's metrics (its own registry: the console is its own process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

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
SESSIONS = Gauge(
    "stella_console_sessions",
    "Live console session families.",
    registry=REGISTRY,
)
