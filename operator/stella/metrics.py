"""Prometheus metrics: one place, so names and labels stay consistent.

Labels never carry secrets or free text from users; only names of Stella objects,
environments, results and rule identifiers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

PROMOTIONS = Counter(
    "stella_promotions_total",
    "Promotions finished, by environment and result.",
    ["environment", "result"],
    registry=REGISTRY,
)
PROMOTIONS_IN_FLIGHT = Gauge(
    "stella_promotions_in_flight",
    "Promotions currently deploying, by environment.",
    ["environment"],
    registry=REGISTRY,
)
APPROVAL_WAIT = Histogram(
    "stella_approval_wait_seconds",
    "Time a Release waited for approvals in an environment.",
    ["environment"],
    buckets=(1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
    registry=REGISTRY,
)
DEPLOY_DURATION = Histogram(
    "stella_deploy_duration_seconds",
    "From workload patch to rollout complete (or failed).",
    ["environment", "result"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
EVIDENCE_PENDING = Counter(
    "stella_evidence_pending_total",
    "Promotions held back because their authorization evidence could not be stored "
    "(nothing deployed; retried), by environment and reason: the evidence backlog.",
    ["environment", "reason"],
    registry=REGISTRY,
)
_DORA_BUCKETS = (60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
LEAD_TIME = Histogram(
    "stella_lead_time_seconds",
    "DORA lead time: from a Release's creation to its deployment in an environment.",
    ["environment"],
    buckets=_DORA_BUCKETS,
    registry=REGISTRY,
)
TIME_TO_RESTORE = Histogram(
    "stella_time_to_restore_seconds",
    "DORA time to restore: from the first failed promotion of a run to the next deployment "
    "in an environment.",
    ["environment"],
    buckets=_DORA_BUCKETS,
    registry=REGISTRY,
)
VERIFICATIONS = Counter(
    "stella_verifications_total",
    "Verifications finished (soak time and checks after a rollout), by environment and "
    "result (Verified, Failed).",
    ["environment", "result"],
    registry=REGISTRY,
)
VERIFICATION_SAMPLES = Counter(
    "stella_verification_samples_total",
    "Samples of verification checks, by environment, check and result (Pass, Fail, Error: "
    "could not be taken).",
    ["environment", "check", "result"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "stella_phase_transitions_total",
    "Release phase transitions per environment.",
    ["environment", "phase"],
    registry=REGISTRY,
)
ADMISSION_SECONDS = Histogram(
    "stella_admission_review_seconds",
    "Time to answer one AdmissionReview, by webhook.",
    ["hook"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
ADMISSION_DENIED = Counter(
    "stella_admission_denied_total",
    "Admission requests denied, by rule.",
    ["rule"],
    registry=REGISTRY,
)
SECURITY_EVENTS = Counter(
    "stella_security_events_total",
    "Incident signals: digest mismatch, SoD violation attempt, forged identity, ...",
    ["signal"],
    registry=REGISTRY,
)
ENVIRONMENT_HALTED = Gauge(
    "stella_environment_halted",
    "1 while an environment is halted by a security failure.",
    ["environment"],
    registry=REGISTRY,
)
RELEASES_PRUNED = Counter(
    "stella_releases_pruned_total",
    "Finished Releases deleted by the opt-in retention (STELLA_KEEP_FINISHED_RELEASES).",
    registry=REGISTRY,
)
PLUGIN_RUNS = Counter(
    "stella_plugin_runs_total",
    "Workflow plugin runs, by plugin, step and outcome (Passed, Failed, "
    "CapabilityViolation, OutOfFuel, MemoryLimit, Timeout, Trapped, or a refusal reason).",
    ["plugin", "step", "outcome"],
    registry=REGISTRY,
)
PLUGIN_RUN_SECONDS = Histogram(
    "stella_plugin_run_seconds",
    "Wall-clock time of one plugin run.",
    ["plugin"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
PLUGIN_FUEL = Histogram(
    "stella_plugin_fuel_used",
    "WebAssembly fuel (about instructions) one plugin run used.",
    ["plugin"],
    buckets=(1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10),
    registry=REGISTRY,
)
PLUGINS_QUARANTINED = Gauge(
    "stella_plugins_quarantined",
    "1 while a plugin is quarantined (an undeclared capability was attempted).",
    ["plugin"],
    registry=REGISTRY,
)
