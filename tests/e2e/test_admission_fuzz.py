"""Property-based fuzzing of Releases and Approvals sent to the real API server, as alice
and bob, through Stella's registered webhooks.

Bodies mix the valid with the broken: bad digests (upper case, short, long, sha512, junk),
foreign and malformed registries, tags, unicode names and comments, component lists past
the schema's limits, fields dropped, unknown fields added, values of the wrong type,
forged identity annotations. Two properties hold for every one of them:

* the API server never answers 5xx, and Stella never refuses with its fail-closed
  `internal` rule (a rule that raised) nor logs a failed rule;
* whatever is admitted is valid: the object the API server returns (dry run) or stores
  (a drawn share of the examples is created for real, read back, then deleted) parses with
  the pydantic models, every image is pinned by digest, and the recorded identity is the
  sender's.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.e2e.conftest import OperatorProcess, start_operator
from tests.kube_support import api_client_for, eventually

from devenv.controlplane import ControlPlane
from devenv.webhooks import unregister
from stella.models.approval import ApprovalSpec
from stella.models.common import PINNED_IMAGE
from stella.models.release import ReleaseSpec

G, V = "stella.io", "v1alpha1"
PINNED = re.compile(PINNED_IMAGE)
ALLOWED_REGISTRY = "registry.example.com"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Target:
    op: OperatorProcess
    ns: str
    env: str
    release: str  # a real Release by alice into env, for Approvals to name
    alice: client.CustomObjectsApi
    bob: client.CustomObjectsApi
    admin: Any  # a CustomObjectsApi: its reads (typed object) are indexed as dicts
    operator: client.CustomObjectsApi


@pytest.fixture(scope="module")
def target(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    # Rate limits, the namespace quota and loop detection (the fuzzers make the same base
    # Release again for every example) high enough not to be what answers: this fuzzes
    # the rules; tests/e2e/test_admission_e2e.py tests those.
    op = start_operator(
        kube,
        Path(tmp_path_factory.mktemp("admission-fuzz")),
        {
            "STELLA_WEBHOOK_RATE": "100000",
            "STELLA_WEBHOOK_BURST": "100000",
            "STELLA_RELEASE_LOOP_THRESHOLD": "1000000",
            "STELLA_PENDING_RELEASES_PER_NAMESPACE": "1000000",
        },
    )
    core = client.CoreV1Api(kube_admin)
    tag = uuid.uuid4().hex[:6]
    ns, env = f"fz{tag}", f"fz{tag}-prod"
    admin = client.CustomObjectsApi(kube_admin)
    alice = client.CustomObjectsApi(kube_as["alice"])
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"team": "shop"}))
        )
        spec = {
            "allowedRegistries": [ALLOWED_REGISTRY],
            "releaseNamespaces": {"matchLabels": {"team": "shop"}},
            "approvals": {"required": 1, "approverGroups": ["release-approvers"]},
            # A person promotes (so a fuzzed Promote Action can be admitted).
            "autoPromote": False,
        }
        admin.create_cluster_custom_object(
            G,
            V,
            "environments",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Environment",
                "metadata": {"name": env},
                "spec": spec,
            },
        )
        base = release(f"{ALLOWED_REGISTRY}/shop/web@sha256:{'a' * 64}", [env])
        eventually(
            lambda: alice.create_namespaced_custom_object(
                G, V, ns, "releases", {**base, "metadata": {"name": "base"}}
            ),
            what="the operator's view to know the fuzz Environment and namespace",
        )
        t = Target(
            op,
            ns,
            env,
            "base",
            alice,
            client.CustomObjectsApi(kube_as["bob"]),
            admin,
            client.CustomObjectsApi(api_client_for(str(kube.kubeconfig), "stella-operator")),
        )
        eventually(
            lambda: t.bob.create_namespaced_custom_object(
                G, V, ns, "approvals", approval("base", env, "Approve", "ok"), dry_run="All"
            ),
            what="the operator's view to know Release base",
        )
        yield t
        logs = op.logs()
        assert "admission rule for" not in logs, "a rule raised: see the operator log"
    finally:
        op.proc.stop()
        unregister(kube)
        with contextlib.suppress(ApiException):
            admin.delete_cluster_custom_object(G, V, "environments", env)
        with contextlib.suppress(ApiException):
            core.delete_namespace(ns)


def release(image: str, environments: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"generateName": "fz-"},
        "spec": {
            "version": "1.0.0",
            "environments": environments,
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def approval(rel: str, env: str, decision: str, comment: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Approval",
        "metadata": {"generateName": "fz-"},
        "spec": {"release": rel, "environment": env, "decision": decision, "comment": comment},
    }


# ---- strategies ----------------------------------------------------------------------------
# A body is drawn either clean (every field from its valid branch: it reaches Stella's
# rules and mostly passes them) or rough (each field broken three times in twenty, and
# fields dropped, added or retyped), so both sides of every rule are exercised.
def pick(
    rough: bool, valid: st.SearchStrategy[Any], broken: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    if not rough:
        return valid
    return st.integers(0, 19).flatmap(lambda i: valid if i < 17 else broken)


HEX = "0123456789abcdef"
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)
good_digest = st.text(HEX, min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
bad_digest = st.one_of(
    st.text(HEX.upper(), min_size=64, max_size=64).map(lambda h: f"sha256:{h}"),
    st.text(HEX, min_size=1, max_size=63).map(lambda h: f"sha256:{h}"),
    st.text(HEX, min_size=65, max_size=90).map(lambda h: f"sha256:{h}"),
    st.text(HEX, min_size=128, max_size=128).map(lambda h: f"sha512:{h}"),
    st.text(max_size=70).map(lambda t: f"sha256:{t}"),
)
good_repo = st.sampled_from([f"{ALLOWED_REGISTRY}/shop/web", f"{ALLOWED_REGISTRY}/shop/api"])
bad_repo = st.sampled_from(
    [
        f"{ALLOWED_REGISTRY.upper()}/shop/web",
        "registry.evil.example/shop/web",
        "docker.io/library/nginx",
        "nginx",
        "127.0.0.1:5000/a/b",
        "ünïcödé.example/web",
        "",
        f"{ALLOWED_REGISTRY}/Shop/Web",
        f"{ALLOWED_REGISTRY}//web",
        f"{ALLOWED_REGISTRY}/" + "x" * 600,
    ]
)
dns = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z")
bad_name = st.one_of(st.text(min_size=0, max_size=70), st.just("x" * 64), junk)
good_text = st.text(max_size=300)
bad_text = st.one_of(
    st.text(min_size=1000, max_size=1100),
    st.sampled_from(
        ["password=hunter2", "ghp_" + "a" * 36, "AKIAIOSFODNN7EXAMPLE", "CAB-1234 ✅ 🚀", "\x00"]
    ),
    junk,
)
damage = st.lists(
    st.tuples(
        st.sampled_from(["drop", "extra", "retype"]), st.integers(0, 7), junk, st.text(max_size=12)
    ),
    min_size=1,
    max_size=3,
)


def image(rough: bool) -> st.SearchStrategy[Any]:
    repo, digest = pick(rough, good_repo, bad_repo), pick(rough, good_digest, bad_digest)
    return pick(
        rough,
        st.builds(lambda r, d: f"{r}@{d}", repo, digest),
        st.one_of(
            st.builds(lambda r, t, d: f"{r}:{t}@{d}", repo, st.text(max_size=12), good_digest),
            st.builds(lambda r, t: f"{r}:{t}", repo, st.text(max_size=20)),
            st.text(max_size=120),
            junk,
        ),
    )


def component(rough: bool) -> st.SearchStrategy[dict[str, Any]]:
    name = pick(rough, dns, bad_name)
    workload = pick(
        rough,
        st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["Deployment", "StatefulSet", "DaemonSet"]),
                "name": name,
                "container": name,
            }
        ),
        st.one_of(
            st.fixed_dictionaries(
                {
                    "kind": st.sampled_from(["Pod", "déploiement", ""]),
                    "name": name,
                    "container": name,
                }
            ),
            junk,
        ),
    )
    return st.fixed_dictionaries({"name": name, "image": image(rough), "workload": workload})


def mutate(body: dict[str, Any], muts: list[tuple[str, int, Any, str]]) -> dict[str, Any]:
    for how, pos, value, key in muts:
        keys = sorted(body)
        if how == "extra":
            body[key or "extra"] = value
        elif keys and how == "drop":
            body.pop(keys[pos % len(keys)])
        elif keys:
            body[keys[pos % len(keys)]] = value
    return body


def damaged(draw: st.DrawFn, rough: bool, body: dict[str, Any]) -> dict[str, Any]:
    return mutate(body, draw(pick(rough, st.just([]), damage)))


@st.composite
def release_bodies(draw: st.DrawFn, env: str) -> dict[str, Any]:
    mode = draw(st.sampled_from(["clean", "one defect", "rough"]), label="mode")
    body = release_body(draw, env, rough=mode == "rough")
    if mode == "one defect":
        release_defect(draw, body)
    return body


def release_defect(draw: st.DrawFn, body: dict[str, Any]) -> None:
    """One targeted defect in an otherwise valid Release: each of Stella's rules is hit."""
    spec = body["spec"]
    comps = spec["components"]
    k = draw(st.integers(0, len(comps) - 1))
    defect = draw(
        st.sampled_from(
            [
                "registry",
                "digest",
                "tag",
                "environment",
                "secret",
                "forged",
                "huge",
                "duplicate",
                "missing",
                "extra",
                "type",
                "unicode",
            ]
        ),
        label="defect",
    )
    if defect == "registry":
        comps[k]["image"] = f"{draw(bad_repo)}@{draw(good_digest)}"
    elif defect == "digest":
        comps[k]["image"] = f"{draw(good_repo)}@{draw(bad_digest)}"
    elif defect == "tag":
        comps[k]["image"] = f"{draw(good_repo)}:{draw(st.text(max_size=20))}"
    elif defect == "environment":
        spec["environments"] = draw(st.lists(dns, min_size=1, max_size=16, unique=True))
    elif defect == "secret":
        spec["description"] = draw(
            st.sampled_from(["password=hunter2", "token: ghp_" + "a" * 36, "AKIAIOSFODNN7EXAMPLE"])
        )
    elif defect == "forged":
        body["metadata"]["annotations"] = {
            "stella.io/requester": json.dumps({"username": "bob", "groups": ["release-approvers"]})
        }
    elif defect == "huge":
        spec["components"] = [
            {**comps[0], "name": f"c{i}"} for i in range(draw(st.integers(45, 200)))
        ]
    elif defect == "duplicate":
        spec["components"] = [comps[0], dict(comps[0])]
    elif defect == "missing":
        spec.pop(draw(st.sampled_from(sorted(spec))))
    elif defect == "extra":
        spec[draw(st.sampled_from(["requester", "requestedBy", "status", "x"]))] = draw(junk)
    elif defect == "type":
        spec[draw(st.sampled_from(sorted(spec)))] = draw(junk)
    else:
        spec["description"] = draw(
            st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=300)
        )


def release_body(draw: st.DrawFn, env: str, rough: bool) -> dict[str, Any]:
    count = draw(pick(rough, st.integers(1, 4), st.one_of(st.just(0), st.integers(45, 70))))
    comps = [damaged(draw, rough, draw(component(rough))) for _ in range(count)]
    if not rough or draw(st.booleans()):  # component names unique
        for i, c in enumerate(comps):
            if isinstance(c.get("name"), str):
                c["name"] = f"c{i}-{c['name']}"[:63].rstrip("-")
    environments = draw(
        pick(
            rough,
            st.just([env]),
            st.one_of(st.lists(st.one_of(st.just(env), dns, bad_name), max_size=20), junk),
        )
    )
    version = pick(
        rough,
        st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z"),
        st.one_of(st.text(max_size=80), junk),
    )
    spec = damaged(
        draw,
        rough,
        {
            "version": draw(version),
            "components": comps,
            "environments": environments,
            "description": draw(pick(rough, good_text, bad_text)),
        },
    )
    meta: dict[str, Any] = {"generateName": draw(pick(rough, st.just("fz-"), st.text(max_size=20)))}
    if rough and draw(st.integers(0, 3)) == 0:
        meta["annotations"] = draw(
            st.dictionaries(
                st.sampled_from(["stella.io/requester", "stella.io/approver", "team", "note"]),
                st.one_of(st.text(max_size=40), st.just(json.dumps({"username": "bob"}))),
                min_size=1,
                max_size=2,
            )
        )
    body = {"apiVersion": f"{G}/{V}", "kind": "Release", "metadata": meta, "spec": spec}
    if rough and draw(st.integers(0, 9)) == 0:
        body["spec"] = draw(junk)  # no spec at all, or not an object
    return body


@st.composite
def approval_bodies(draw: st.DrawFn, rel: str, env: str) -> dict[str, Any]:
    mode = draw(st.sampled_from(["clean", "one defect", "rough"]), label="mode")
    body = approval_body(draw, rel, env, rough=mode == "rough")
    if mode == "one defect":
        approval_defect(draw, body)
    return body


def approval_defect(draw: st.DrawFn, body: dict[str, Any]) -> None:
    spec = body["spec"]
    defect = draw(
        st.sampled_from(
            [
                "release",
                "environment",
                "decision",
                "long",
                "secret",
                "identity",
                "forged",
                "missing",
                "type",
                "unicode",
            ]
        ),
        label="defect",
    )
    if defect == "release":
        spec["release"] = draw(dns)
    elif defect == "environment":
        spec["environment"] = draw(dns)
    elif defect == "decision":
        spec["decision"] = draw(st.sampled_from(["approve", "APPROVE", "Approved", "", "Withdraw"]))
    elif defect == "long":
        spec["comment"] = draw(st.text(min_size=1025, max_size=1200))
    elif defect == "secret":
        spec["comment"] = draw(st.sampled_from(["password=hunter2", "AKIAIOSFODNN7EXAMPLE"]))
    elif defect == "identity":
        spec[draw(st.sampled_from(["approver", "approvedBy", "user", "groups"]))] = "carol"
    elif defect == "forged":
        body["metadata"]["annotations"] = {
            "stella.io/approver": json.dumps({"username": "carol", "groups": ["release-approvers"]})
        }
    elif defect == "missing":
        spec.pop(draw(st.sampled_from(sorted(spec))))
    elif defect == "type":
        spec[draw(st.sampled_from(sorted(spec)))] = draw(junk)
    else:
        spec["comment"] = draw(st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=300))


def approval_body(draw: st.DrawFn, rel: str, env: str, rough: bool) -> dict[str, Any]:
    spec = damaged(
        draw,
        rough,
        {
            "release": draw(pick(rough, st.just(rel), st.one_of(dns, bad_name))),
            "environment": draw(pick(rough, st.just(env), st.one_of(dns, bad_name))),
            "decision": draw(
                pick(
                    rough,
                    st.sampled_from(["Approve", "Reject"]),
                    st.one_of(st.text(max_size=10), junk),
                )
            ),
            "comment": draw(pick(rough, good_text, bad_text)),
        },
    )
    meta: dict[str, Any] = {"generateName": "fz-"}
    if rough and draw(st.integers(0, 4)) == 0:  # a claim of identity in the spec
        key = draw(st.sampled_from(["approver", "approvedBy", "requester", "user", "groups"]))
        spec = mutate(spec, [("extra", 0, draw(junk), key)])
    if rough and draw(st.integers(0, 4)) == 0:
        meta["annotations"] = {
            "stella.io/approver": draw(
                st.one_of(
                    st.text(max_size=40), st.just(json.dumps({"username": "carol", "groups": []}))
                )
            ),
        }
    if rough and draw(st.integers(0, 4)) == 0:  # a claim of what was judged
        meta.setdefault("annotations", {})["stella.io/judged"] = draw(
            st.one_of(st.text(max_size=40), st.just(f"v2:{rel}/{env}/Approve"))
        )
    body = {"apiVersion": f"{G}/{V}", "kind": "Approval", "metadata": meta, "spec": spec}
    if rough and draw(st.integers(0, 9)) == 0:
        body["spec"] = draw(junk)
    return body


# ---- the properties ------------------------------------------------------------------------
def send(call: Any) -> dict[str, Any] | None:
    """The admitted object, or None when refused; a 5xx or a fail-closed refusal fails."""
    try:
        return call()  # type: ignore[no-any-return]
    except ApiException as exc:
        assert exc.status is not None and exc.status < 500, f"HTTP {exc.status}: {exc.body}"
        assert "could not evaluate" not in (exc.body or ""), exc.body
        webhook = re.search(r'admission webhook \\"([a-z-]+)', exc.body or "")
        event(f"refused {exc.status}" + (f" by {webhook.group(1)}" if webhook else ""))
        return None


def assert_valid_release(obj: dict[str, Any]) -> None:
    spec = ReleaseSpec.model_validate(obj["spec"])
    assert all(PINNED.fullmatch(c.image) for c in spec.components), spec
    who = json.loads(obj["metadata"]["annotations"]["stella.io/requester"])
    assert who["username"] == "alice", who


def release_copy(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{G}/{V}", "kind": "Release", "spec": body["spec"]}


def assert_valid_approval(obj: dict[str, Any]) -> None:
    spec = ApprovalSpec.model_validate(obj["spec"])
    ann = obj["metadata"]["annotations"]
    who = json.loads(ann["stella.io/approver"])
    assert who["username"] == "bob", who
    # Judged in the one call (admit-approval), exactly as stored: what validate-approval's
    # matchCondition relies on to skip it.
    assert ann["stella.io/judged"] == f"v2:{spec.release}/{spec.environment}/{spec.decision}", ann


@FUZZ
@given(data=st.data())
def test_fuzzed_releases_never_5xx_and_never_store_invalid(
    target: Target, data: st.DataObject
) -> None:
    body = data.draw(release_bodies(target.env), label="release")
    made = send(
        lambda: target.alice.create_namespaced_custom_object(
            G, V, target.ns, "releases", body, dry_run="All"
        )
    )
    if made is None:
        return
    assert_valid_release(made)
    event("admitted")
    if data.draw(st.integers(0, 3), label="for real") == 0:
        stored = send(
            lambda: target.alice.create_namespaced_custom_object(G, V, target.ns, "releases", body)
        )
        if stored is None:
            return
        name = stored["metadata"]["name"]
        assert_valid_release(
            target.admin.get_namespaced_custom_object(G, V, target.ns, "releases", name)
        )
        target.admin.delete_namespaced_custom_object(G, V, target.ns, "releases", name)


@FUZZ
@given(data=st.data())
def test_fuzzed_approvals_never_5xx_and_never_store_invalid(
    target: Target, data: st.DataObject
) -> None:
    body = data.draw(approval_bodies(target.release, target.env), label="approval")
    made = send(
        lambda: target.bob.create_namespaced_custom_object(
            G, V, target.ns, "approvals", body, dry_run="All"
        )
    )
    if made is None:
        return
    assert_valid_approval(made)
    event("admitted")
    if data.draw(st.integers(0, 3), label="for real") == 0:
        # Against a Release of its own: once stored, bob has decided on it, and the shared
        # base Release must stay undecided for the next example.
        fresh = f"fz-{uuid.uuid4().hex[:8]}"
        base = target.admin.get_namespaced_custom_object(G, V, target.ns, "releases", "base")
        target.alice.create_namespaced_custom_object(
            G, V, target.ns, "releases", {**release_copy(base), "metadata": {"name": fresh}}
        )
        body = {**body, "spec": {**body["spec"], "release": fresh}}
        ann = body["metadata"].get("annotations") or {}
        if ann.get("stella.io/judged") == f"v2:{target.release}/{target.env}/Approve":
            # The claim was what Stella writes for the base Release: for the fresh one,
            # what Stella writes for that (the base's would be forged now).
            body["metadata"] = {
                **body["metadata"],
                "annotations": {**ann, "stella.io/judged": f"v2:{fresh}/{target.env}/Approve"},
            }
        stored = eventually(
            lambda: send(
                lambda: target.bob.create_namespaced_custom_object(
                    G, V, target.ns, "approvals", body
                )
            ),
            what="the approval of a fresh Release",
            timeout=10,
        )
        if stored is None:
            return
        name = stored["metadata"]["name"]
        assert_valid_approval(
            target.admin.get_namespaced_custom_object(G, V, target.ns, "approvals", name)
        )
        # Nobody deletes an Approval while it binds its Release (not even the operator).
        with pytest.raises(ApiException):
            target.operator.delete_namespaced_custom_object(G, V, target.ns, "approvals", name)


# ---- issue 9: stamps in annotations, and Actions ---------------------------------------------
STAMPS = [
    "stella.io/requester",
    "stella.io/approver",
    "stella.io/actor",
    "stella.io/bound-to",
    "stella.io/judged",
    "stella.io/rollback",
    "stella.io/rollback-of",
    "stella.io/promote",
    "stella.io/clear-halt",
]
stamp_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            json.dumps({"username": "bob", "uid": "", "groups": ["release-approvers"]}),
            json.dumps({"username": "alice", "uid": "", "groups": []}),
            json.dumps({"uid": "x", "specDigest": "sha256:" + "0" * 64}),
            json.dumps({"of": "a/b", "uid": "x", "environment": "prod"}),
            "base",
            "2099-01-01T00:00:00Z forged",
        ]
    ),
)
# (not named `annotations`: mypy takes that for the __future__ feature imported above)
stamp_maps = st.dictionaries(st.sampled_from(STAMPS), stamp_values, max_size=3)


@st.composite
def action_bodies(draw: st.DrawFn, ns: str, rel: str, env: str) -> dict[str, Any]:
    rough = draw(st.booleans(), label="rough")
    kind = draw(
        pick(rough, st.sampled_from(["Promote", "ClearHalt", "Suspend", "Resume"]), junk),
        label="action",
    )
    spec: dict[str, Any] = {
        "action": kind,
        "environment": draw(pick(rough, st.just(env), bad_name)),
        "reason": draw(pick(rough, st.sampled_from(["INC-1", "CAB-2"]), bad_text)),
    }
    if kind == "Promote" or draw(st.integers(0, 9)) == 0:
        spec["release"] = draw(pick(rough, st.just(f"{ns}/{rel}"), bad_name))
    body: dict[str, Any] = {
        "apiVersion": f"{G}/{V}",
        "kind": "Action",
        "metadata": {"generateName": "fz-", "annotations": draw(stamp_maps)},
        "spec": damaged(draw, rough, spec),
    }
    return body


def assert_valid_action(obj: dict[str, Any]) -> None:
    from stella.models.action import ActionSpec

    ActionSpec.model_validate(obj["spec"])
    ann = obj["metadata"]["annotations"]
    assert json.loads(ann["stella.io/actor"])["username"] == "bob", ann
    assert "stella.io/requester" not in ann and "stella.io/approver" not in ann, ann
    assert "stella.io/judged" not in ann, ann
    if obj["spec"]["action"] == "Promote":
        assert json.loads(ann["stella.io/bound-to"])["specDigest"].startswith("sha256:")
    else:
        assert "stella.io/bound-to" not in ann, ann


@FUZZ
@given(data=st.data())
def test_fuzzed_actions_never_5xx_and_never_store_invalid(
    target: Target, data: st.DataObject
) -> None:
    body = data.draw(action_bodies(target.ns, target.release, target.env), label="action")
    made = send(
        lambda: target.bob.create_cluster_custom_object(G, V, "actions", body, dry_run="All")
    )
    if made is None:
        return
    assert_valid_action(made)
    event("admitted")


@FUZZ
@given(data=st.data())
def test_fuzzed_stamps_on_releases_are_refused_unless_they_are_stellas(
    target: Target, data: st.DataObject
) -> None:
    base = release(f"{ALLOWED_REGISTRY}/shop/web@sha256:{'b' * 64}", [target.env])
    body = {**base, "metadata": {"generateName": "fz-", "annotations": data.draw(stamp_maps)}}
    made = send(
        lambda: target.alice.create_namespaced_custom_object(
            G, V, target.ns, "releases", body, dry_run="All"
        )
    )
    if made is None:
        return
    assert_valid_release(made)
    ann = made["metadata"]["annotations"]
    # Nothing was ever deployed in the fuzz Environment: no rollback can be admitted.
    assert "stella.io/rollback" not in ann and "stella.io/rollback-of" not in ann, ann
    assert not {"stella.io/approver", "stella.io/actor", "stella.io/bound-to"} & set(ann), ann
    assert "stella.io/judged" not in ann, ann
    event("admitted")
