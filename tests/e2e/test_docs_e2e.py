"""The docs check: every command block of README.md and docs/ that is not marked
illustrative runs, as written, against the real control plane with the operator running,
in `make demo`'s world (tests/e2e/demo_world.py), and exits as the docs say.

How a block runs (tests/docs_blocks.py reads them):

- the guides first, in their order (docs/guides/README.md), a block marked
  ``<!-- docs-check: after X.md -->`` after X's blocks; then README.md and the other docs;
- each command in its own `bash` (pipefail), in one working directory per run where
  ``.local/demo/cluster/kubeconfig`` and ``.venv`` are what `make demo` leaves, so the
  guides' own setup lines (docs/guides/README.md: ``export KUBECONFIG=$PWD/...``) hold;
  the exports and assignments of a file come before each of its commands;
- ``stella-system`` reads as this operator's namespace (each test's operator has its own,
  so that `stella evidence verify` checks what it wrote and nothing another test left);
- what a reader would have waited for, or the state a section starts from (a halted
  Environment before `env clear`), is set up by BEFORE; setup commands (make, helm,
  hack/cluster, bao) are skipped: the test session started its own.

A command exits 0 unless EXPECTED says otherwise (the refusals the guides show).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.docs_blocks import DOCS, ROOT, Block, Command, blocks
from tests.e2e.demo_world import DemoWorld, demo_world
from tests.kube_support import custom_objects, eventually

from devenv.controlplane import ControlPlane

GUIDES = ROOT / "docs" / "guides"
GUIDE_ORDER = [GUIDES / f"{n}.md" for n in
               ("README", "platform-engineer", "requester", "approver", "auditor")]  # fmt: skip
SETUP = {"make", "helm", "hack/cluster", "bao", "source"}

#: command text -> exit code, for the commands the docs show being refused
EXPECTED = {
    "stella --context bob approve shop/shop-1-2 prod": 1,  # bob already decided
    "stella --context dave approve shop/shop-1-1-hotfix staging": 1,  # his own Release
}


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DemoWorld]:
    with demo_world(kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("docs")) as w:
        yield w


def _apply_doc_yaml(world: DemoWorld, path: Path, name: str) -> None:
    """Apply the ```yaml block of a doc that defines `name` (as admin)."""
    text = path.read_text()
    for chunk in text.split("```yaml\n")[1:]:
        body = chunk.split("```", 1)[0]
        if f"name: {name}" in body:
            out = world.kube.kubectl("admin", "apply", "-f", "-", stdin=body, check=False)
            assert out.returncode == 0, out.stderr
            return
    raise AssertionError(f"{path.name} has no yaml block defining {name}")


def _delete_doc_yaml(world: DemoWorld, path: Path, name: str) -> None:
    for chunk in path.read_text().split("```yaml\n")[1:]:
        body = chunk.split("```", 1)[0]
        if f"name: {name}" in body:
            world.kube.kubectl("admin", "delete", "--ignore-not-found", "-f", "-", stdin=body,
                               check=False)  # fmt: skip


#: a substring of a command -> what a reader would have waited for, or the state the
#: doc's section starts from
BEFORE: dict[str, Callable[[DemoWorld], None]] = {
    # "When the operator halts an Environment ... then:" (a digest mismatch halts it)
    "env clear prod": lambda w: w.halt("prod"),
    # docs/actions.md grants prod-approvers with the YAML just above the command
    "kubectl auth can-i approve environments.stella.io/prod": lambda w: _apply_doc_yaml(
        w, ROOT / "docs" / "actions.md", "approve-prod"
    ),
    # "Once shop-1-2 is live in prod (bob and carol approve it in the approver guide)"
    "rollback prod --dry-run": lambda w: w.wait_phase("shop-1-2", "prod", "Deployed", 180),
    # the auditor checks a settled record (nothing half-written by a deployment under way)
    "evidence verify": lambda w: w.wait_quiet(),
    "evidence export": lambda w: w.wait_quiet(),
}


def ordered_blocks() -> list[Block]:
    """The guides in their order (deferred blocks after the guide they name), then the
    rest of the docs."""
    files = [*GUIDE_ORDER, *(p for p in DOCS if p not in GUIDE_ORDER)]
    every = [(p, b) for p in files for b in blocks(p)]
    out: list[Block] = []
    for path in files:
        out += [b for p, b in every if p == path and b.after is None]
        out += [b for _, b in every if b.after == path.name]
    return out


def workdir(tmp: Path, world: DemoWorld) -> Path:
    """A checkout as `make demo` leaves it, as far as the docs' commands look."""
    (tmp / ".local" / "demo" / "cluster").mkdir(parents=True)
    (tmp / ".local" / "demo" / "cluster" / "kubeconfig").symlink_to(world.kube.kubeconfig)
    (tmp / ".local" / "demo" / "operator-state").symlink_to(world.operator.env["STELLA_STATE_DIR"])
    (tmp / ".venv").symlink_to(ROOT / ".venv")
    return tmp


def shell_env(world: DemoWorld) -> dict[str, str]:
    kubectl_dir = str(Path(sys.executable).parent)
    return {
        "HOME": os.environ.get("HOME", "/tmp"),
        "PATH": f"{kubectl_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "KUBECONFIG": str(world.kube.kubeconfig),  # docs outside the guides: current context
        "STELLA_NAMESPACE": world.namespace,
        "LANG": "C.UTF-8",
    }


def run(command: Command, prelude: list[str], cwd: Path, env: dict[str, str],
        namespace: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    script = "\n".join(["set -o pipefail", *prelude, command.text])
    script = script.replace("stella-system", namespace)
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_every_command_block_runs_as_the_docs_say(world: DemoWorld, tmp_path: Path) -> None:
    cwd, env = workdir(tmp_path, world), shell_env(world)
    guide_setup = [
        c.text for b in blocks(GUIDES / "README.md") for c in b.commands if c.is_assignment
    ]
    used_expected, used_before = set(), set()
    failures: list[str] = []
    ran = 0
    preludes: dict[Path, list[str]] = {}
    try:
        for block in ordered_blocks():
            prelude = preludes.setdefault(
                block.path, list(guide_setup) if block.path.parent == GUIDES else []
            )
            runnable = not block.illustrative and block.runs_stella_or_kubectl
            for command in block.commands:
                if command.is_assignment:
                    prelude.append(command.text)
                    continue
                if not runnable or set(command.programs) & SETUP:
                    continue
                for key, prepare in BEFORE.items():
                    if key in command.text:
                        used_before.add(key)
                        prepare(world)
                want = EXPECTED.get(command.text, 0)
                used_expected.add(command.text)
                done = run(command, prelude, cwd, env, world.namespace)
                ran += 1
                if done.returncode != want:
                    failures.append(
                        f"{block.path.relative_to(ROOT)}:{command.line}: `{command.text}` "
                        f"exited {done.returncode}, the docs say {want}\n"
                        f"  stdout: {done.stdout[-600:]}\n  stderr: {done.stderr[-600:]}"
                    )
    finally:
        _delete_doc_yaml(world, ROOT / "docs" / "actions.md", "approve-prod")
    assert not failures, f"{len(failures)} of {ran} commands:\n" + "\n".join(failures)
    assert set(EXPECTED) <= used_expected, f"no doc runs {set(EXPECTED) - used_expected}"
    assert set(BEFORE) <= used_before, f"no doc runs {set(BEFORE) - used_before}"
    assert ran >= 40, ran
    # what the guides did, seen through the API
    assert world.phase("shop-1-2", "prod") == "Deployed"
    assert world.env_status("prod").get("currentRelease") == "shop/shop-1-2"
    # docs/secrets.md clears a halt without --wait: the operator carries it out soon after
    eventually(lambda: not world.env_status("prod").get("halted"), what="prod's halt cleared")
    assert not world.env_status("prod").get("suspended")
    assert "freezeWindows" not in (world.environment("prod").get("spec") or {})
    rollbacks = [
        r for r in custom_objects(world.admin).list_namespaced_custom_object(
            "stella.io", "v1alpha1", "shop", "releases"
        )["items"]
        if "stella.io/rollback" in (r["metadata"].get("annotations") or {})
    ]  # fmt: skip
    assert len(rollbacks) == 1, [r["metadata"]["name"] for r in rollbacks]
    assert (tmp_path / "bundle.json").is_file() and list((tmp_path / "keys").glob("*.pem"))
    payload = json.loads((tmp_path / "payload.json").read_text())  # the openssl recipe's
    assert payload["predicate"]["sequence"] == 2
