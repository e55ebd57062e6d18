"""Issue 10, any cluster: the chart, `make demo` and the e2e tier on a cluster someone else
started, handed over through KUBECONFIG with STELLA_CLUSTER=existing (hack/devenv/existing.py).

Here that cluster is a control plane started separately by `hack/cluster up --bare` (kwok
nodes, so the operator runs from the image under runc or as a process next to the API
server, as everywhere in these tiers); docs/install.md has the kind path. The install
tier's `helm install` runs there (every object accepted), then the demo promotes dev ->
staging -> prod there without a control plane of its own, then one e2e promotion test; a
context that does not look disposable is refused before anything is changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
# helm install there, every object read back, webhooks on loopback. The promotion by the
# operator as the chart's ServiceAccount, the same on any control plane of this kind, runs
# on the install tier's own (it would add a minute or more here).
CHART_TESTS = ["tests/install/test_chart_install.py::test_every_object_of_the_chart_is_accepted"]
E2E_TEST = (
    "tests/e2e/test_promotion.py::test_dev_auto_staging_waits_self_approval_ignored_prod_needs_two"
)


def run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


def tail(out: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    return "\n".join((out.stdout + out.stderr).splitlines()[-lines:])


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """`hack/cluster up` in a state directory of its own: (its kubeconfig, a clean env)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "STELLA_CLUSTER")}
    env["STELLA_STATE"] = str(tmp_path_factory.mktemp("hack-cluster"))
    up = run([sys.executable, "hack/cluster", "up", "--bare"], env, 300)
    try:
        assert up.returncode == 0, tail(up)
        line = next(x for x in up.stdout.splitlines() if x.startswith("export KUBECONFIG="))
        yield Path(line.removeprefix("export KUBECONFIG=")), env
    finally:
        down = run([sys.executable, "hack/cluster", "down"], env, 120)
        assert down.returncode == 0, tail(down)


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return run([KUBECTL, f"--kubeconfig={kubeconfig}", "--context=admin", *args], env, 60)


def evidence_count(kubeconfig: Path) -> int:
    out = kubectl(kubeconfig, "get", "configmaps", "-A", "-l", "stella.io/evidence", "-o", "name")
    assert out.returncode == 0, out.stderr
    return len(out.stdout.split())


def test_a_context_that_does_not_look_disposable_is_refused(
    started: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    kubeconfig, env = started
    real = yaml.safe_load(kubeconfig.read_text())
    for cluster in real["clusters"]:
        cluster["name"] = "prod-eu-1"
    for context in real["contexts"]:
        context["context"]["cluster"] = "prod-eu-1"
    real["contexts"][0]["name"] = real["current-context"] = "prod-eu-1"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(real))
    demo_env = {
        **env,
        "STELLA_CLUSTER": "existing",
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "STELLA_DEMO_STATE": str(tmp_path / "demo"),
    }
    out = run([sys.executable, "hack/demo.py"], demo_env, 120)
    assert out.returncode == 2, tail(out)
    assert "does not look disposable" in out.stderr
    assert "STELLA_CLUSTER_DISPOSABLE=prod-eu-1" in out.stderr
    # Nothing was changed there.
    assert kubectl(kubeconfig, "get", "namespace", "shop").returncode != 0


def test_chart_demo_and_e2e_run_on_a_cluster_from_kubeconfig(
    started: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    kubeconfig, env = started
    demo_env = {
        **env,
        "STELLA_CLUSTER": "existing",
        "KUBECONFIG": str(kubeconfig),
        "STELLA_DEMO_STATE": str(tmp_path / "demo"),
    }
    # helm install there (the install tier's first test, on this cluster).
    chart = run(
        [sys.executable, "-m", "pytest", *CHART_TESTS, "-q", "-p", "no:cacheprovider"],
        demo_env,
        600,
    )
    assert chart.returncode == 0, tail(chart)
    assert "1 passed" in chart.stdout
    # ... on that cluster: Helm keeps the release there as Secrets.
    helm_release = kubectl(
        kubeconfig,
        "get",
        "secrets",
        "-n",
        "stella-system",
        "-l",
        "owner=helm,name=stella",
        "-o",
        "name",
    )
    assert helm_release.stdout.strip(), helm_release.stderr
    try:
        demo = run([sys.executable, "hack/demo.py"], demo_env, 600)
        assert demo.returncode == 0, tail(demo)
        assert "Using the cluster of KUBECONFIG" in demo.stdout
        # The promotion happened on that cluster, and the demo started no cluster itself.
        rel = json.loads(
            kubectl(kubeconfig, "get", "rel", "shop-1-1", "-n", "shop", "-o", "json").stdout
        )
        phases = {e["name"]: e["phase"] for e in rel["status"]["environments"]}
        assert phases == {"dev": "Deployed", "staging": "Deployed", "prod": "Deployed"}, phases
        assert not (tmp_path / "demo" / "cluster" / "pids").exists()
    finally:
        stop = run([sys.executable, "hack/demo.py", "--down"], demo_env, 120)
        assert stop.returncode == 0, tail(stop)
    # make demo-down left the cluster running: the e2e tier takes it next.
    before = evidence_count(kubeconfig)
    e2e_env = {**demo_env, "STELLA_DEMO_STATE": ""}
    e2e = run(
        [sys.executable, "-m", "pytest", E2E_TEST, "-q", "-p", "no:cacheprovider"], e2e_env, 600
    )
    assert e2e.returncode == 0, tail(e2e)
    assert "1 passed" in e2e.stdout
    assert evidence_count(kubeconfig) > before  # its promotion's evidence is on that cluster
