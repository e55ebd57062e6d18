"""Issue 13, tasks: an agent deploys into ITS OWN cluster — a second local control plane —
holding only a kubeconfig for a ServiceAccount limited to the target namespace there.

`stella-agent run --tasks` takes its AgentTasks through the hub over mTLS, verifies the
digest against the registry itself, patches the Deployment in its cluster, follows the
rollout and reports. Tasks are written here as the engine writes them (the hub side) and
by the engine itself (a Release promoted from here into the agent's cluster). Also: a
wrong digest deploys nothing; another agent can neither see nor report on the task (T8);
an agent SIGKILLed mid-rollout resumes the same task without a second template change;
an agent revoked mid-task loses it to another matching agent, with evidence; the hub
(the operator) SIGKILLed mid-task deploys once; a failed PostDeploy step, or a failed
verification, rolls the agent's cluster back with one rollback task, across an operator
restart — and not at all when what ran before was not pinned by digest; the hub killed
after it spent a task's one-time credentials and before its answer arrived hands them
again to the same request, and the promotion deploys once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, hub_settings, running_operator
from tests.e2e.passport_admission import (
    PARAMS_WRITER,
    as_user,
    evidence_public_key,
    install_passport_policy,
    passport_params,
    pod_refusal,
    uninstall_passport_policy,
    wait_refused,
    writer_refusal,
)
from tests.kube_support import api_client_for, custom_objects, eventually, grant_configmap_writes

from devenv.controlplane import ControlPlane
from devenv.proc import Process
from devenv.services import OpenBao, Registry, push_image
from stella.agents.client import HubClient, HubError, Identity, Session
from stella.policy.digest_buckets import approved_digests, bucket_key

AGENT = str(Path(sys.executable).parent / "stella-agent")
STELLA = str(Path(sys.executable).parent / "stella")
G, V, NS = "stella.io", "v1alpha1", "stella-system"
TARGET_NS = "shop"


class Remote:
    """The agent's cluster: a Deployment `web` in `shop`, and a kubeconfig for a
    ServiceAccount that may only read and patch Deployments there."""

    def __init__(self, cp: ControlPlane, workdir: Path) -> None:
        self.cp = cp
        self.admin = api_client_for(str(cp.kubeconfig), "admin")
        manifests = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TARGET_NS}},
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "stella-agent", "namespace": TARGET_NS},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "stella-agent", "namespace": TARGET_NS},
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "resources": ["deployments", "statefulsets", "daemonsets"],
                        "verbs": ["get", "patch"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "stella-agent", "namespace": TARGET_NS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "stella-agent",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "stella-agent", "namespace": TARGET_NS}
                ],
            },
        ]
        cp.kubectl("admin", "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
        self.kubeconfig = self.kubeconfig_for(
            "stella-agent", TARGET_NS, workdir / "agent-kubeconfig"
        )

    def kubeconfig_for(self, account: str, namespace: str, path: Path) -> Path:
        """A kubeconfig holding only that ServiceAccount's token (an hour)."""
        made = client.CoreV1Api(self.admin).create_namespaced_service_account_token(
            account,
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            ),
        )
        assert made.status is not None
        token = made.status.token
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "remote",
                            "cluster": {
                                "server": self.cp.server,
                                "certificate-authority": str(self.cp.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "agent", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "agent",
                            "context": {
                                "cluster": "remote",
                                "user": "agent",
                                "namespace": namespace,
                            },
                        }
                    ],
                    "current-context": "agent",
                }
            )
        )
        path.chmod(0o600)
        return path

    def deployment(self, image: str, node_selector: dict[str, str] | None = None) -> None:
        apps: Any = client.AppsV1Api(self.admin)  # a dict body, sent as it is
        if self._exists():
            apps.delete_namespaced_deployment("web", TARGET_NS)
        eventually(lambda: not self._exists(), what="old web gone")
        apps.create_namespaced_deployment(
            TARGET_NS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "nodeSelector": node_selector,
                            "containers": [{"name": "web", "image": image}],
                        },
                    },
                },
            },
        )

    def _exists(self) -> bool:
        try:
            client.AppsV1Api(self.admin).read_namespaced_deployment("web", TARGET_NS)
            return True
        except client.exceptions.ApiException:
            return False

    def web(self) -> Any:
        return client.AppsV1Api(self.admin).read_namespaced_deployment("web", TARGET_NS)


class Rig:
    def __init__(
        self,
        kube: ControlPlane,
        remote: Remote,
        url: str,
        hub_ca: Path,
        registry: Registry,
        tmp: Path,
    ) -> None:
        self.kube = kube
        self.remote = remote
        self.url = url
        self.hub_ca = hub_ca
        self.registry = registry
        self.tmp = tmp
        self.admin = api_client_for(str(kube.kubeconfig), "admin")
        self.insecure = [registry.host]
        self.openbao: OpenBao | None = None
        self.operator: OperatorProcess | None = None
        self.publishers: dict[str, str] = {}  # plugin -> its publisher (smoke_plugin)

    def image(self, tag: str) -> str:
        digest = push_image(self.registry.url, "remote/web", tag, f"remote-{tag}".encode())
        return f"{self.registry.host}/remote/web@{digest}"

    def agent(self, name: str, labels: dict[str, str] | None = None) -> Path:
        """An enrolled agent's directory (frank creates and enrols it)."""
        home = self.tmp / name
        enrolled = self.agent_cmd(
            home, "enroll", "--agent", name, token=self.new_agent(name, labels)
        )
        assert enrolled.returncode == 0, enrolled.stderr
        return home

    def new_agent(self, name: str, labels: dict[str, str] | None = None) -> str:
        """frank creates the Agent and prints its one-time registration token."""
        manifest = {
            "apiVersion": f"{G}/{V}",
            "kind": "Agent",
            "metadata": {"name": name},
            "spec": {
                "capabilities": ["deploy.kubernetes"],
                "labels": labels or {"cluster": name},
                "allowedNetworks": ["127.0.0.0/8"],
            },
        }
        self.kube.kubectl("frank", "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
        env = {**os.environ, "KUBECONFIG": str(self.kube.kubeconfig_for("frank"))}
        out = subprocess.run(
            [STELLA, "agent", "enroll", name, "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return str(json.loads(out.stdout)["token"])

    def agent_cmd(
        self, home: Path, *args: str, token: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                AGENT,
                args[0],
                "--hub",
                self.url,
                "--hub-ca",
                str(self.hub_ca),
                "--dir",
                str(home),
                *args[1:],
            ],
            env=self._env(token),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def _env(self, token: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "STELLA_AGENT_TOKEN"}
        env["KUBECONFIG"] = str(self.remote.kubeconfig)
        env["STELLA_INSECURE_REGISTRIES"] = ",".join(self.insecure)
        if token is not None:
            env["STELLA_AGENT_TOKEN"] = token
        return env

    def task(
        self,
        agent: str,
        image: str,
        deadline: timedelta = timedelta(minutes=2),
        environment: str = "remote",
    ) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        custom_objects(self.admin).create_namespaced_custom_object(
            G,
            V,
            NS,
            "agenttasks",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "AgentTask",
                "metadata": {"name": name, "labels": {"stella.io/agent": agent}},
                "spec": {
                    "agent": agent,
                    "environment": environment,
                    "release": {
                        "namespace": "shop",
                        "name": "shop-2-0-0",
                        "uid": str(uuid.uuid4()),
                        "version": "2.0.0",
                    },
                    "namespace": TARGET_NS,
                    "components": [
                        {
                            "name": "web",
                            "image": image,
                            "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                        }
                    ],
                    "deadline": (datetime.now(UTC) + deadline).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "rollbackOnFailure": True,
                },
            },
        )
        return name

    def background_agent(self, home: Path, *extra: str, hub: str | None = None) -> Process:
        """`stella-agent run --tasks` as its own long-running process (dialling `hub`, the
        hub's own address unless a test puts something in between)."""
        argv = [
            *(AGENT, "run", "--hub", hub or self.url, "--hub-ca", str(self.hub_ca)),
            *("--dir", str(home)),
        ]
        return Process(
            "stella-agent",
            [*argv, "--tasks", *extra],
            self.tmp / f"{home.name}.log",
            env=self._env(),
        ).start()

    def agent_environment(
        self, shop: Any, cluster: str, approvals: int = 0, timeout: str = "90s"
    ) -> str:
        """dev here (a namespace), then staging: the agents labelled cluster=CLUSTER."""
        shop.environment("dev")
        staging: str = shop.env_name("staging")
        spec: dict[str, Any] = {
            "requires": [shop.env_name("dev")],
            "targets": [
                {"agentSelector": {"matchLabels": {"cluster": cluster}}, "namespace": TARGET_NS}
            ],
            "allowedRegistries": [self.registry.host],
            "rollout": {"timeout": timeout, "rollbackOnFailure": True},
        }
        if approvals:
            spec["approvals"] = {"required": approvals, "approverGroups": ["release-approvers"]}
        custom_objects(shop.admin).create_cluster_custom_object(
            G,
            V,
            "environments",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Environment",
                "metadata": {"name": staging},
                "spec": spec,
            },
        )
        shop.created_envs.append(staging)
        return staging

    def agents_only_environment(self, shop: Any, stage: str, agent: str, **spec: Any) -> str:
        """An Environment of its own whose one target is the agent `agent`."""
        env: str = shop.env_name(stage)
        custom_objects(shop.admin).create_cluster_custom_object(
            G,
            V,
            "environments",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Environment",
                "metadata": {"name": env},
                "spec": {
                    "targets": [
                        {
                            "agentSelector": {"matchLabels": {"cluster": agent}},
                            "namespace": TARGET_NS,
                        }
                    ],
                    "allowedRegistries": [self.registry.host],
                    **spec,
                },
            },
        )
        shop.created_envs.append(env)
        return env

    def tasks_of(self, agent: str) -> list[dict[str, Any]]:
        items = custom_objects(self.admin).list_namespaced_custom_object(
            G, V, NS, "agenttasks", label_selector=f"stella.io/agent={agent}"
        )["items"]
        return list(items)

    def serial(self, agent: str) -> str:
        body = custom_objects(self.admin).get_cluster_custom_object(G, V, "agents", agent)
        return str(body["status"]["certificate"]["serial"])

    def hold_rollouts(self, key: str) -> None:
        """Pods of a Deployment whose nodeSelector asks for KEY stay Pending until
        release_rollouts: a rollout in flight for as long as a test needs."""
        self.remote.deployment(self.image("hold"), node_selector={key: "go"})

    def release_rollouts(self, key: str) -> None:
        core = client.CoreV1Api(self.remote.admin)
        meta = core.list_node().items[0].metadata
        assert meta is not None and meta.name is not None
        node = meta.name
        core.patch_node(node, {"metadata": {"labels": {key: "go"}}})

    def smoke_plugin(self, shop: Any, port: int, entry_points: list[str]) -> str:
        """The smoke-test plugin (it GETs its `url` input: passes on a 200), signed by a
        publisher of its own and allowed to reach 127.0.0.1:PORT only; its name."""
        from tests import plugin_support as ps

        publisher = ps.Publisher(self.tmp, f"agents-{uuid.uuid4().hex[:4]}")
        module = ps.build(ps.SMOKE)
        path = self.tmp / f"smoke-{uuid.uuid4().hex[:6]}.wasm"
        path.write_bytes(module)
        manifest = ps.manifest_for(
            module,
            name=f"{shop.prefix}-smoke-{uuid.uuid4().hex[:4]}",
            publisher=publisher.name,
            entryPoints=entry_points,
            capabilities={"network": [{"host": "127.0.0.1", "port": port, "scheme": "http"}]},
            inputs=[{"name": "url", "required": True}],
        )
        api = custom_objects(shop.admin)
        keys = [{"keyId": k, "publicKey": p} for k, p in publisher.trust.items()]
        for plural, kind, name, spec in (
            ("pluginpublishers", "PluginPublisher", publisher.name, {"keys": keys}),
            (
                "plugins",
                "Plugin",
                manifest.name,
                {"manifest": publisher.sign(manifest), "module": {"file": str(path)}},
            ),
        ):
            api.create_cluster_custom_object(
                G,
                V,
                plural,
                {"apiVersion": f"{G}/{V}", "kind": kind, "metadata": {"name": name}, "spec": spec},
            )
        self.publishers[manifest.name] = publisher.name
        return str(manifest.name)

    def remove_plugin(self, shop: Any, name: str) -> None:
        api = custom_objects(shop.admin)
        api.delete_cluster_custom_object(G, V, "plugins", name)
        api.delete_cluster_custom_object(G, V, "pluginpublishers", self.publishers.pop(name))

    def task_status(self, name: str) -> dict[str, Any]:
        body = custom_objects(self.admin).get_namespaced_custom_object(G, V, NS, "agenttasks", name)
        return dict(body.get("status") or {})


@pytest.fixture(scope="module")
def rig(
    kube: ControlPlane,
    openbao: OpenBao,
    registry: Registry,
    registry_basic: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("agent-tasks")
    remote_cp = ControlPlane(tmp / "remote-cluster").up()
    try:
        remote = Remote(remote_cp, tmp)
        env, url, hub_ca = hub_settings(openbao.addr, openbao.root_token, tmp)
        env["STELLA_INSECURE_REGISTRIES"] = f"{registry.host},{registry_basic.host}"
        with running_operator(kube, tmp / "operator", env) as op:
            r = Rig(kube, remote, url, hub_ca, registry, tmp)
            r.operator = op
            r.insecure.append(registry_basic.host)
            r.openbao = openbao
            yield r
    finally:
        remote_cp.down()


def test_an_agent_deploys_into_its_own_cluster(rig: Rig) -> None:
    home = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
    agent = home.name
    old, new = rig.image("1.0"), rig.image("2.0")
    rig.remote.deployment(old)
    name = rig.task(agent, new)
    ran = rig.agent_cmd(home, "run", "--tasks", "--once")
    assert ran.returncode == 0, ran.stderr
    status = rig.task_status(name)
    assert status["phase"] == "Succeeded", status
    assert status["previousImages"] == [{"component": "web", "image": old}]
    serial = custom_objects(rig.admin).get_cluster_custom_object(G, V, "agents", agent)["status"][
        "certificate"
    ]["serial"]
    assert status["certificateSerial"] == serial
    assert rig.remote.web().spec.template.spec.containers[0].image == new
    # Done is done: the task is not handed out again.
    again = rig.agent_cmd(home, "run", "--tasks", "--once")
    assert again.returncode == 0 and name not in again.stderr


def test_a_wrong_digest_deploys_nothing(rig: Rig) -> None:
    home = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
    old = rig.image("1.1")
    rig.remote.deployment(old)
    bogus = old.split("@")[0] + "@sha256:" + "0" * 64
    name = rig.task(home.name, bogus)
    assert rig.agent_cmd(home, "run", "--tasks", "--once").returncode == 0
    status = rig.task_status(name)
    assert status["phase"] == "Failed" and "digest verification failed" in status["message"]
    assert rig.remote.web().spec.template.spec.containers[0].image == old


def test_another_agent_can_neither_see_nor_report_the_task(rig: Rig) -> None:
    mine, theirs = rig.agent(f"eu-{uuid.uuid4().hex[:4]}"), rig.agent(f"us-{uuid.uuid4().hex[:4]}")
    rig.remote.deployment(rig.image("1.2"))
    name = rig.task(mine.name, rig.image("2.2"))
    other = Session(HubClient(rig.url, rig.hub_ca, Identity(theirs)))
    assert [t["name"] for t in other.hub.tasks(other.access)] == []
    with pytest.raises(HubError) as refused:
        other.hub.report(other.access, name, "Succeeded", {"message": "trust me"})
    assert refused.value.status == 403
    assert rig.task_status(name).get("phase", "Pending") == "Pending"


def test_an_agent_killed_mid_rollout_resumes_the_same_task(rig: Rig) -> None:
    home = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
    label = f"stella-test/agent-{home.name}"
    rig.hold_rollouts(label)
    new = rig.image("2.3")
    name = rig.task(home.name, new, deadline=timedelta(minutes=3))
    proc = rig.background_agent(home, "--interval", "1")
    try:
        eventually(
            lambda: rig.task_status(name).get("phase") == "Running", timeout=60, what="task running"
        )
        generation = rig.remote.web().metadata.generation
        os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
    finally:
        proc.stop()
    rig.release_rollouts(label)
    resumed = rig.agent_cmd(home, "run", "--tasks", "--once")
    assert resumed.returncode == 0, resumed.stderr
    status = rig.task_status(name)
    assert status["phase"] == "Succeeded", status
    web = rig.remote.web()
    assert web.spec.template.spec.containers[0].image == new
    assert web.metadata.generation == generation  # no second template change


def test_a_release_promotes_from_here_into_an_agents_cluster(rig: Rig, shop: Any) -> None:
    """dev here -> staging in the agent's cluster, with an approval and evidence that
    names the agent and its certificate."""
    from tests.e2e.test_actions_e2e import packets

    home = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
    old, new = shop.image("3.0"), shop.image("3.1")
    rig.remote.deployment(old)
    staging = rig.agent_environment(shop, home.name, approvals=1)
    proc = rig.background_agent(home, "--interval", "2", "--capability", "deploy.kubernetes")
    try:
        shop.release("rel-a", new, ["dev", "staging"])
        shop.wait_phase("rel-a", "dev", "Deployed", timeout=90)
        shop.wait_phase("rel-a", "staging", "WaitingForApproval", timeout=60)
        shop.approve("rel-a", "staging", "bob")
        done = shop.wait_phase("rel-a", "staging", "Deployed", timeout=150)
    finally:
        proc.stop()
    assert rig.remote.web().spec.template.spec.containers[0].image == new
    assert home.name in done["message"]
    agent = custom_objects(rig.admin).get_cluster_custom_object(G, V, "agents", home.name)
    serial = agent["status"]["certificate"]["serial"]
    chain = [p for p in packets(shop.admin, staging) if p.get("release", {}).get("name") == "rel-a"]
    authorized = [p for p in chain if p["kind"] == "PromotionAuthorized"]
    assert len(authorized) == 1
    assert authorized[0]["policy"]["inputs"]["agents"][0] == {
        "agent": home.name,
        "certificateSerial": serial,
        "target": "0",
        "namespace": TARGET_NS,
    }
    deployed = [p for p in chain if p["kind"] == "PromotionDeployed"]
    assert len(deployed) == 1 and serial in deployed[0]["outcome"]["message"]


def test_a_task_gets_its_targets_registry_credentials_once(
    rig: Rig, registry_basic: Registry
) -> None:
    """T8: the hub hands a task's registry credentials (from Vault) to the agent the task
    names, once; another agent gets nothing; they appear in no status or output."""
    import hvac

    from devenv.services import basic_auth

    user, password = "stella", "s3cret-registry"  # the session registry_basic's
    assert rig.openbao is not None
    path = f"registry/agents-{uuid.uuid4().hex[:6]}"
    kv = hvac.Client(url=rig.openbao.addr, token=rig.openbao.root_token).secrets.kv.v2
    kv.create_or_update_secret(path=path, secret={"username": user, "password": password})
    env_name = f"remote-{uuid.uuid4().hex[:6]}"
    custom_objects(rig.admin).create_cluster_custom_object(
        G,
        V,
        "environments",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": env_name},
            "spec": {
                "targets": [
                    {
                        "agentSelector": {"matchLabels": {"cluster": "nobody"}},
                        "namespace": TARGET_NS,
                    }
                ],
                "allowedRegistries": [registry_basic.host],
                "registryCredentials": f"vault:secret/{path}#password",
            },
        },
    )
    try:
        payload = f"basic-{uuid.uuid4()}".encode()
        digest = push_image(
            registry_basic.url, "remote/web", "9.0", payload, basic_auth(user, password)
        )
        image = f"{registry_basic.host}/remote/web@{digest}"
        mine = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
        other = rig.agent(f"us-{uuid.uuid4().hex[:4]}")
        rig.remote.deployment(rig.image("1.9"))

        # The agent's run fetches them once and verifies the private image with them.
        name = rig.task(mine.name, image, environment=env_name)
        ran = rig.agent_cmd(mine, "run", "--tasks", "--once")
        assert ran.returncode == 0, ran.stderr
        status = rig.task_status(name)
        assert status["phase"] == "Succeeded" and status["credentialsIssued"] is True, status
        assert password not in ran.stdout + ran.stderr + json.dumps(status)

        # A second task: its credentials once, then never again, and never to another agent.
        second = rig.task(mine.name, image, environment=env_name)
        session = Session(HubClient(rig.url, rig.hub_ca, Identity(mine)))
        got = session.hub.credentials(session.access, second)
        assert got == [{"hosts": [registry_basic.host], "username": user, "password": password}]
        with pytest.raises(HubError) as again:
            session.hub.credentials(session.access, second)
        assert again.value.status == 409
        thief = Session(HubClient(rig.url, rig.hub_ca, Identity(other)))
        with pytest.raises(HubError) as foreign:
            thief.hub.credentials(thief.access, second)
        assert foreign.value.status == 403
        # Its agent, restarted before applying anything, cannot fetch them again: it fails
        # the task rather than deploy what it could not verify.
        failed = rig.agent_cmd(mine, "run", "--tasks", "--once")
        assert failed.returncode == 0, failed.stderr
        status = rig.task_status(second)
        assert status["phase"] == "Failed" and "already" in status["message"], status
    finally:
        custom_objects(rig.admin).delete_cluster_custom_object(G, V, "environments", env_name)


def test_a_revoked_agents_task_goes_to_another_agent(rig: Rig, shop: Any) -> None:
    """`stella agent revoke` mid-task: the task fails and goes to the other agent serving
    the same cluster, which finishes the rollout; the evidence says who, which certificate,
    and what took over; the rollout template changed once."""
    from tests.e2e.test_actions_e2e import packets

    pair, tag = f"pair-{uuid.uuid4().hex[:4]}", uuid.uuid4().hex[:4]
    homes = [rig.agent(f"{n}-{tag}", labels={"cluster": pair}) for n in ("ra", "rb")]
    key = f"stella-test/{pair}"
    rig.hold_rollouts(key)
    new = shop.image("4.1")
    staging = rig.agent_environment(shop, pair, timeout="240s")
    procs = [rig.background_agent(h, "--interval", "1") for h in homes]

    def running() -> tuple[Path, dict[str, Any]] | None:
        # Whichever agent the hub chose (by name among those it has heard from: on a
        # loaded machine the first may not have called in yet) is the one revoked.
        for home in homes:
            for t in rig.tasks_of(home.name):
                if (t.get("status") or {}).get("phase") == "Running":
                    return home, t
        return None

    try:
        shop.release("rel-r", new, ["dev", "staging"])
        first, old_task = eventually(running, timeout=240, what="an agent's task running")
        second = homes[1] if first == homes[0] else homes[0]
        generation = rig.remote.web().metadata.generation
        first_serial = rig.serial(first.name)
        frank = {**os.environ, "KUBECONFIG": str(rig.kube.kubeconfig_for("frank"))}
        subprocess.run(
            [STELLA, "agent", "revoke", first.name], env=frank, check=True, capture_output=True
        )
        name = old_task["metadata"]["name"]
        failed = eventually(
            lambda: (st := rig.task_status(name)).get("phase") == "Failed" and st,
            timeout=60,
            what="the revoked agent's task failed",
        )
        assert failed["replacedBy"] == {"task": f"{name}-r1", "agent": second.name}, failed
        rig.release_rollouts(key)
        done = shop.wait_phase("rel-r", "staging", "Deployed", timeout=150)
    finally:
        for proc in procs:
            proc.stop()
    took_over = custom_objects(rig.admin).get_namespaced_custom_object(
        G, V, NS, "agenttasks", f"{name}-r1"
    )
    assert took_over["spec"]["replaces"] == name
    assert took_over["spec"]["previousImages"] == failed["previousImages"]  # what ran before
    assert took_over["status"]["phase"] == "Succeeded"
    second_serial = rig.serial(second.name)
    assert took_over["status"]["certificateSerial"] == second_serial
    assert second_serial in done["message"]
    web = rig.remote.web()
    assert web.spec.template.spec.containers[0].image == new
    assert web.metadata.generation == generation  # the second agent's patch was a no-op
    chain = [p for p in packets(shop.admin, staging) if p.get("release", {}).get("name") == "rel-r"]
    revoked = [p for p in chain if p["kind"] == "AgentRevoked"]
    assert len(revoked) == 1, revoked
    assert revoked[0]["agent"]["name"] == first.name
    assert revoked[0]["outcome"]["result"] == "Redispatched"
    assert revoked[0]["policy"]["inputs"]["certificateSerial"] == first_serial
    assert revoked[0]["policy"]["inputs"]["replacement"] == {
        "task": f"{name}-r1",
        "agent": second.name,
        "certificateSerial": second_serial,
    }
    assert [p["kind"] for p in chain].count("PromotionAuthorized") == 1
    assert [p["kind"] for p in chain].count("PromotionDeployed") == 1


def test_the_hub_killed_mid_task_deploys_once(rig: Rig, shop: Any) -> None:
    """The operator (engine and hub) SIGKILLed while its agent follows a rollout: the
    agent logs in again with its certificate, reports to the new hub, and the promotion
    ends Deployed with one task, one template change and one outcome packet."""
    from tests.e2e.test_actions_e2e import packets

    assert rig.operator is not None
    home = rig.agent(f"hk-{uuid.uuid4().hex[:4]}")
    key = f"stella-test/{home.name}"
    rig.hold_rollouts(key)
    new = shop.image("5.1")
    staging = rig.agent_environment(shop, home.name, timeout="240s")
    proc = rig.background_agent(home, "--interval", "1")
    try:
        shop.release("rel-h", new, ["dev", "staging"])
        eventually(
            lambda: any(
                (t.get("status") or {}).get("phase") == "Running" for t in rig.tasks_of(home.name)
            ),
            timeout=120,
            what="the task running",
        )
        generation = rig.remote.web().metadata.generation
        rig.operator.proc.kill()
        rig.operator.restart()
        rig.release_rollouts(key)
        done = shop.wait_phase("rel-h", "staging", "Deployed", timeout=150)
    finally:
        proc.stop()
    assert home.name in done["message"]
    assert len(rig.tasks_of(home.name)) == 1
    web = rig.remote.web()
    assert web.spec.template.spec.containers[0].image == new
    assert web.metadata.generation == generation
    chain = [p for p in packets(shop.admin, staging) if p.get("release", {}).get("name") == "rel-h"]
    kinds = [p["kind"] for p in chain]
    assert kinds.count("PromotionAuthorized") == 1 and kinds.count("PromotionDeployed") == 1, kinds


def test_credentials_whose_answer_was_lost_go_again_to_the_same_request(
    rig: Rig, shop: Any, registry_basic: Registry
) -> None:
    """The operator SIGKILLed after its hub spent a task's one-time registry credentials
    and before its answer reached the agent (the agent dials the hub through a proxy that
    withholds the answer once the task's status says they were spent): the agent asks the
    restarted hub again with the same request key, gets them (the image is in a registry
    that needs them), and the promotion ends Deployed once — one task, one template
    change, one outcome packet, no replay signal, and the credentials in no log or
    status. (Another key is refused as a replay: tests/unit/agents/test_task_credentials.py.)"""
    import hvac
    from tests.e2e.hub_proxy import HubProxy
    from tests.e2e.test_actions_e2e import packets

    from devenv.services import basic_auth

    assert rig.operator is not None and rig.openbao is not None
    user, password = "stella", "s3cret-registry"  # the session registry_basic's
    path = f"registry/lost-{uuid.uuid4().hex[:6]}"
    kv = hvac.Client(url=rig.openbao.addr, token=rig.openbao.root_token).secrets.kv.v2
    kv.create_or_update_secret(path=path, secret={"username": user, "password": password})
    digest = push_image(
        registry_basic.url, "remote/web", "10.0", f"lost-{uuid.uuid4()}".encode(),
        basic_auth(user, password),
    )  # fmt: skip
    new = f"{registry_basic.host}/remote/web@{digest}"
    home = rig.agent(f"cl-{uuid.uuid4().hex[:4]}")
    rig.remote.deployment(rig.image("9.9"))
    generation = rig.remote.web().metadata.generation
    env = rig.agents_only_environment(
        shop,
        "lost-answer",
        home.name,
        allowedRegistries=[registry_basic.host],
        registryCredentials=f"vault:secret/{path}#password",
    )
    proxy = HubProxy(int(rig.url.rsplit(":", 1)[1]))

    def spent() -> bool:
        return any(
            (t.get("status") or {}).get("credentialsIssued") for t in rig.tasks_of(home.name)
        )

    proxy.withhold(spent)
    proc = rig.background_agent(home, "--interval", "1", hub=proxy.url)
    try:
        shop.release("rel-cl", new, ["lost-answer"])
        eventually(lambda: proxy.held, timeout=120, interval=0.1, what="the answer withheld")
        [task] = rig.tasks_of(home.name)
        assert task["status"]["phase"] == "Acknowledged", task["status"]
        rig.operator.proc.kill()  # after the spend, before the answer reached the agent
        proxy.cut()
        rig.operator.restart()
        done = shop.wait_phase("rel-cl", "lost-answer", "Deployed", timeout=150)
    finally:
        proc.stop()
        proxy.close()
        kv.delete_metadata_and_all_versions(path=path)
    assert home.name in done["message"]
    [task] = rig.tasks_of(home.name)
    status = task["status"]
    assert status["phase"] == "Succeeded" and status["credentialsIssued"] is True, status
    assert re.fullmatch(r"[0-9a-f]{64}", status["credentialsRequest"]), status
    web = rig.remote.web()
    assert web.spec.template.spec.containers[0].image == new
    assert web.metadata.generation == generation + 1  # applied once
    assert "handed out again to the request that got them first" in rig.operator.logs()
    assert rig.operator.metric("stella_security_events_total", signal="AgentCredentialsReplay") == 0
    agent_log = (rig.tmp / f"{home.name}.log").read_text()
    assert password not in agent_log + json.dumps(task) + rig.operator.logs()
    chain = [p for p in packets(shop.admin, env) if p.get("release", {}).get("name") == "rel-cl"]
    kinds = [p["kind"] for p in chain]
    assert kinds.count("PromotionAuthorized") == 1 and kinds.count("PromotionDeployed") == 1, kinds
    # The task is over: no one gets them again, whatever the key.
    thief = Session(HubClient(rig.url, rig.hub_ca, Identity(home)))
    with pytest.raises(HubError) as refused:
        thief.hub.credentials(thief.access, task["metadata"]["name"], "x" * 43)
    assert refused.value.status == 409


def test_the_agent_charts_own_rbac_and_commands_deploy(rig: Rig) -> None:
    """charts/stella-agent as rendered: its Role and RoleBinding applied in the agent's
    cluster and its ServiceAccount's token as the agent's identity there; its init
    container's command enrols (run again, it keeps the identity and spends no token), and
    its agent's command carries a task out."""
    from tests.unit.chart.test_chart import DIGEST, HELM

    name = f"ch-{uuid.uuid4().hex[:4]}"
    token = rig.new_agent(name)
    chart = Path(__file__).resolve().parents[2] / "charts" / "stella-agent"
    out = subprocess.run(
        [str(HELM), "template", "chart", str(chart), "--namespace", "stella-agent",
         "--set", f"image.digest={DIGEST}", "--set", f"agentName={name}",
         "--set", f"hub.url={rig.url}", "--set-file", f"hub.caCertificate={rig.hub_ca}",
         "--set", f"targetNamespaces={{{TARGET_NS}}}", "--set", "heartbeatSeconds=5"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    access = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    rig.remote.cp.kubectl("admin", "create", "namespace", "stella-agent")
    rig.remote.cp.kubectl("admin", "apply", "-f", "-", stdin=yaml.safe_dump_all(access))
    account = next(d for d in access if d["kind"] == "ServiceAccount")["metadata"]["name"]
    kubeconfig = rig.remote.kubeconfig_for(account, "stella-agent", rig.tmp / f"{name}.kubeconfig")

    pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    state, token_file = rig.tmp / name, rig.tmp / f"{name}.token"
    token_file.write_text(token)
    here = {
        "/usr/local/bin/stella-agent": AGENT,
        "/var/lib/stella-agent": str(state),
        "/etc/stella-agent/hub-ca/ca.crt": str(rig.hub_ca),
        "/etc/stella-agent/enrollment/token": str(token_file),
    }

    def argv(container: dict[str, Any]) -> list[str]:
        return [here.get(a, a) for a in container["command"] + container.get("args", [])]

    env = {**rig._env(), "KUBECONFIG": str(kubeconfig)}
    enrol = argv(pod["initContainers"][0])
    first = subprocess.run(enrol, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0 and "enrolled as" in first.stdout, first.stderr
    token_file.write_text("spent-token-that-must-not-be-sent")
    again = subprocess.run(enrol, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and "already enrolled" in again.stdout, again.stderr

    rig.remote.deployment(rig.image("1.7"))
    new = rig.image("2.7")
    task = rig.task(name, new)
    ran = subprocess.run(
        [*argv(pod["containers"][0]), "--once"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ran.returncode == 0, ran.stderr
    assert rig.task_status(task)["phase"] == "Succeeded", rig.task_status(task)
    assert rig.remote.web().spec.template.spec.containers[0].image == new


def test_the_supply_chain_policy_holds_for_agent_targets(rig: Rig, shop: Any) -> None:
    """requireSignatures on an Environment deployed by agents (issue 17): an unsigned image
    fails before any task is queued, and the agent's cluster keeps what it ran."""
    from tests.supplychain_support import KeyPair

    from stella.supplychain.trust import TRUST_LABEL

    home = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
    old, unsigned = shop.image("4.0"), shop.image("4.1")
    rig.remote.deployment(old)
    trust = f"{shop.prefix}-agent-trust"
    grant_configmap_writes(shop.admin, "stella-system", "frank")  # a platform engineer
    platform = client.CoreV1Api(shop.users["frank"])
    platform.create_namespaced_config_map(
        "stella-system",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=trust, labels={TRUST_LABEL: "true"}),
            data={"ci.pem": KeyPair.generate().public_pem},
        ),
    )
    rig.agents_only_environment(
        shop, "signed", home.name, requireSignatures={"configMap": trust, "haltOnFailure": False}
    )
    proc = rig.background_agent(home, "--interval", "2", "--capability", "deploy.kubernetes")
    try:
        shop.release("rel-sc", unsigned, ["signed"])
        p = shop.wait_phase("rel-sc", "signed", "Failed", timeout=90)
    finally:
        proc.stop()
        platform.delete_namespaced_config_map(trust, "stella-system")
    assert p["reason"] == "SignatureMissing", p
    tasks = custom_objects(rig.admin).list_namespaced_custom_object(G, V, NS, "agenttasks")
    assert not [t for t in tasks["items"] if "rel-sc" in json.dumps(t.get("spec", {}))]
    assert rig.remote.web().spec.template.spec.containers[0].image == old


def test_plugin_steps_hold_and_follow_an_agent_promotion(rig: Rig, shop: Any) -> None:
    """An Environment deployed by agents runs its plugin steps in the hub's sandbox: a
    failing Gate holds the promotion before any task is queued (the agent's cluster keeps
    what it ran); once the gate passes, the task goes out, and PostDeploy runs after the
    agent reported, before Deployed — each run a PluginRun packet in the chain."""
    from tests.e2e.test_actions_e2e import packets
    from tests.e2e.test_plugins_e2e import Service

    home = rig.agent(f"eu-{uuid.uuid4().hex[:4]}")
    old, new = shop.image("5.0"), shop.image("5.1")
    rig.remote.deployment(old)
    service = Service(503)
    plugin = rig.smoke_plugin(shop, service.port, ["gate", "postDeploy"])
    steps = [
        {"plugin": plugin, "at": at, "inputs": {"url": service.url()}}
        for at in ("Gate", "PostDeploy")
    ]
    env = rig.agents_only_environment(shop, "gated-agent", home.name, plugins=steps)
    api = custom_objects(shop.admin)
    proc = rig.background_agent(home, "--interval", "2", "--capability", "deploy.kubernetes")
    try:
        shop.release("rel-pl", new, ["gated-agent"])
        held = shop.wait_reason("rel-pl", "gated-agent", "PluginFailed", timeout=90)
        assert held["phase"] == "Pending", held
        assert "service did not answer 200" in held["message"], held
        assert service.hits, "the gate never called the service"
        tasks = api.list_namespaced_custom_object(G, V, NS, "agenttasks")["items"]
        assert not [t for t in tasks if "rel-pl" in json.dumps(t.get("spec", {}))]
        assert rig.remote.web().spec.template.spec.containers[0].image == old
        service.status = 200  # the gate is asked again (30 s) and passes
        shop.wait_phase("rel-pl", "gated-agent", "Deployed", timeout=150)
    finally:
        proc.stop()
        service.stop()
        rig.remove_plugin(shop, plugin)
    assert rig.remote.web().spec.template.spec.containers[0].image == new
    chain = [p for p in packets(shop.admin, env) if p.get("release", {}).get("name") == "rel-pl"]
    kinds = [p["kind"] for p in chain]
    runs = [p["policy"]["inputs"]["step"] for p in chain if p["kind"] == "PluginRun"]
    assert runs[0] == "Gate" and runs[-1] == "PostDeploy" and runs.count("PostDeploy") >= 1, runs
    # Gate runs before the authorization, PostDeploy after it and before the outcome.
    assert kinds.index("PluginRun") < kinds.index("PromotionAuthorized")
    last_post = max(i for i, p in enumerate(chain) if p["kind"] == "PluginRun")
    assert kinds.index("PromotionAuthorized") < last_post < kinds.index("PromotionDeployed")


@contextmanager
def failing_post_deploy(
    rig: Rig, shop: Any, stage: str, before: str, step: str = "PostDeploy"
) -> Iterator[tuple[str, str]]:
    """An agent whose cluster runs `before`, an Environment of its own deployed by it that
    fails after the agent reported success (rollbackOnFailure), and that agent running:
    (agent, Environment). `step` PostDeploy: its smoke-plugin step fails (the service
    answers 503); Verification: its HTTP check fails (the service answers 500)."""
    from tests.e2e.test_plugins_e2e import Service

    home = rig.agent(f"rb-{uuid.uuid4().hex[:4]}")
    rig.remote.deployment(before)
    service = Service(503 if step == "PostDeploy" else 500)
    failing: dict[str, Any] = {
        "verification": {
            "checks": [{"name": "smoke", "interval": "1s", "http": {"url": service.url()}}]
        }
    }
    plugin = None
    if step == "PostDeploy":
        plugin = rig.smoke_plugin(shop, service.port, ["postDeploy"])
        failing = {"plugins": [{"plugin": plugin, "at": step, "inputs": {"url": service.url()}}]}
    env = rig.agents_only_environment(
        shop,
        stage,
        home.name,
        rollout={"timeout": "120s", "rollbackOnFailure": True},
        **failing,
    )
    proc = rig.background_agent(home, "--interval", "1", "--capability", "deploy.kubernetes")
    try:
        yield home.name, env
    finally:
        proc.stop()
        service.stop()
        if plugin is not None:
            rig.remove_plugin(shop, plugin)


def rolled_back_across_a_restart(
    rig: Rig, shop: Any, agent: str, stage: str, release: str, old: str, reason: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The operator SIGKILLed once the agent applied the rollback task, and restarted; then
    what every such rollback shows: the Release Failed with `reason`, the cluster running
    `old` again, exactly the deploy task and ONE rollback task (the one seen before the
    kill), and one authorization and one PromotionRolledBack packet.
    (The Release's progress, its packets.)"""
    from tests.e2e.test_actions_e2e import packets

    assert rig.operator is not None
    # Killed once the agent applied the rollback (its credentials handed out).
    made = eventually(
        lambda: next(
            (
                t
                for t in rig.tasks_of(agent)
                if t["metadata"]["name"].endswith("-rollback")
                and (t.get("status") or {}).get("phase") in ("Running", "Succeeded")
            ),
            None,
        ),
        timeout=150,
        interval=0.1,
        what="the rollback task applied",
    )
    rig.operator.proc.kill()
    rig.operator.restart()
    failed = shop.wait_phase(release, stage, "Failed", timeout=150)
    assert failed["reason"] == reason, failed
    message = failed["message"]
    assert f"rolled back to the images that ran before: agent {agent}" in message, message
    assert "NOT rolled back" not in message, message
    web = rig.remote.web()
    assert web.spec.template.spec.containers[0].image == old  # the previous image runs again
    assert web.metadata.annotations["stella.io/attempt"] == "1-rollback"
    tasks = {t["metadata"]["name"]: t for t in rig.tasks_of(agent)}
    assert len(tasks) == 2, sorted(tasks)  # the deploy and ONE rollback, across the restart
    deploy = next(t for n, t in tasks.items() if not n.endswith("-rollback"))
    back = tasks[f"{deploy['metadata']['name']}-rollback"]
    assert back["metadata"]["uid"] == made["metadata"]["uid"]
    assert deploy["status"]["previousImages"] == [{"component": "web", "image": old}]
    assert back["spec"]["rollback"]["of"] == deploy["metadata"]["name"]
    assert back["spec"]["rollback"]["reason"] == reason
    assert [c["image"] for c in back["spec"]["components"]] == [old]
    assert back["spec"]["rollbackOnFailure"] is False
    assert back["status"]["phase"] == "Succeeded", back["status"]
    assert back["status"]["certificateSerial"] == rig.serial(agent)
    env = shop.env_name(stage)
    chain = [p for p in packets(shop.admin, env) if p.get("release", {}).get("name") == release]
    kinds = [p["kind"] for p in chain]
    assert kinds.count("PromotionAuthorized") == 1, kinds
    assert kinds.count("PromotionRolledBack") == 1, kinds
    assert "PromotionFailed" not in kinds and "PromotionDeployed" not in kinds, kinds
    rolled = next(p for p in chain if p["kind"] == "PromotionRolledBack")
    assert rolled["outcome"]["reason"] == reason
    assert old in rolled["outcome"]["message"] and agent in rolled["outcome"]["message"]
    return failed, chain


def test_a_failed_post_deploy_rolls_the_agents_cluster_back(rig: Rig, shop: Any) -> None:
    """rollout.rollbackOnFailure on an Environment deployed by an agent: a PostDeploy step
    that fails once the agent reported success makes the hub queue ONE rollback task to
    that agent, with the images it reported running before; the agent verifies and applies
    them, the Release ends Failed with the step's reason and a message naming what was
    rolled back, and the outcome packet is PromotionRolledBack. The operator SIGKILLed as
    soon as the agent applied the rollback: the restarted one follows that task — no second
    rollback task, no second PostDeploy run, one outcome."""
    old, new = shop.image("7.0"), shop.image("7.1")
    with failing_post_deploy(rig, shop, "post-agent", old) as (agent, _env):
        shop.release("rel-rb", new, ["post-agent"])
        failed, chain = rolled_back_across_a_restart(
            rig, shop, agent, "post-agent", "rel-rb", old, "PluginFailed"
        )
    assert "service did not answer 200" in failed["message"], failed
    kinds = [p["kind"] for p in chain]
    runs = [p["policy"]["inputs"]["step"] for p in chain if p["kind"] == "PluginRun"]
    assert runs == ["PostDeploy"], runs  # not run again after the restart
    assert kinds.index("PluginRun") < kinds.index("PromotionRolledBack")


def test_a_failed_verification_rolls_the_agents_cluster_back(rig: Rig, shop: Any) -> None:
    """The Environment's verification fails after the agent deployed (an HTTP check
    answered 500): as after a failed PostDeploy step, the hub queues ONE rollback task with
    the images the agent reported running before, across an operator SIGKILLed once the
    agent applied it; the Release is Failed (VerificationFailed) saying what was rolled
    back, and the outcome packet is PromotionRolledBack with the failed check."""
    old, new = shop.image("9.0"), shop.image("9.1")
    with failing_post_deploy(rig, shop, "verify-agent", old, "Verification") as (agent, _env):
        shop.release("rel-vf", new, ["verify-agent"])
        failed, chain = rolled_back_across_a_restart(
            rig, shop, agent, "verify-agent", "rel-vf", old, "VerificationFailed"
        )
    assert failed["message"].startswith("check smoke failed: HTTP 500, expected 200"), failed
    rolled = next(p for p in chain if p["kind"] == "PromotionRolledBack")
    [check] = rolled["outcome"]["checks"]
    assert (check["name"], check["state"]) == ("smoke", "Failed"), check


def test_a_cluster_that_ran_an_unpinned_image_is_not_rolled_back(rig: Rig, shop: Any) -> None:
    """Fail closed: the agent reports that its cluster ran an image NOT pinned by digest
    before the Release, so the hub makes no rollback task (a rollback deploys only what an
    ordinary task may); the Release is Failed with a message saying what was not rolled
    back and why, the cluster keeps the Release, and the outcome packet is PromotionFailed."""
    from tests.e2e.test_actions_e2e import packets

    unpinned = f"{rig.registry.host}/remote/web:1.0"
    new = shop.image("8.1")
    with failing_post_deploy(rig, shop, "unpinned-agent", unpinned) as (agent, env):
        shop.release("rel-up", new, ["unpinned-agent"])
        failed = shop.wait_phase("rel-up", "unpinned-agent", "Failed", timeout=150)
    assert failed["reason"] == "PluginFailed", failed
    message = failed["message"]
    assert f"NOT rolled back: agent {agent}: component web ran {unpinned} before" in message
    assert "not pinned by digest" in message and "promote the previous Release" in message
    assert rig.remote.web().spec.template.spec.containers[0].image == new
    assert [t["metadata"]["name"].endswith("-rollback") for t in rig.tasks_of(agent)] == [False]
    chain = [p for p in packets(shop.admin, env) if p.get("release", {}).get("name") == "rel-up"]
    kinds = [p["kind"] for p in chain]
    assert kinds.count("PromotionFailed") == 1 and "PromotionRolledBack" not in kinds, kinds


def test_a_cluster_without_stella_refuses_a_digest_without_a_prod_passport(
    rig: Rig, shop: Any
) -> None:
    """Issue 17, the passport across clusters: prod here publishes its passport; the agent's
    cluster (its own API server, no Stella CRD, operator or webhook) has only Stella's
    workload-digests policy, the documented passport binding and the parameter
    `stella passport params` wrote from the registry — and its API server refuses a Pod with
    a digest that has no prod passport and admits the one that has; the parameter is written
    only by the pipeline's identity (docs/supply-chain/passport-writer.yaml)."""
    remote = rig.remote.admin
    groups = [g.name for g in client.ApisApi(remote).get_api_versions().groups]
    assert "stella.io" not in groups  # nothing of Stella's runs there
    prod = shop.environment("prod", publishPassport=True)
    passported, other = shop.image("6.0"), shop.image("6.1")
    shop.release("rel-pp", passported, ["prod"])
    shop.wait_phase("rel-pp", "prod", "Deployed", timeout=120)  # the passport is pushed

    pub = evidence_public_key(
        rig.tmp / "operator" / "state" / "evidence-key.pem", rig.tmp / "ev.pub"
    )
    ns = f"{shop.prefix}-shop"
    code, params, said = passport_params(prod, pub, ns, rig.registry.host, passported, other)
    assert code == 1 and f"MISSING {other}" in said, said  # said, and exit 1
    assert approved_digests(params["data"]) == [passported.rsplit("@", 1)[1]]
    install_passport_policy(remote, ns)
    try:
        # Without the parameter, the binding refuses everything there (fail closed).
        assert "no params found" in wait_refused(remote, ns, passported)
        # Only the pipeline's identity writes the parameter (passport-writer.yaml): not the
        # cluster's admin, so not anyone who may edit ConfigMaps in the namespace either.
        admin_core: Any = client.CoreV1Api(remote)  # a dict body, sent as it is
        why = eventually(
            lambda: writer_refusal(lambda: admin_core.create_namespaced_config_map(ns, params)),
            timeout=30,
            what="the writer lock in force",
        )
        assert f"{PARAMS_WRITER} (running stella passport params), and admin may not" in why
        grant_configmap_writes(remote, ns, PARAMS_WRITER)  # the pipeline's RBAC
        writer: Any = client.CoreV1Api(as_user(remote, PARAMS_WRITER))  # the same dict body
        writer.create_namespaced_config_map(ns, params)
        forged = {"data": {bucket_key(other): other.rsplit("@", 1)[1]}}
        patch = admin_core.patch_namespaced_config_map
        assert writer_refusal(lambda: patch("stella-passport-digests", ns, forged))
        why = cast(
            str,
            eventually(
                lambda: (r := pod_refusal(remote, ns, other)) and "digest-not-approved" in r and r,
                timeout=30,
                what="the parameter read by the policy",
            ),
        )
        assert "Stella passport" in why, why
        assert pod_refusal(remote, ns, passported) is None  # admitted
    finally:
        uninstall_passport_policy(remote, ns)
