"""The agent's chart (charts/stella-agent): renders pinned and hardened, grants the agent's
identity get/patch of workloads in its target namespaces and nothing else, takes the
registration token from a Secret only, and refuses what it cannot run with."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.chart.test_chart import DIGEST, HELM

CHART = Path(__file__).resolve().parents[3] / "charts" / "stella-agent"
GOOD = (
    f"image.digest={DIGEST}",
    "agentName=eu-1",
    "hub.url=https://hub.example.com:8443",
    "hub.caCertificate=-----BEGIN CERTIFICATE-----",
    "targetNamespaces={shop,web}",
)


def render(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [str(HELM), "template", "agent", str(CHART), "--namespace", "stella-agent"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def rendered(*sets: str) -> list[dict[str, Any]]:
    out = render(*sets)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    assert HELM.exists(), f"helm not built at {HELM}; run `make binaries`"
    return rendered(*GOOD)


def test_the_agent_runs_pinned_hardened_and_alone(docs: list[dict[str, Any]]) -> None:
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["spec"]["replicas"] == 1  # one identity
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for c in pod["initContainers"] + pod["containers"]:
        assert c["image"] == f"ghcr.io/stella-release/stella@{DIGEST}"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    (init,) = pod["initContainers"]
    assert "--if-needed" in init["command"]  # a restart keeps its identity
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"


def test_the_token_comes_only_from_a_secret(docs: list[dict[str, Any]]) -> None:
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["enrollment"]["secret"]["secretName"] == "stella-agent-enrollment"
    assert volumes["enrollment"]["secret"]["optional"] is True  # may be deleted after enrolment
    refused = render(*GOOD, "enrollment.token=abc")
    assert refused.returncode != 0 and "token" in refused.stderr


def test_the_agent_may_patch_workloads_in_its_namespaces_only(
    docs: list[dict[str, Any]],
) -> None:
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["shop", "web"]
    for role in roles:
        assert role["rules"] == [
            {
                "apiGroups": ["apps"],
                "resources": ["deployments", "statefulsets", "daemonsets"],
                "verbs": ["get", "patch"],
            }
        ]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["ingress"] == []  # it only dials out


@pytest.mark.parametrize(
    ("drop", "extra", "message"),
    [
        ("image.digest", "image.digest=", "image.digest is required"),
        ("agentName", "agentName=", "agentName is required"),
        ("hub.url", "hub.url=http://hub.example.com", "/hub/url"),
        ("targetNamespaces", "targetNamespaces=null", "targetNamespaces is required"),
        ("hub.caCertificate", "hub.caCertificate=", "hub.caCertificate (PEM) or"),
    ],
)
def test_what_it_cannot_run_with_is_refused(drop: str, extra: str, message: str) -> None:
    sets = [s for s in GOOD if not s.startswith(drop + "=")] + [extra]
    out = render(*sets)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_every_value_is_documented_in_the_readme() -> None:
    from tests.unit.chart.test_chart import _leaves

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [
        v for v in _leaves(values) if f"| `{v}` |" not in readme and not v.startswith("resources.")
    ]
    assert not missing, f"undocumented values in charts/stella-agent/README.md: {missing}"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"])
