"""What the promotion mixins use of the Reconciler that they do not define themselves.

The Reconciler (engine/reconcile.py) is one class assembled from mixins, each holding one
stage of a promotion. A mixin that calls into another stage, or reads what the
Reconciler's ``__init__`` sets, subclasses :class:`ReconcilerParts`, so mypy checks those
calls against these signatures, and checks that the Reconciler (or another mixin) defines
each of them with a compatible one: a member nobody implements makes the Reconciler
abstract, and mypy refuses to instantiate it.

Where each is defined: the attributes in ``Reconciler.__init__``; ``_credentials``,
``_gates_before_deploy``, ``_evidence_pending`` and ``_passport`` in engine/gates.py;
``_finish`` in engine/reconcile.py; ``_rolled_out`` in engine/verification.py;
``_agents_failed_after_rollout`` in engine/agent_promotion.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from stella.engine.agent_rollback import Why
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.locks import EnvironmentLocks
from stella.engine.promotion import Promotion
from stella.engine.view import ClusterView
from stella.evidence.errors import EvidenceError
from stella.models import EnvironmentSpec
from stella.registry import RegistryClient
from stella.registry.verify import CredentialsLookup, VerificationReport
from stella.supplychain.check import SupplyChainReport


class ReconcilerParts(Protocol):
    view: ClusterView
    registry: RegistryClient
    locks: EnvironmentLocks
    hooks: EvidenceHooks

    def _credentials(self, env_spec: EnvironmentSpec) -> CredentialsLookup:
        """The lookup of the Environment's registry credentials (engine/gates.py)."""
        raise NotImplementedError

    async def _gates_before_deploy(
        self, promo: Promotion, digests: VerificationReport
    ) -> SupplyChainReport | float | None:
        raise NotImplementedError

    async def _evidence_pending(self, promo: Promotion, exc: EvidenceError) -> float:
        raise NotImplementedError

    async def _passport(self, promo: Promotion, deployed_at: datetime) -> float | None:
        raise NotImplementedError

    async def _finish(self, promo: Promotion, outcome: str, elapsed: float) -> None:
        raise NotImplementedError

    async def _rolled_out(self, promo: Promotion, elapsed: float, message: str) -> float | None:
        raise NotImplementedError

    async def _agents_failed_after_rollout(
        self,
        promo: Promotion,
        why: Why,
        elapsed: float,
        deployed: Sequence[tuple[int, Any, str, Any]] | None = None,
    ) -> float | None:
        raise NotImplementedError
