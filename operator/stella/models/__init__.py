"""Pydantic models of Stella's custom resources: the single source of the CRD schemas."""

from stella.models.action import ACTION, ActionSpec, ActionStatus
from stella.models.agent import AGENT, AgentSpec, AgentStatus
from stella.models.agent_task import AGENT_TASK, AgentTaskSpec, AgentTaskStatus
from stella.models.approval import APPROVAL, ApprovalSpec, ApprovalStatus
from stella.models.common import Condition, LabelSelector, find_condition, set_condition
from stella.models.environment import ENVIRONMENT, EnvironmentSpec, EnvironmentStatus
from stella.models.plugin import PLUGIN, PLUGIN_PUBLISHER
from stella.models.receiver import RECEIVER, ReceiverSpec
from stella.models.release import RELEASE, Component, ReleaseSpec, ReleaseStatus
from stella.models.resource import KindInfo, Kinds

ALL_KINDS: tuple[KindInfo, ...] = (
    ENVIRONMENT,
    RELEASE,
    APPROVAL,
    ACTION,
    AGENT,
    AGENT_TASK,
    PLUGIN,
    PLUGIN_PUBLISHER,
    RECEIVER,
)

__all__ = [
    "ACTION",
    "AGENT",
    "AGENT_TASK",
    "ALL_KINDS",
    "APPROVAL",
    "ENVIRONMENT",
    "PLUGIN",
    "PLUGIN_PUBLISHER",
    "RECEIVER",
    "RELEASE",
    "ActionSpec",
    "ActionStatus",
    "AgentSpec",
    "AgentStatus",
    "AgentTaskSpec",
    "AgentTaskStatus",
    "ApprovalSpec",
    "ApprovalStatus",
    "Component",
    "Condition",
    "EnvironmentSpec",
    "EnvironmentStatus",
    "KindInfo",
    "Kinds",
    "LabelSelector",
    "ReceiverSpec",
    "ReleaseSpec",
    "ReleaseStatus",
    "find_condition",
    "set_condition",
]
