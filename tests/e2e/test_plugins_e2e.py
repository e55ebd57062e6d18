"""Workflow plugins end to end (issue 16, T7), with the operator as its own process.

A platform engineer (frank) trusts a publisher and installs plugins; admission refuses a
tampered manifest and an unknown publisher. A smoke-test plugin calls a test service on
loopback and gates a real promotion. An evil plugin that tries undeclared egress is
stopped before its request leaves, signalled (metric, Event, security log, evidence) and
quarantined cluster-wide, while the smoke-gated Environment goes on unaffected; only a
person holding the `reenable` verb lifts the quarantine, in their own name. A plugin that
loops forever is stopped by its fuel limit and reported.

One operator and one control plane for the module.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests import plugin_support as ps
from tests.e2e.conftest import OperatorProcess, running_operator
from tests.e2e.shop import Shop
from tests.kube_support import eventually, grant_release_retention

from devenv.controlplane import ControlPlane
from stella.evidence.manifest import L_KIND, chain_selector
from stella.plugins.reenable import REENABLE_ANNOTATION
from stella.policy.identity import Identity, format_identity

G, V = "stella.io", "v1alpha1"
URL = [{"name": "url", "required": True}]
KEEP = 5  # STELLA_KEEP_FINISHED_RELEASES for this module's operator


class Service:
    """A loopback HTTP service: answers `status` on every path and counts the requests."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/healthz") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class World:
    op: OperatorProcess
    shop: Shop
    admin: client.ApiClient
    users: dict[str, client.ApiClient]
    publisher: ps.Publisher
    service: Service
    other: Service  # a host:port no manifest declares
    modules: Path
    kube: ControlPlane
    registry: Any
    plugins: list[str] = field(default_factory=list)

    def custom(self, user: str = "frank") -> Any:  # its calls return plain dicts, typed object
        return client.CustomObjectsApi(self.users[user] if user != "admin" else self.admin)

    def plugin_body(
        self, name: str, wat: str, *, oci: bool = False, **manifest: Any
    ) -> dict[str, Any]:
        """A signed Plugin; its module a file on the operator's machine, or (oci) an
        artifact pushed to the loopback registry and pinned by digest."""
        module = ps.build(wat)
        path = self.modules / f"{name}-{uuid.uuid4().hex[:6]}.wasm"
        path.write_bytes(module)
        source = (
            {"image": ps.push_module(self.registry, f"plugins/{name}", module)}
            if oci
            else {"file": str(path)}
        )
        envelope = self.publisher.sign(
            ps.manifest_for(module, name=name, publisher=self.publisher.name, **manifest)
        )
        return {
            "apiVersion": f"{G}/{V}",
            "kind": "Plugin",
            "metadata": {"name": name},
            "spec": {"manifest": envelope, "module": source},
        }

    def install(self, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.custom().create_cluster_custom_object(G, V, "plugins", body)
        self.plugins.append(body["metadata"]["name"])
        return out

    def plugin(self, name: str) -> dict[str, Any]:
        got: dict[str, Any] = self.custom("admin").get_cluster_custom_object(G, V, "plugins", name)
        return got

    def packets(self, env: str) -> list[str]:
        items = (
            client.CoreV1Api(self.admin)
            .list_namespaced_config_map("stella-system", label_selector=chain_selector(env))
            .items
        )
        return [(cm.metadata.labels or {})[L_KIND] for cm in items if cm.metadata]

    def events(self, name: str, reason: str) -> list[Any]:
        return [
            e
            for e in client.CoreV1Api(self.admin).list_namespaced_event("default").items
            if e.involved_object.name == name and e.reason == reason
        ]


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    work = tmp_path_factory.mktemp("plugins-e2e")
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    publisher = ps.Publisher(work, f"platform-{uuid.uuid4().hex[:4]}")
    service, other = Service(503), Service(200)
    env = {
        "STELLA_INSECURE_REGISTRIES": registry.host,
        "STELLA_PROMOTION_LOOP_THRESHOLD": "3",
        # The opt-in retention (T10), more than any other test here leaves finished in
        # one namespace: only test_retention's own namespace reaches it.
        "STELLA_KEEP_FINISHED_RELEASES": str(KEEP),
    }
    grant_release_retention(kube_admin)
    with running_operator(kube, work, env) as op:
        w = World(
            op,
            Shop(kube_admin, kube_as, registry, ns),
            kube_admin,
            kube_as,
            publisher,
            service,
            other,
            work,
            kube,
            registry,
        )
        w.custom().create_cluster_custom_object(
            G,
            V,
            "pluginpublishers",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "PluginPublisher",
                "metadata": {"name": publisher.name},
                "spec": {
                    "keys": [{"keyId": k, "publicKey": pem} for k, pem in publisher.trust.items()]
                },
            },
        )
        try:
            yield w
        finally:
            w.shop.cleanup()
            api = w.custom("admin")
            for name in w.plugins:
                with contextlib.suppress(client.exceptions.ApiException):
                    api.delete_cluster_custom_object(G, V, "plugins", name)
            api.delete_cluster_custom_object(G, V, "pluginpublishers", publisher.name)
            core.delete_namespace(ns)
            service.stop()
            other.stop()
            client.RbacAuthorizationV1Api(kube_admin).delete_cluster_role_binding(
                "stella-operator-retention"
            )


def _refusal(call: Any) -> str:
    with pytest.raises(client.exceptions.ApiException) as err:
        call()
    assert err.value.status in (400, 403, 422), err.value
    return str(json.loads(err.value.body or "{}").get("message", ""))


def _network(service: Service) -> list[dict[str, Any]]:
    return [{"host": "127.0.0.1", "port": service.port, "scheme": "http"}]


def test_admission_refuses_tampered_and_untrusted_manifests(world: World) -> None:
    body = world.plugin_body(
        "adm-smoke", ps.SMOKE, capabilities={"network": _network(world.service)}
    )
    # Widen the network capability after signing: the signature no longer verifies.
    doc = json.loads(base64.b64decode(body["spec"]["manifest"]["payload"]))
    doc["capabilities"]["network"].append({"host": "evil.example", "port": 443, "scheme": "https"})
    tampered = json.loads(json.dumps(body))
    tampered["spec"]["manifest"]["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
    message = _refusal(lambda: world.install(tampered))
    assert "altered after signing" in message, message

    stranger = ps.Publisher(world.modules, "stranger")
    module = ps.build(ps.LOOP)
    path = world.modules / "stranger.wasm"
    path.write_bytes(module)
    untrusted = {
        **body,
        "spec": {
            "manifest": stranger.sign(
                ps.manifest_for(module, name="adm-smoke", publisher="stranger")
            ),
            "module": {"file": str(path)},
        },
    }
    message = _refusal(lambda: world.install(untrusted))
    assert "no trusted publisher holds the signing key" in message, message

    unsigned = json.loads(json.dumps(body))
    unsigned["spec"]["manifest"]["signatures"] = []
    assert "not signed" in _refusal(lambda: world.install(unsigned))

    # alice is no platform engineer: RBAC alone refuses her.
    with pytest.raises(client.exceptions.ApiException) as err:
        world.custom("alice").create_cluster_custom_object(G, V, "plugins", body)
    assert err.value.status == 403
    # The genuine one is admitted.
    world.install(body)


def test_smoke_plugin_gates_a_real_promotion(world: World) -> None:
    shop = world.shop
    world.install(
        world.plugin_body(
            "smoke",
            ps.SMOKE,
            oci=True,  # pulled from the registry by digest
            capabilities={"network": _network(world.service)},
            inputs=URL,
        )
    )
    env = shop.environment(
        "gated",
        replicas=1,
        plugins=[{"plugin": "smoke", "at": "Gate", "inputs": {"url": world.service.url()}}],
    )
    image = shop.image("2.0")
    shop.release("rel-a", image, ["gated"])

    # The service answers 503: the gate holds the Release, nothing is deployed.
    held = shop.wait_reason("rel-a", "gated", "PluginFailed", 90)
    assert held["phase"] == "Pending"
    assert "service did not answer 200" in held["message"], held
    assert shop.deployed_image("gated") != image
    assert world.service.hits and world.service.hits[0] == "/healthz"

    # The service is healthy: the next ask of the gate lets the promotion through.
    world.service.status = 200
    shop.wait_phase("rel-a", "gated", "Deployed", timeout=120)
    assert shop.deployed_image("gated") == image
    last = world.plugin("smoke")["status"]["lastRun"]
    assert last["outcome"] == "Passed" and last["fuelUsed"] > 0
    kinds = world.packets(env)
    assert kinds.count("PluginRun") >= 2 and "PromotionDeployed" in kinds
    assert world.op.metric("stella_plugin_runs_total", plugin="smoke", outcome="Passed") >= 1
    verified = world.plugin("smoke")["status"]["verified"]
    assert (verified["publisher"], verified["name"]) == (world.publisher.name, "smoke")


def test_evil_plugin_is_contained_signalled_and_quarantined(world: World) -> None:
    shop = world.shop
    world.install(
        world.plugin_body(
            "evil",
            ps.EGRESS,
            capabilities={"network": _network(world.service)},
            inputs=[*URL, {"name": "exfil"}],
        )
    )
    env = shop.environment(
        "evil",
        replicas=1,
        plugins=[
            {
                "plugin": "evil",
                "at": "Gate",
                "inputs": {
                    "url": world.service.url(),
                    "exfil": world.other.url("/steal?d=secret"),
                },
            }
        ],
    )
    image = shop.image("3.0")
    shop.release("rel-e", image, ["evil"])

    # The violation stops the gate; the next ask finds the plugin quarantined (either may be
    # the reason seen first: the engine asks again within moments).
    shop.wait_reason("rel-e", "evil", ("PluginCapabilityViolation", "PluginQuarantined"), 90)
    assert world.other.hits == []  # the undeclared request never left
    quarantine = eventually(
        lambda: (world.plugin("evil").get("status") or {}).get("quarantine"),
        what="evil quarantined",
    )
    assert f"127.0.0.1:{world.other.port}" in quarantine["message"]
    assert quarantine["environment"] == env
    eventually(lambda: world.events("evil", "PluginQuarantined"), what="Event on the Plugin")
    assert world.op.metric("stella_security_events_total", signal="PluginCapabilityViolation") >= 1
    assert "security event PluginCapabilityViolation" in world.op.logs()
    assert "PluginQuarantined" in world.packets(env)
    # Quarantined: the next ask does not run it at all.
    shop.wait_reason("rel-e", "evil", "PluginQuarantined", 60)
    assert shop.deployed_image("evil") != image

    # Nothing else affected: the smoke-gated Environment still promotes.
    world.service.status = 200
    image_b = shop.image("3.1")
    shop.release("rel-b", image_b, ["gated"])
    shop.wait_phase("rel-b", "gated", "Deployed", timeout=120)

    # Lifting it: alice may not write the annotation in her own name (no reenable verb);
    # frank may not write it in someone else's; frank in his own is admitted.
    since = quarantine["since"]

    def reenable(user: str, who: Identity) -> Any:
        ann = json.dumps({"by": format_identity(who), "quarantine": since, "reason": "INC-7"})
        return world.custom(user).patch_cluster_custom_object(
            G, V, "plugins", "evil", {"metadata": {"annotations": {REENABLE_ANNOTATION: ann}}}
        )

    alice = Identity("alice", _uid(world, "alice"), frozenset(_groups(world, "alice")))
    assert "forbidden" in _refusal(lambda: reenable("alice", alice))  # RBAC: no patch
    bob = Identity("bob", "", frozenset())
    assert "must name you" in _refusal(lambda: reenable("frank", bob))
    # frank, through the CLI, in his own name (it asks the API server who he is).
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "stella"),
            "plugin",
            "reenable",
            "evil",
            "--reason",
            "INC-7: egress reviewed",
        ],
        env={**os.environ, "KUBECONFIG": str(world.kube.kubeconfig_for("frank"))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Plugin evil re-enabled by frank" in out.stdout
    # Re-enabled, it runs again, tries again, and is quarantined again (a new quarantine).
    eventually(
        lambda: (world.plugin("evil")["status"].get("quarantine") or {}).get("since") != since,
        timeout=90,
        what="evil quarantined anew after its re-enable",
    )
    assert world.other.hits == []
    # The quarantine holds for the module under any name.
    again = world.plugin_body(
        "evil-2",
        ps.EGRESS,
        capabilities={"network": _network(world.service)},
        inputs=[*URL, {"name": "exfil"}],
    )
    assert "quarantined as Plugin evil" in _refusal(lambda: world.install(again))
    # An auditor sees it in stella plugin list (the new quarantine, the last run).
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "stella"), "plugin", "list"],
        env={**os.environ, "KUBECONFIG": str(world.kube.kubeconfig_for("erin"))},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in listed.splitlines() if row.startswith("evil "))
    assert "CapabilityViolation" in line and world.publisher.name in line, listed
    # The lift itself is evidence naming frank.
    eventually(lambda: "PluginReenabled" in world.packets(env), what="PluginReenabled packet")


def test_runaway_plugin_is_stopped_by_its_fuel_and_reported(world: World) -> None:
    shop = world.shop
    world.install(world.plugin_body("spin", ps.LOOP))
    shop.environment("spin", replicas=1, plugins=[{"plugin": "spin", "at": "Gate"}])
    shop.release("rel-s", shop.image("4.0"), ["spin"])
    shop.wait_reason("rel-s", "spin", "PluginOutOfFuel", 90)
    eventually(lambda: world.events("spin", "PluginOutOfFuel"), what="Event on the Plugin")
    assert not (world.plugin("spin").get("status") or {}).get("quarantine")


def test_the_same_promotion_asked_in_a_loop_is_refused_and_signalled(world: World) -> None:
    """T10 in the engine: a bot re-requesting the promotion of one Release into one
    Environment. With this module's loop threshold (3), the first three Promote Actions are
    carried out, the fourth is Refused as PromotionLoop — a security signal (metric, Warning
    Event) with its evidence (ActionRefused)."""
    shop = world.shop
    env = shop.environment(
        "ploop",
        replicas=1,
        autoPromote=False,
        approvals={"required": 1, "approverGroups": ["release-approvers"]},
    )
    shop.release("rel-loop", shop.image("7.0"), ["ploop"])
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "Action",
        "metadata": {"generateName": "promote-"},
        "spec": {"action": "Promote", "environment": env, "release": f"{shop.release_ns}/rel-loop"},
    }
    bob: Any = client.CustomObjectsApi(world.users["bob"])
    names = [
        bob.create_cluster_custom_object(G, V, "actions", body)["metadata"]["name"]
        for _ in range(4)
    ]

    def statuses() -> list[dict[str, Any]] | None:
        out = [
            world.custom("admin").get_cluster_custom_object(G, V, "actions", n).get("status") or {}
            for n in names
        ]
        return out if all(s.get("phase") for s in out) else None

    final = eventually(statuses, timeout=90, what="all four Actions judged")
    assert [s["phase"] for s in final] == ["Done", "Done", "Done", "Refused"], final
    assert final[3]["reason"] == "PromotionLoop"
    assert "refused as a loop" in final[3]["message"]
    assert world.op.metric("stella_security_events_total", signal="PromotionLoop") >= 1
    eventually(lambda: world.events(env, "PromotionLoop"), timeout=30, what="the Event")
    eventually(
        lambda: world.packets(env).count("ActionRefused") == 1, timeout=30, what="the evidence"
    )
    # The promotion itself is unharmed: still waiting for its approval.
    assert shop.phase("rel-loop", "ploop") == "WaitingForApproval"


def test_opt_in_retention_deletes_finished_releases_beyond_the_newest_kept(world: World) -> None:
    """T10 memory: with STELLA_KEEP_FINISHED_RELEASES the operator keeps the newest KEEP
    finished Releases of a namespace and deletes older ones, never an unfinished one nor
    the one an Environment names; the evidence of the deleted ones stays."""
    ns = f"keep-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(world.admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    shop = Shop(world.admin, world.users, world.registry, ns)
    try:
        shop.environment("keep", replicas=1, suspended=True)
        image = shop.image("6.0")
        names = [f"keep{i}" for i in range(1, KEEP + 4)]  # keep1 .. keep8
        for name in names:
            shop.release(name, image, ["keep"])
        alice: Any = client.CustomObjectsApi(world.users["alice"])

        def left() -> list[str]:
            items = alice.list_namespaced_custom_object(G, V, ns, "releases")["items"]
            return sorted(i["metadata"]["name"] for i in items)

        # keep1..keep7 are Superseded, keep8 waits (suspended): the two oldest go.
        eventually(lambda: left() == names[2:], timeout=90, what="the two oldest deleted")
        assert shop.phase(names[-1], "keep") == "Halted"
        # Resumed, keep8 deploys and is current; the newest KEEP finished stay.
        client.CustomObjectsApi(world.admin).patch_cluster_custom_object(
            G, V, "environments", shop.env_name("keep"), {"spec": {"suspended": False}}
        )
        shop.wait_phase(names[-1], "keep", "Deployed", timeout=120)
        eventually(lambda: left() == names[-KEEP:], timeout=90, what="keep4..keep8 left")
        assert shop.environment_status("keep")["currentRelease"] == f"{ns}/{names[-1]}"
        assert world.op.metric("stella_releases_pruned_total") >= 3
    finally:
        shop.cleanup()
        core.delete_namespace(ns)


def _whoami(world: World, user: str) -> Any:
    review = client.AuthenticationV1Api(world.users[user]).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    )
    assert review.status is not None, review
    return review.status.user_info


def _uid(world: World, user: str) -> str:
    return str(_whoami(world, user).uid or "")


def _groups(world: World, user: str) -> list[str]:
    return list(_whoami(world, user).groups or [])
