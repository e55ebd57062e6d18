"""The first ten minutes of each role (docs/guides/), as that person, on `make demo`'s world
(tests/e2e/demo_world.py) with the operator running: what each step prints, what it
changes, and what it refuses. The guides build on each other, and so do these tests, in
the guides' order: platform engineer, requester, approver, the requester's rollback,
auditor. (tests/e2e/test_docs_e2e.py runs the guides' commands verbatim; this file checks
that they do what the guides say.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.e2e.demo_world import STAGES, DemoWorld, demo_world
from tests.kube_support import custom_objects, eventually

from devenv.controlplane import ControlPlane

STELLA = str(Path(sys.executable).parent / "stella")
OK, REFUSED, USAGE = 0, 1, 2


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DemoWorld]:
    with demo_world(kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("personas")) as w:
        yield w


def person(
    world: DemoWorld, user: str, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`stella ARGS` as USER (their own kubeconfig context), as the guide types it."""
    full = {
        **os.environ,
        "KUBECONFIG": str(world.kube.kubeconfig_for(user)),
        "STELLA_NAMESPACE": world.namespace,  # where this operator keeps its evidence
        **env,
    }
    return subprocess.run(
        [STELLA, *args], env=full, input=stdin, capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip


def kubectl(world: DemoWorld, user: str, *args: str, stdin: str | None = None) -> Any:
    return world.kube.kubectl(user, *args, stdin=stdin, check=False)


def says(done: subprocess.CompletedProcess[str], code: int) -> str:
    out = done.stdout + done.stderr
    assert done.returncode == code, f"exit {done.returncode}, wanted {code}: {out}"
    return out


def rows(text: str, first: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.split()[:1] == [first]]


# ---- platform engineer (frank) -------------------------------------------------------------
def test_platform_engineer(world: DemoWorld) -> None:
    # 1. the path, in path order, with what runs where
    listed = person(world, "frank", "env", "list", "-o", "json")
    says(listed, OK)
    listing = json.loads(listed.stdout)
    names = [e["metadata"]["name"] for e in listing["items"]]
    assert [n for n in names if n in STAGES] == ["dev", "staging", "prod"]
    table = says(person(world, "frank", "env", "list"), OK)
    assert rows(table, "prod")[0][:4] == ["prod", "staging", "auto", "shop/shop-1-1"]
    got = kubectl(world, "frank", "get", "env", "prod")
    assert got.returncode == 0 and "shop/shop-1-1" in got.stdout, got.stderr
    assert rows(got.stdout, "prod")[0][1] == "staging", got.stdout  # REQUIRES, not ["staging"]
    explain = kubectl(world, "admin", "explain", "environment.spec.freezeWindows")
    assert explain.returncode == 0 and "<no description>" not in explain.stdout

    # 2. a freeze window; a mistake is refused with the field and the fix; removed again
    window = '{"name":"weekend","schedule":"%s","duration":"62h","timeZone":"Europe/Berlin"}'
    bad = kubectl(world, "admin", "patch", "env", "prod", "--type", "merge", "-p",
                  '{"spec":{"freezeWindows":[%s]}}' % (window % "0 18 * * fry"))  # fmt: skip
    assert bad.returncode != 0
    assert "'fry' is not a day of week (use MON..SUN or 0-6)" in bad.stderr, bad.stderr
    good = kubectl(world, "admin", "patch", "env", "prod", "--type", "merge", "-p",
                   '{"spec":{"freezeWindows":[%s]}}' % (window % "0 18 * * FRI"))  # fmt: skip
    assert good.returncode == 0, good.stderr
    removed = kubectl(world, "admin", "patch", "env", "prod", "--type", "json", "-p",
                      '[{"op":"remove","path":"/spec/freezeWindows"}]')  # fmt: skip
    assert removed.returncode == 0, removed.stderr

    # 3. prod promotes by hand from now on (the approver promotes)
    manual = kubectl(world, "admin", "patch", "env", "prod", "--type", "merge", "-p",
                     '{"spec":{"autoPromote":false}}')  # fmt: skip
    assert manual.returncode == 0, manual.stderr
    assert rows(says(person(world, "frank", "env", "list"), OK), "prod")[0][2] == "manual"

    # 4. suspend and resume, each an Action in frank's name; alice may not
    says(person(world, "alice", "env", "suspend", "prod", "--reason", "mine"), REFUSED)
    says(person(world, "frank", "env", "suspend", "prod", "--reason", "db migration", "--wait"),
         OK)  # fmt: skip
    suspended = world.env_status("prod").get("suspended") or {}
    assert suspended.get("by") == "frank" or "frank" in json.dumps(suspended), suspended
    prod = rows(says(person(world, "frank", "env", "list"), OK), "prod")[0]
    assert "suspended" in prod, prod
    says(person(world, "frank", "env", "resume", "prod", "--wait"), OK)
    assert not world.env_status("prod").get("suspended")
    actions = says(person(world, "frank", "action", "list"), OK)
    mine = [line for line in actions.splitlines() if "frank" in line and " prod " in f" {line} "]
    assert any("Suspend" in line and "Done" in line for line in mine), actions
    assert any("Resume" in line and "Done" in line for line in mine), actions

    # 5. a halt is lifted by a person, with a reason
    world.halt("prod")
    says(person(world, "frank", "env", "clear", "prod", "--reason", "INC-42: registry fixed",
                "--wait"), OK)  # fmt: skip
    assert not world.env_status("prod").get("halted")


# ---- requester (alice) ---------------------------------------------------------------------
def test_requester(world: DemoWorld) -> None:
    # 1. what is out there: shop-1-1 is the Release live in every Environment
    status = says(person(world, "alice", "status", "-n", "shop"), OK)
    assert "Release shop/shop-1-1 " in status and "Release shop/shop-1-1-hotfix " in status
    one = says(person(world, "alice", "status", "shop/shop-1-1"), OK)
    assert [r[:3] for r in rows(one, "prod")] == [["prod", "Deployed", "(live)"]]
    assert kubectl(world, "alice", "get", "rel", "-n", "shop").returncode == 0

    # 2. a Release from a tag, pinned once, applied as alice
    reg = kubectl(world, "alice", "get", "env", "dev", "-o",
                  "jsonpath={.spec.allowedRegistries[0]}").stdout  # fmt: skip
    assert reg == world.registry.host
    made = person(world, "alice", "release", "create", "shop-1-2", "-n", "shop", "--version",
                  "1.2", "--environments", "dev,staging,prod", "--component",
                  f"web={reg}/shop/web:1.0", "--workload", "web=Deployment/web/web",
                  "--from-tags", "--insecure-registry", reg)  # fmt: skip
    says(made, OK)
    rel = yaml.safe_load(made.stdout)
    digest = world.v1.split("@")[1]
    image = rel["spec"]["components"][0]["image"]  # the tag kept for readers, the digest pinned
    assert image == f"{reg}/shop/web:1.0@{digest}", rel
    applied = kubectl(world, "alice", "apply", "-f", "-", stdin=made.stdout)
    assert applied.returncode == 0, applied.stderr
    stamp = world.release("shop-1-2")["metadata"]["annotations"]["stella.io/requester"]
    assert "alice" in stamp

    # 3. dev deploys at once; staging waits for an approver and says who and how
    world.wait_phase("shop-1-2", "dev", "Deployed")
    world.wait_phase("shop-1-2", "staging", "WaitingForApproval")
    listed = kubectl(world, "alice", "get", "rel", "shop-1-2", "-n", "shop").stdout
    assert listed.split()[:3] == ["NAME", "VERSION", "REQUESTER"], listed
    assert rows(listed, "shop-1-2")[0][2] == "alice", listed  # who asked, from the stamp
    message = world.progress("shop-1-2", "staging").get("message", "")
    assert "release-approvers" in message and "stella approve shop/shop-1-2 staging" in message
    says(person(world, "alice", "approve", "shop/shop-1-2", "staging"), REFUSED)

    # 4. an image by tag is refused before it is stored
    rel["metadata"]["name"] = "shop-tagged"
    rel["spec"]["components"][0]["image"] = f"{reg}/shop/web:1.0"
    tagged = yaml.safe_dump(rel)
    refused = kubectl(world, "alice", "apply", "-f", "-", stdin=tagged)
    assert refused.returncode != 0 and "digest" in refused.stderr, refused.stderr

    # 5. before shop-1-2 reaches prod there is nothing to roll back to
    early = says(person(world, "alice", "rollback", "prod", "--dry-run"), REFUSED)
    assert "no earlier deployed release to roll back to" in early


# ---- approver (bob, carol; dave's own hotfix) ----------------------------------------------
def test_approver(world: DemoWorld) -> None:
    waiting = says(person(world, "bob", "status", "shop/shop-1-2"), OK)
    assert rows(waiting, "staging")[0][1] == "WaitingForApproval"
    assert (
        kubectl(world, "bob", "get", "rel", "shop-1-2", "-n", "shop", "-o", "yaml").returncode == 0
    )

    says(person(world, "bob", "approve", "shop/shop-1-2", "staging", "--comment", "CAB-7"), OK)
    world.wait_phase("shop-1-2", "staging", "Deployed")
    says(person(world, "bob", "approve", "shop/shop-1-2", "prod", "--comment", "CAB-8"), OK)
    says(person(world, "carol", "approve", "shop/shop-1-2", "prod", "--comment", "CAB-8"), OK)
    # prod promotes by hand (the platform engineer made it so): it waits for a promote
    eventually(
        lambda: world.progress("shop-1-2", "prod").get("reason") == "AwaitingPromotion",
        timeout=180,
        what="shop-1-2 AwaitingPromotion in prod",
    )
    says(person(world, "alice", "promote", "shop/shop-1-2", "prod", "--reason", "x"), REFUSED)
    says(person(world, "bob", "promote", "shop/shop-1-2", "prod", "--reason", "CAB-9", "--wait"),
         OK)  # fmt: skip
    world.wait_phase("shop-1-2", "prod", "Deployed", timeout=180)
    promotes = says(person(world, "bob", "action", "list"), OK)
    assert any("Promote" in line and "bob" in line and "Done" in line
               for line in promotes.splitlines()), promotes  # fmt: skip
    assert world.deployed_image("prod").endswith(world.v1.split("@")[1])  # 1.0, from the tag

    # what is live: shop-1-2; shop-1-1 still says Deployed, without the marker
    assert [r[:3] for r in rows(says(person(world, "bob", "status", "shop/shop-1-2"), OK),
                                "prod")] == [["prod", "Deployed", "(live)"]]  # fmt: skip
    earlier = rows(says(person(world, "bob", "status", "shop/shop-1-1"), OK), "prod")[0]
    assert earlier[1] == "Deployed" and "(live)" not in earlier, earlier
    assert world.env_status("prod").get("currentRelease") == "shop/shop-1-2"

    appr = kubectl(world, "bob", "get", "appr", "-n", "shop")
    assert appr.returncode == 0 and "carol" in appr.stdout, appr.stderr

    # refused: a second decision, and a decision on one's own Release; each one line
    again = says(person(world, "bob", "approve", "shop/shop-1-2", "prod"), REFUSED)
    assert again.count("\n") <= 2, again
    own = says(person(world, "dave", "approve", "shop/shop-1-1-hotfix", "staging"), REFUSED)
    assert "dave" in own or "requester" in own.lower(), own


# ---- requester again: the rollback, once shop-1-2 is live in prod ---------------------------
def test_requester_rolls_back_once_prod_runs_the_new_release(world: DemoWorld) -> None:
    dry = says(person(world, "alice", "rollback", "prod", "--dry-run"), OK)
    assert "shop-1-1" in dry
    says(person(world, "alice", "rollback", "prod"), OK)
    rollbacks = eventually(
        lambda: [
            r for r in custom_objects(world.admin).list_namespaced_custom_object(
                "stella.io", "v1alpha1", "shop", "releases")["items"]
            if "stella.io/rollback" in (r["metadata"].get("annotations") or {})
        ],
        what="the rollback Release",
    )  # fmt: skip
    (rb,) = rollbacks
    assert rb["spec"]["environments"] == ["prod"]
    name = rb["metadata"]["name"]
    world.wait_phase(name, "prod", "WaitingForApproval")  # approvals again


# ---- auditor (erin) ------------------------------------------------------------------------
def test_auditor(world: DemoWorld, tmp_path: Path) -> None:
    world.wait_quiet()
    # 1. everything, with the log the operator publishes (no --log, no STELLA_EVIDENCE_LOG)
    env = {"STELLA_EVIDENCE_LOG": ""}
    done = person(world, "erin", "evidence", "verify", **env)
    assert done.returncode == OK, done.stdout + done.stderr
    assert done.stdout.startswith("evidence OK"), done.stdout
    assert f"(published by the operator in {world.namespace})" in done.stderr
    for stage in STAGES:
        assert f"{stage}#" in done.stdout

    # 2. one decision
    says(person(world, "erin", "evidence", "verify", "-e", "prod", **env), OK)
    says(person(world, "erin", "evidence", "verify", "-e", "prdo", **env), USAGE)
    shown = says(person(world, "erin", "evidence", "show", "prod#1", **env), OK)
    assert "actor         bob" in shown and "signature     verified" in shown, shown
    as_json = person(world, "erin", "evidence", "show", "prod#1", "-o", "json", **env)
    says(as_json, OK)
    json.loads(as_json.stdout)  # the log it read is said on stderr, never in the JSON

    # 3. pinned keys
    keys = tmp_path / "keys"
    says(person(world, "erin", "evidence", "keys", "--out-dir", str(keys), **env), OK)
    says(person(world, "erin", "evidence", "verify", "--trusted-keys", str(keys), **env), OK)

    # 4. a bundle, verified offline
    bundle = tmp_path / "bundle.json"
    says(person(world, "erin", "evidence", "export", "--out", str(bundle), **env), OK)
    offline = subprocess.run(
        [STELLA, "evidence", "verify", "--bundle", str(bundle), "--trusted-keys", str(keys)],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert offline.returncode == OK, offline.stdout + offline.stderr

    # 5. the rest of the record; and an auditor only reads
    assert "carol" in kubectl(world, "erin", "get", "appr", "-A").stdout
    actions = says(person(world, "erin", "action", "list"), OK)
    assert "frank" in actions and "Suspend" in actions
    assert kubectl(world, "erin", "get", "events", "-n", "shop").returncode == 0
    says(person(world, "erin", "env", "suspend", "prod", "--reason", "audit"), REFUSED)
