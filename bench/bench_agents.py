"""Agent hub benchmark (prints figures; never a test).

With --agents enrolled agents, each its own session over mTLS to the operator's hub:
1. dispatch latency: from an AgentTask written (as the engine writes it) to the agent's
   long poll returning it — p50/p99;
2. task round trip: written -> Acknowledged -> Running -> Succeeded reported through the
   hub — p50/p99, beside the same API writes done directly by one client (create, then
   three GET + status replace), measured in the same run, and their ratio;
3. throughput: tasks/s completed with all agents working at once;
4. hub memory per connected agent: the operator's RSS with every agent logged in and
   holding a long poll open, minus its RSS before, divided by the agents.

The agents here report without deploying (the rollout in their own cluster is theirs,
not the hub's): the figures are the hub's. Real parts: the local control plane, OpenBao
(the agents' CA), the operator as its own process serving the hub.

    .venv/bin/python bench/bench_agents.py [--agents 10] [--tasks 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "hack")]

from kubernetes import client  # noqa: E402
from tests.e2e.conftest import hub_settings, start_operator  # noqa: E402
from tests.kube_support import api_client_for  # noqa: E402

from devenv.bootstrap import bootstrap  # noqa: E402
from devenv.controlplane import ControlPlane  # noqa: E402
from devenv.services import OpenBao  # noqa: E402
from devenv.webhooks import unregister  # noqa: E402
from stella.agents.client import HubClient, Identity, Session  # noqa: E402
from stella.agents.enrollment import new_token  # noqa: E402
from summary import record  # noqa: E402

G, V, NS = "stella.io", "v1alpha1", "stella-system"
DIGEST = "sha256:" + "a" * 64


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def task_body(name: str, agent: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "AgentTask",
        "metadata": {"name": name, "labels": {"stella.io/agent": agent}},
        "spec": {
            "agent": agent,
            "environment": "remote",
            "release": {"namespace": "shop", "name": "r", "uid": str(uuid.uuid4()), "version": "1"},
            "namespace": "shop",
            "components": [
                {
                    "name": "web",
                    "image": f"registry.example.com/shop/web@{DIGEST}",
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
            "deadline": (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def enrol(admin: client.ApiClient, url: str, hub_ca: Path, work: Path, count: int) -> list[Session]:
    api = client.CustomObjectsApi(admin)
    sessions = []
    for i in range(count):
        name = f"bench-{i}-{uuid.uuid4().hex[:4]}"
        token, digest = new_token()
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        api.create_cluster_custom_object(
            G,
            V,
            "agents",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Agent",
                "metadata": {"name": name},
                "spec": {
                    "capabilities": ["deploy.kubernetes"],
                    "enrollment": {"tokenSha256": digest, "expiresAt": expires},
                },
            },
        )
        identity = Identity(work / name)
        out = HubClient(url, hub_ca).enroll(name, token, identity.new_csr(name))
        identity.keep(out["certificate"], out["ca"])
        sessions.append(Session(HubClient(url, hub_ca, identity)))
    return sessions


def agent_name(session: Session) -> str:
    return Path(session.hub.cert[0]).parent.name if session.hub.cert else ""


def run_tasks(
    admin: client.ApiClient, sessions: list[Session], total: int
) -> dict[str, list[float]]:
    api = client.CustomObjectsApi(admin)
    created: dict[str, float] = {}
    received: dict[str, float] = {}
    done: dict[str, float] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def agent_loop(session: Session) -> None:
        while not stop.is_set():
            for task in session.hub.tasks(session.access, wait=5):
                name = task["name"]
                with lock:
                    received.setdefault(name, time.monotonic())
                for phase in ("Acknowledged", "Running", "Succeeded"):
                    session.hub.report(session.access, name, phase, {"message": "bench"})
                with lock:
                    done[name] = time.monotonic()

    threads = [threading.Thread(target=agent_loop, args=(s,), daemon=True) for s in sessions]
    for t in threads:
        t.start()
    names = [agent_name(s) for s in sessions]
    started = time.monotonic()
    for i in range(total):
        name = f"task-{i}-{uuid.uuid4().hex[:6]}"
        created[name] = time.monotonic()
        api.create_namespaced_custom_object(
            G, V, NS, "agenttasks", task_body(name, names[i % len(names)])
        )
        time.sleep(0.01)
    deadline = time.monotonic() + 120
    while len(done) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    wall = time.monotonic() - started
    stop.set()
    return {
        "dispatch": [received[n] - created[n] for n in created if n in received],
        "round_trip": [done[n] - created[n] for n in created if n in done],
        "wall": [wall],
        "done": [float(len(done))],
    }


def direct_floor(admin: client.ApiClient, n: int) -> list[float]:
    """The same API writes by one client: create, then three GET + status replace."""
    api: Any = client.CustomObjectsApi(admin)  # custom objects: plain dicts, typed object
    out = []
    for i in range(n):
        name = f"floor-{i}-{uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        api.create_namespaced_custom_object(G, V, NS, "agenttasks", task_body(name, "floor"))
        for phase in ("Acknowledged", "Running", "Succeeded"):
            body = api.get_namespaced_custom_object(G, V, NS, "agenttasks", name)
            body["status"] = {**(body.get("status") or {}), "phase": phase, "message": "bench"}
            api.replace_namespaced_custom_object_status(G, V, NS, "agenttasks", name, body)
        out.append(time.monotonic() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--memory-agents", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    cp = ControlPlane(work / "cluster").up()
    bao = OpenBao(work / "bao").start()
    try:
        bootstrap(cp)
        admin = api_client_for(str(cp.kubeconfig), "admin")
        env, url, hub_ca = hub_settings(bao.addr, bao.root_token, work)
        op = start_operator(cp, work / "operator", env)
        try:
            sessions = enrol(admin, url, hub_ca, work / "agents", args.agents)
            floor = direct_floor(admin, 50)
            got = run_tasks(admin, sessions, args.tasks)
            dispatch, trip = got["dispatch"], got["round_trip"]
            rate = got["done"][0] / got["wall"][0]
            print(f"agents {args.agents}, tasks {args.tasks} ({int(got['done'][0])} done)")
            print(
                f"dispatch (written -> agent has it): p50 {1000 * pct(dispatch, 0.5):.1f} ms  p99 {1000 * pct(dispatch, 0.99):.1f} ms"
            )
            print(
                f"round trip (written -> Succeeded via the hub): p50 {1000 * pct(trip, 0.5):.1f} ms  "
                f"p99 {1000 * pct(trip, 0.99):.1f} ms; direct API writes p50 {1000 * statistics.median(floor):.1f} ms "
                f"p99 {1000 * pct(floor, 0.99):.1f} ms; ratio p50 {pct(trip, 0.5) / statistics.median(floor):.2f}x"
            )
            print(f"throughput: {rate:.1f} tasks/s with {args.agents} agents")
            record(
                "agents",
                "task dispatch p99",
                1000 * pct(dispatch, 0.99),
                "ms",
                note="written -> long poll returns",
            )
            record(
                "agents",
                "task round trip p50 vs direct writes",
                pct(trip, 0.5),
                "s",
                floor=statistics.median(floor),
                note="context",
            )
            record("agents", f"tasks/s with {args.agents} agents", rate, "tasks/s")
            # Memory: more agents, each logged in and holding a long poll open.
            before = rss_mib(op.proc.pid)
            extra = enrol(admin, url, hub_ca, work / "agents-mem", args.memory_agents)
            pool = ThreadPoolExecutor(max_workers=args.memory_agents)
            polls = [pool.submit(s.hub.tasks, s.access, 20) for s in extra]
            time.sleep(3)
            after = rss_mib(op.proc.pid)
            per = 1024 * (after - before) / args.memory_agents
            print(
                f"hub memory: {before:.1f} -> {after:.1f} MiB with {args.memory_agents} more agents connected: {per:.0f} KiB per agent"
            )
            record("agents", "hub memory per connected agent", per, "KiB")
            for f in polls:
                f.result()
            pool.shutdown()
        finally:
            op.proc.stop()
            unregister(cp)
    finally:
        bao.stop()
        cp.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
