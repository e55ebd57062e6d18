"""The steps of a promotion into an Environment whose targets are agents: the same gates,
lock and evidence as a promotion here, then an AgentTask per target instead of a patch,
and the tasks' reports instead of a rollout watched here (engine/agent_dispatch.py).

The Environment's plugin steps run here too, in the hub's sandbox (engine/plugin_steps.py):
Gate and PreDeploy before the lock and before any task is queued, PostDeploy once every
agent reported success and before the promotion counts as deployed, Notify after the
outcome (in _finish). A PostDeploy failure fails the promotion, and so does a failed
verification (engine/verification.py); with `rollout.rollbackOnFailure` the hub first rolls
each agent's cluster back with one more task per target (engine/agent_rollback.py), holding
the lock until they reported, and the failure says what was and was not rolled back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stella import metrics
from stella.engine import agent_dispatch, agent_redispatch, agent_rollback, kubeio
from stella.engine.plugin_steps import PluginSteps
from stella.engine.promotion import Authorization, Promotion, persist
from stella.engine.promotion import move as _move
from stella.engine.reconciler_protocol import ReconcilerParts
from stella.evidence.errors import EvidenceError
from stella.models.agent_task import TERMINAL_TASK_PHASES
from stella.policy.duration import parse_duration
from stella.registry import verify_release_images
from stella.settings import load
from stella.supplychain.check import SupplyChainReport

log = logging.getLogger("stella.engine")
# An agent that has not reported this long past the deadline is taken as gone.
REPORT_GRACE_SECONDS = 60.0
POLL = 2.0


class AgentPromotions(PluginSteps, ReconcilerParts):
    """Mixed into the Reconciler: uses its registry, locks, evidence hooks and writes, the
    gates and the plugin steps (engine/reconciler_protocol.py)."""

    async def _start_agent_deploy(self, promo: Promotion, why: Authorization) -> float | None:
        body, spec, p = promo.body, promo.spec, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        if agent_dispatch.mixed_targets(env_spec):
            _move(
                p,
                "Blocked",
                "MixedTargets",
                f"environment {env_name} targets both namespaces here and agents; split it "
                "into two Environments (one after the other in the path)",
            )
            return None
        now = datetime.now(UTC)
        agents = await asyncio.to_thread(agent_dispatch.list_agents)
        chosen = []
        for index, target in agent_dispatch.agent_targets(env_spec):
            assert target.agent_selector is not None
            agent = agent_dispatch.choose(agents, target.agent_selector, now)
            if agent is None:
                _move(
                    p,
                    "Pending",
                    "NoReadyAgent",
                    f"waiting: no Ready agent with {agent_dispatch.CAPABILITY} matches target "
                    f"{index} of {env_name} (stella agent list)",
                )
                return 15.0
            chosen.append((index, target, agent))
        report = await verify_release_images(
            self.registry,
            [c.image for c in spec.components],
            self._credentials(env_spec),
        )
        # The supply-chain policy holds for agent targets too (issue 17): checked here, by
        # the hub's registry view, before any task is queued.
        chain: SupplyChainReport | float | None = await self._gates_before_deploy(promo, report)
        if not isinstance(chain, SupplyChainReport):
            return chain
        if not await self.locks.acquire(env_name, key_s):
            _move(p, "Pending", "InFlight", f"another release is deploying to {env_name}")
            return 10.0
        attempt = p.attempt + 1
        named = [
            {
                "agent": str(a["metadata"]["name"]),
                "certificateSerial": str(
                    ((a.get("status") or {}).get("certificate") or {}).get("serial")
                ),
                "target": str(i),
                "namespace": str(tg.namespace),
            }
            for i, tg, a in chosen
        ]
        try:
            await self.hooks.authorized(
                promo, why, attempt, agents=named, supply_chain=chain.evidence()
            )
        except EvidenceError as exc:
            return float(await self._evidence_pending(promo, exc))
        p.attempt = attempt
        who = ", ".join(f"{n['agent']} (certificate {n['certificateSerial']})" for n in named)
        _move(p, "Deploying", "DispatchedToAgent", f"sent to agent {who}")
        p.since = now
        # Durable before any task exists: a restart follows these tasks, never makes others.
        await persist(self.view, promo)
        metrics.PROMOTIONS_IN_FLIGHT.labels(env_name).inc()
        namespace = load().namespace
        uid = promo.uid
        for index, target, agent in chosen:
            task = agent_dispatch.task_body(
                promo, agent_dispatch.task_name(uid, env_name, index, attempt), agent, target, now
            )
            await asyncio.to_thread(agent_dispatch.create_task, namespace, task)
        await kubeio.emit(
            body, "Deploying", f"{env_name}: {spec.version} sent to agent {who} (attempt {attempt})"
        )
        return POLL

    async def _follow_agents(self, promo: Promotion) -> float | None:
        spec, p = promo.spec, promo.p
        env_name, env_spec = promo.env_name, promo.env_spec
        deployed = await self._agent_tasks(promo)
        result = agent_dispatch.outcome([t for _i, _tg, _f, t in deployed])
        started = p.since or datetime.now(UTC)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        timeout = parse_duration(env_spec.rollout.timeout).total_seconds()
        if result.state == "Succeeded":
            # A rollback already made (before a restart, too) is followed, never made twice,
            # and the step that caused it (PostDeploy, a verification) is not run again.
            made = await self._rollbacks_made(deployed)
            why = next(filter(None, map(agent_rollback.why_of, made.values())), None)
            if why is None:
                after = await self._plugin_steps_after_rollout(promo)
                if after is None:
                    then: float | None = await self._rolled_out(
                        promo, elapsed, f"{spec.version} is live in {env_name}: {result.message}"
                    )
                    return then
                return await self._agents_failed_after_rollout(
                    promo, agent_rollback.Why(after.reason, after.message), elapsed, deployed
                )
            return await self._roll_agents_back(promo, why, deployed, made, elapsed)
        if result.state == "Failed":
            _move(p, "Failed", "AgentTaskFailed", result.message)
            outcome = "RolledBack" if result.rolled_back else "Failed"
            await self._finish(promo, outcome, elapsed)
            return None
        if elapsed > timeout + REPORT_GRACE_SECONDS:
            _move(
                p,
                "Failed",
                "AgentUnresponsive",
                f"no agent reported an outcome within {env_spec.rollout.timeout}: {result.message}",
            )
            await self._finish(promo, "Failed", elapsed)
            return None
        return POLL

    async def _agents_failed_after_rollout(
        self,
        promo: Promotion,
        why: agent_rollback.Why,
        elapsed: float,
        deployed: Sequence[tuple[int, Any, str, Any]] | None = None,
    ) -> float | None:
        """Every agent reported success, then the promotion failed here (a PostDeploy step,
        the verification): the agents' clusters are rolled back when the Environment says
        so (one rollback task per target, the same however the failure came), else they
        keep the Release and the message says so."""
        p, spec = promo.p, promo.spec
        if not promo.env_spec.rollout.rollback_on_failure:
            _move(
                p,
                "Failed",
                why.reason,
                f"{why.message}; the agents' clusters keep {spec.version} "
                "(rollout.rollbackOnFailure is false: promote the previous Release)",
            )
            await self._finish(promo, "Failed", elapsed)
            return None
        if deployed is None:
            deployed = await self._agent_tasks(promo)
        made = await self._rollbacks_made(deployed)
        return await self._roll_agents_back(promo, why, deployed, made, elapsed)

    async def _agent_tasks(self, promo: Promotion) -> list[tuple[int, Any, str, Any]]:
        """Per agent target of the current attempt: (index, target, its first task's name,
        the task now carrying it — following replacements)."""
        namespace, uid, env_name = load().namespace, promo.uid, promo.env_name
        out = []
        for index, target in agent_dispatch.agent_targets(promo.env_spec):
            name = agent_dispatch.task_name(uid, env_name, index, promo.p.attempt)
            first = await asyncio.to_thread(agent_dispatch.get_task, namespace, name)
            out.append((index, target, name, await self._current_task(promo, target, first)))
        return out

    async def _rollbacks_made(
        self, deployed: Sequence[tuple[int, Any, str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """The rollback tasks that exist already for these targets, by name."""
        namespace, made = load().namespace, {}
        for name in (agent_rollback.rollback_name(first) for _i, _tg, first, _t in deployed):
            found = await asyncio.to_thread(agent_dispatch.get_task, namespace, name)
            if found is not None:
                made[name] = found
        return made

    async def _roll_agents_back(
        self,
        promo: Promotion,
        why: agent_rollback.Why,
        deployed: Sequence[tuple[int, Any, str, Any]],
        made: dict[str, dict[str, Any]],
        elapsed: float,
    ) -> float | None:
        """Put back what ran before on every target (one rollback task each, to the agent
        that deployed there), then fail the promotion saying what was and was not rolled
        back; the lock is held meanwhile. `made`: the rollback tasks that already exist."""
        p, now, namespace = promo.p, datetime.now(UTC), load().namespace
        results = []
        for index, target, first, task in deployed:
            plan = agent_rollback.plan(index, first, task, promo.env_spec, why, now)
            current = made.get(plan.name)
            if plan.body is not None:
                if current is None:
                    current = await asyncio.to_thread(
                        agent_dispatch.create_task, namespace, plan.body
                    )
                current = await self._current_task(promo, target, current)
            results.append(agent_rollback.result_of(plan, current, now, REPORT_GRACE_SECONDS))
        if any(r is None for r in results):
            if p.reason != agent_rollback.ROLLING_BACK:
                _move(
                    p,
                    "Deploying",
                    agent_rollback.ROLLING_BACK,
                    f"{why.message}; rolling the agents' clusters back to the images that ran "
                    "before",
                )
                await persist(self.view, promo)
                await kubeio.emit(
                    promo.body, "RollingBack", f"{promo.env_name}: {p.message}", "Warning"
                )
            return POLL
        outcome, message = agent_rollback.summary(
            why, promo.spec.version, [r for r in results if r is not None]
        )
        _move(p, "Failed", why.reason, message)
        await self._finish(promo, outcome, elapsed)
        return None

    async def _current_task(
        self, promo: Promotion, target: Any, task: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The task now carrying this target: follows replacements, finishes one decided
        before a restart, and hands the task of a revoked or deleted agent to another."""
        namespace = load().namespace
        listed: list[list[dict[str, Any]]] = []

        async def all_agents() -> list[dict[str, Any]]:  # listed once, only when needed
            if not listed:
                listed.append(await asyncio.to_thread(agent_dispatch.list_agents))
            return listed[0]

        while task is not None:
            replaced = (task.get("status") or {}).get("replacedBy")
            if replaced:
                found = await asyncio.to_thread(
                    agent_dispatch.get_task, namespace, str(replaced["task"])
                )
                if found is None:  # decided, then stopped before making it: make it now
                    await self._record_revoked(promo, task, await all_agents(), dict(replaced))
                    found = await asyncio.to_thread(
                        agent_dispatch.create_task,
                        namespace,
                        agent_redispatch.replacement_body(
                            task, str(replaced["agent"]), str(replaced["task"])
                        ),
                    )
                task = found
                continue
            if agent_redispatch.phase(task) in TERMINAL_TASK_PHASES:
                return task
            agents = await all_agents()
            why = agent_redispatch.why_gone(task, agents)
            if why is None:
                return task
            name = str(task["metadata"]["name"])
            gone = str((task.get("spec") or {}).get("agent"))
            successor = None
            if agent_redispatch.depth(name) < agent_redispatch.MAX_REPLACEMENTS:
                successor = agent_dispatch.choose(
                    [a for a in agents if a["metadata"]["name"] != gone],
                    target.agent_selector,
                    datetime.now(UTC),
                )
            replacement = (
                {
                    "task": agent_redispatch.replacement_name(name),
                    "agent": str(successor["metadata"]["name"]),
                }
                if successor is not None
                else None
            )
            status = agent_redispatch.failed_status(task, why, replacement)
            if not await asyncio.to_thread(
                agent_dispatch.replace_task_status, namespace, task, status
            ):
                return task  # the hub wrote a report meanwhile: look again at the next poll
            log.warning(
                "agent %s was %s mid-task %s: %s",
                gone,
                why,
                name,
                f"re-dispatched to agent {replacement['agent']}" if replacement else "failed",
            )
            task = {**task, "status": status}
            if replacement is None:
                await self._record_revoked(promo, task, agents, None)
                return task
        return task

    async def _record_revoked(
        self,
        promo: Promotion,
        task: dict[str, Any],
        agents: list[dict[str, Any]],
        replacement: dict[str, str] | None,
    ) -> None:
        def agent(name: object) -> dict[str, Any] | None:
            return next((a for a in agents if a["metadata"]["name"] == name), None)

        gone = agent((task.get("spec") or {}).get("agent"))
        why = "revoked" if gone is not None else "deleted"
        if replacement is not None:
            replacement = {
                **replacement,
                "certificateSerial": agent_redispatch.serial_of(agent(replacement["agent"])),
            }
        await self.hooks.agent_revoked(
            promo,
            task,
            why,
            str((task.get("status") or {}).get("certificateSerial") or "-"),
            replacement,
        )
