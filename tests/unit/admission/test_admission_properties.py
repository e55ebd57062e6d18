"""Property tests: admission never raises on arbitrary JSON, and never admits an unpinned image."""

from __future__ import annotations

import copy
import re
from typing import Any

from admission_factories import (
    ALICE,
    BOB,
    MALLORY,
    OPERATOR_ID,
    POLICY,
    approval_body,
    image,
    release_body,
    world,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stella.admission import RULES, SIGNALS, Request, Verdict, mutate, validate
from stella.models.common import PINNED_IMAGE
from stella.policy.identity import Identity

PINNED = re.compile(PINNED_IMAGE)
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
VIEW = world()
VIEW.approvals[("shop", "prior")] = approval_body(name="prior", approver=BOB)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=30,
)
hexdigits = st.text(alphabet="0123456789abcdefABCDEFgz", min_size=0, max_size=70)
images = st.one_of(
    st.builds(lambda h: f"registry.example.com/shop/web@sha256:{h}", hexdigits),
    st.builds(lambda h: f"registry.example.com/shop/web@{h}", st.text(max_size=80)),
    st.builds(lambda r, t: f"{r}:{t}", st.text(max_size=30), st.text(max_size=10)),
    st.text(max_size=120),
    st.just(image(1)),
    st.just(image(2, "ghcr.io/someone/x")),
)
identities = st.one_of(
    st.sampled_from([ALICE, BOB, MALLORY, OPERATOR_ID]),
    st.builds(
        Identity,
        st.text(max_size=20),
        st.text(max_size=10),
        st.frozensets(st.text(max_size=10), max_size=3),
    ),
)
kinds = st.sampled_from(
    ["Release", "Approval", "Environment", "Agent", "Pod", "Deployment", "StatefulSet",
     "DaemonSet", "Job", "CronJob", "ReplicaSet", "ConfigMap"]
)  # fmt: skip
operations = st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"])


@st.composite
def corrupted(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A valid body with random paths replaced by junk, removed, or extended."""
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 4))):
        node: Any = body
        # walk down a random path
        for _ in range(draw(st.integers(0, 4))):
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node, key=str)))
                if not isinstance(node[key], (dict, list)):
                    break
                node = node[key]
            elif isinstance(node, list) and node:
                idx = draw(st.integers(0, len(node) - 1))
                if not isinstance(node[idx], (dict, list)):
                    break
                node = node[idx]
            else:
                break
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if isinstance(node, dict):
            if action == "add" or not node:
                node[draw(st.text(max_size=12))] = draw(json_values)
            else:
                key = draw(st.sampled_from(sorted(node, key=str)))
                if action == "delete":
                    del node[key]
                else:
                    node[key] = draw(json_values)
        elif isinstance(node, list):
            if action == "add" or not node:
                node.append(draw(json_values))
            else:
                idx = draw(st.integers(0, len(node) - 1))
                if action == "delete":
                    del node[idx]
                else:
                    node[idx] = draw(json_values)
    return body


@st.composite
def releases(draw: st.DrawFn) -> dict[str, Any]:
    imgs = draw(st.lists(images, min_size=0, max_size=draw(st.sampled_from([3, 60]))))
    envs = draw(
        st.lists(st.sampled_from(["dev", "staging", "prod", "qa", "Ünïcode", ""]), max_size=20)
    )
    base = release_body(images=tuple(imgs), environments=tuple(envs))
    if draw(st.booleans()):
        base = draw(corrupted(base))
    return base


@st.composite
def approvals(draw: st.DrawFn) -> dict[str, Any]:
    base = approval_body(
        release=draw(st.sampled_from(["shop-1-4-2", "nope", "", "ß"])),
        environment=draw(st.sampled_from(["prod", "dev", "qa", "💥"])),
        decision=draw(st.sampled_from(["Approve", "Reject", "approve", ""])),
        approver=draw(st.one_of(st.none(), identities)),
        comment=draw(st.text(max_size=50)),
    )
    return draw(corrupted(base)) if draw(st.booleans()) else base


def well_formed(verdict: object) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.rule in RULES
    assert verdict.rule != "internal", verdict.message
    assert verdict.allowed == (verdict.rule == "ok")
    assert bool(verdict.message) != verdict.allowed
    assert verdict.security_signal is None or verdict.security_signal in SIGNALS
    assert len(verdict.message) <= 1024
    for op in verdict.patch:
        assert op["op"] == "add" and op["path"].startswith("/metadata")


@SETTINGS
@given(releases(), identities, operations)
def test_release_admission_never_raises(body: dict[str, Any], user: Identity, op: str) -> None:
    old = release_body() if op in ("UPDATE", "DELETE") else None
    obj = None if op == "DELETE" else body
    req = Request(op, "Release", "shop", "shop-1-4-2", user, obj, old)  # type: ignore[arg-type]
    well_formed(validate(req, VIEW, POLICY))
    well_formed(mutate(req, VIEW, POLICY))


@SETTINGS
@given(releases(), identities)
def test_a_release_with_an_unpinned_image_is_never_admitted(
    body: dict[str, Any], user: Identity
) -> None:
    spec = body.get("spec")
    comps = spec.get("components") if isinstance(spec, dict) else None
    verdict = validate(Request("CREATE", "Release", "shop", "r", user, body, None), VIEW, POLICY)
    if isinstance(comps, list) and any(
        isinstance(c, dict)
        and not (isinstance(c.get("image"), str) and PINNED.fullmatch(c["image"]))
        for c in comps
    ):
        assert not verdict.allowed
        assert verdict.rule in (
            "release.digest-pinned",
            "identity.forged",
            "identity.unstamped",
            "schema",
        )


@SETTINGS
@given(approvals(), identities, operations)
def test_approval_admission_never_raises(body: dict[str, Any], user: Identity, op: str) -> None:
    old = approval_body(name="prior", approver=BOB) if op in ("UPDATE", "DELETE") else None
    obj = None if op == "DELETE" else body
    req = Request(op, "Approval", "shop", None, user, obj, old)  # type: ignore[arg-type]
    well_formed(validate(req, VIEW, POLICY))
    well_formed(mutate(req, VIEW, POLICY))


@SETTINGS
@given(approvals())
def test_the_requester_never_decides_on_her_own_release(body: dict[str, Any]) -> None:
    req = Request("CREATE", "Approval", "shop", None, ALICE, body, None)
    assert not validate(req, VIEW, POLICY).allowed


@SETTINGS
@given(
    kinds,
    operations,
    identities,
    st.one_of(st.none(), json_values),
    st.one_of(st.none(), json_values),
    st.one_of(st.none(), st.text(max_size=20)),
)
def test_anything_at_all_gets_a_verdict(
    kind: str, op: str, user: Identity, obj: Any, old: Any, namespace: str | None
) -> None:
    req = Request(op, kind, namespace, None, user, obj, old)  # type: ignore[arg-type]
    well_formed(validate(req, VIEW, POLICY))
    well_formed(mutate(req, VIEW, POLICY))


@SETTINGS
@given(kinds, st.lists(images, max_size=8), st.lists(images, max_size=3))
def test_workloads_never_raise_and_unpinned_never_pass(
    kind: str, imgs: list[str], init: list[str]
) -> None:
    pod = {
        "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(imgs)],
        "initContainers": [{"name": f"i{i}", "image": im} for i, im in enumerate(init)],
    }
    tmpl = {"template": {"spec": pod}}
    spec = {"Pod": pod, "CronJob": {"jobTemplate": {"spec": tmpl}}}.get(kind, tmpl)
    body = {"metadata": {"name": "w", "namespace": "shop-prod"}, "spec": spec}
    verdict = validate(Request("CREATE", kind, "shop-prod", "w", MALLORY, body, None), VIEW, POLICY)
    well_formed(verdict)
    if kind in ("Release", "Approval", "Environment", "Agent", "ConfigMap"):
        return
    if any(not PINNED.fullmatch(i) for i in imgs + init):
        assert not verdict.allowed
