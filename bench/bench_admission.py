"""How long admission takes per request: prints p50/p99 per rule, asserts nothing.

.venv/bin/python bench/bench_admission.py

Snapshot: 1,000 Releases / 3 Environments / 2,000 Approvals / a few namespaces, held in
the operator's ClusterView (the glue passes that). Each figure is the wall time of one
validate()/mutate() call, as a webhook handler would make it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from stella.admission import AdmissionPolicy, RateLimiter, Request, mutate, validate
from stella.engine.view import ClusterView
from stella.policy.identity import Identity, format_identity

OPERATOR = "system:serviceaccount:stella-system:stella-operator"
POLICY = AdmissionPolicy(operator_username=OPERATOR)
REGISTRY = "registry.example.com"
GROUP = "release-approvers"
RELEASES, APPROVALS = 1_000, 2_000


def person(i: int) -> Identity:
    return Identity(f"user{i}", f"uid{i}", frozenset({GROUP, "system:authenticated"}))


def img(n: int, repo: str = "shop/web") -> str:
    return f"{REGISTRY}/{repo}@sha256:{n:064x}"


def release(i: int) -> dict[str, Any]:
    phase = "Deployed" if i % 10 == 0 else "WaitingForApproval"
    return {
        "metadata": {
            "name": f"rel-{i}",
            "namespace": "shop",
            "resourceVersion": str(i + 1),
            "annotations": {"stella.io/requester": format_identity(person(i % 50))},
        },
        "spec": {
            "version": f"1.0.{i}",
            "components": [
                {
                    "name": c,
                    "image": img(i * 3 + k, f"shop/{c}"),
                    "workload": {"kind": "Deployment", "name": c, "container": c},
                }
                for k, c in enumerate(("web", "api", "worker"))
            ],
            "environments": ["dev", "staging", "prod"],
        },
        "status": {
            "environments": [
                {"name": "dev", "phase": "Deployed"},
                {"name": "staging", "phase": "Deployed"},
                {"name": "prod", "phase": phase},
            ]
        },
    }


def approval(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"appr-{i}",
            "namespace": "shop",
            "annotations": {"stella.io/approver": format_identity(person(100 + i % 20))},
        },
        "spec": {"release": f"rel-{i % RELEASES}", "environment": "prod", "decision": "Approve"},
    }


def snapshot() -> ClusterView:
    view = ClusterView()
    base = {"allowedRegistries": [REGISTRY]}
    view.environments["dev"] = {"metadata": {"name": "dev"}, "spec": base}
    view.environments["staging"] = {
        "metadata": {"name": "staging"},
        "spec": {**base, "requires": ["dev"]},
    }
    view.environments["prod"] = {
        "metadata": {"name": "prod"},
        "spec": {
            **base,
            "requires": ["staging"],
            "releaseNamespaces": {"matchLabels": {"team": "shop"}},
            "targets": [{"namespace": "shop-prod"}],
            "registryCredentials": "vault:secret/registry/prod#token",
            "approvals": {"required": 2, "approverGroups": [GROUP]},
            "freezeWindows": [
                {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berlin"}
            ],
            "requireApprovedDigests": True,
        },
    }
    view.namespaces["shop"] = {"metadata": {"name": "shop", "labels": {"team": "shop"}}}
    view.namespaces["shop-prod"] = {
        "metadata": {"name": "shop-prod", "labels": {"stella.io/managed": "true"}}
    }
    for i in range(RELEASES):
        view.releases[("shop", f"rel-{i}")] = release(i)
    for i in range(APPROVALS):
        view.approvals[("shop", f"appr-{i}")] = approval(i)
    return view


def measure(fn: Callable[[], object], n: int) -> tuple[float, float, int]:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    p50 = statistics.median(samples) / 1e3
    p99 = samples[int(len(samples) * 0.99) - 1] / 1e3
    return p50, p99, n


def main() -> None:
    view = snapshot()
    requester = person(7)
    approver = person(999)
    new_release = release(RELEASES + 1)
    new_release["metadata"]["annotations"]["stella.io/requester"] = format_identity(requester)
    new_approval = {
        "metadata": {
            "generateName": "rel-5-prod-",
            "namespace": "shop",
            "annotations": {"stella.io/approver": format_identity(approver)},
        },
        "spec": {
            "release": "rel-5",
            "environment": "prod",
            "decision": "Approve",
            "comment": "CAB-1",
        },
    }
    environment = {
        "metadata": {"name": "canary"},
        "spec": dict(view.environments["prod"]["spec"]),
    }
    pod = {
        "metadata": {"name": "web-1", "namespace": "shop-prod"},
        "spec": {"containers": [{"name": "web", "image": img(0, "shop/web")}]},
    }
    deployment = {
        "metadata": {"name": "web", "namespace": "shop-prod"},
        "spec": {"template": {"spec": pod["spec"]}},
    }
    agent = {"metadata": {"name": "eu-1"}, "spec": {"certificateFingerprint": "ab" * 32}}
    old_appr = view.approvals[("shop", "appr-1")]

    def req(op: str, kind: str, obj: Any, user: Identity, old: Any = None) -> Request:
        ns = (obj or old)["metadata"].get("namespace")
        return Request(op, kind, ns, None, user, obj, old)  # type: ignore[arg-type]

    churn = iter(range(10**9))

    def churned_pod() -> object:
        # a Release changed since the last request (as during a rollout): the index resyncs
        key = ("shop", f"rel-{10 * (next(churn) % 100) + 1}")
        body = dict(view.releases[key])
        body["metadata"] = {**body["metadata"], "resourceVersion": str(next(churn))}
        view.releases[key] = body
        return validate(req("CREATE", "Pod", pod, approver), view, POLICY)

    limiter = RateLimiter(rate=50, burst=100, exempt={OPERATOR})

    def v(op: str, kind: str, obj: Any, user: Identity, old: Any = None) -> Callable[[], object]:
        request = req(op, kind, obj, user, old)
        return lambda: validate(request, view, POLICY)

    stamp = req("CREATE", "Release", new_release, requester)
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("validate Release CREATE", v("CREATE", "Release", new_release, requester), 3000),
        ("mutate Release CREATE", lambda: mutate(stamp, view, POLICY), 5000),
        ("validate Approval CREATE", v("CREATE", "Approval", new_approval, approver), 3000),
        ("validate Approval UPDATE", v("UPDATE", "Approval", old_appr, approver, old_appr), 5000),
        ("validate Approval DELETE", v("DELETE", "Approval", None, approver, old_appr), 5000),
        ("validate Environment CREATE", v("CREATE", "Environment", environment, approver), 2000),
        ("validate Agent CREATE", v("CREATE", "Agent", agent, approver), 5000),
        ("validate Pod CREATE (approved)", v("CREATE", "Pod", pod, approver), 5000),
        ("validate Pod CREATE (a release changed)", churned_pod, 2000),
        ("validate Deployment CREATE", v("CREATE", "Deployment", deployment, approver), 5000),
        ("RateLimiter.allow", lambda: limiter.allow("user1"), 20000),
    ]
    print(f"snapshot: {RELEASES} Releases, 3 Environments, {APPROVALS} Approvals")
    print(f"{'case':42} {'p50 µs':>9} {'p99 µs':>9} {'n':>7}")
    for name, fn, n in cases:
        p50, p99, count = measure(fn, n)
        print(f"{name:42} {p50:9.1f} {p99:9.1f} {count:7d}")


if __name__ == "__main__":
    main()
