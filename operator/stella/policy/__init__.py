"""Pure promotion rules: paths, freeze windows, approvals, gates, rollback, summaries.

No I/O: nothing here reads the clock, the network or the Kubernetes API. Handlers gather
facts, call these functions and write the results.
"""

from stella.policy.approvals import (
    ApprovalFact,
    CountedDecision,
    Refusal,
    RefusalReason,
    Tally,
    tally,
)
from stella.policy.duration import DurationError, format_duration, parse_duration
from stella.policy.freeze import (
    ActiveFreeze,
    active_freeze,
    frozen_until,
    invalid_windows,
    thaw,
    validate_cron,
    validate_freeze_window,
    validate_time_zone,
)
from stella.policy.gates import GATES, Check, Decision, Gate, GateInput, decide
from stella.policy.identity import Identity, recorded_identity
from stella.policy.path import (
    CycleError,
    GraphReport,
    MissingPrerequisiteError,
    PathError,
    UnknownEnvironmentError,
    check_graph,
    environment_path,
    path_for,
    topological_order,
)
from stella.policy.rollback import (
    DeploymentRecord,
    RollbackError,
    RollbackPlan,
    deployments_from_history,
    plan_rollback,
)
from stella.policy.summary import ReadyStatus, degraded, ready, requester_shown, summary_line

__all__ = [
    "GATES",
    "ActiveFreeze",
    "ApprovalFact",
    "Check",
    "CountedDecision",
    "CycleError",
    "Decision",
    "DeploymentRecord",
    "DurationError",
    "Gate",
    "GateInput",
    "GraphReport",
    "Identity",
    "MissingPrerequisiteError",
    "PathError",
    "ReadyStatus",
    "Refusal",
    "RefusalReason",
    "RollbackError",
    "RollbackPlan",
    "Tally",
    "UnknownEnvironmentError",
    "active_freeze",
    "check_graph",
    "decide",
    "degraded",
    "deployments_from_history",
    "environment_path",
    "format_duration",
    "frozen_until",
    "invalid_windows",
    "parse_duration",
    "path_for",
    "plan_rollback",
    "ready",
    "recorded_identity",
    "requester_shown",
    "summary_line",
    "tally",
    "thaw",
    "topological_order",
    "validate_cron",
    "validate_freeze_window",
    "validate_time_zone",
]
