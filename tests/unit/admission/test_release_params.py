"""The release-create policy's parameter (admission/release_params.py): what the operator
publishes for the API server to judge a Release CREATE by, including T10's quota and loop
detection. The CEL that reads it runs in tests/e2e/test_release_policies_e2e.py against the
real API server; here the Python side, and mirrors of the CEL's reading of it."""

from __future__ import annotations

import gc
import re
import tracemalloc
from datetime import UTC, datetime, timedelta

from admission_factories import REGISTRY, environment_body, release_body, world
from admission_factories import image as image_ref
from hypothesis import given
from hypothesis import strategies as st

from stella.admission.base import Snapshot
from stella.admission.configuration import PLAIN_IMAGE
from stella.admission.quotas import pending
from stella.admission.release_params import LoopIndex, loop_key, release_params, selector_lines
from stella.models.common import LabelSelector
from stella.registry.reference import normalize_registry, parse_image_ref

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def params(view: Snapshot, quota: int = 500, threshold: int = 5) -> dict[str, str]:
    return release_params(
        view,
        quota=quota,
        loop_threshold=threshold,
        loop_window=600.0,
        now=NOW.timestamp(),
    )


def created(body: dict[str, object], ago: float, uid: str) -> dict[str, object]:
    meta = body["metadata"]
    assert isinstance(meta, dict)
    meta["creationTimestamp"] = (NOW - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["uid"] = uid
    return body


def test_pending_counts_unfinished_releases_only() -> None:
    assert pending(release_body())  # never evaluated
    assert pending(release_body(phases={"dev": "Deployed", "staging": "WaitingForApproval"}))
    assert not pending(
        release_body(phases={"dev": "Deployed", "staging": "Superseded", "prod": "Rejected"})
    )


def test_every_environment_with_its_registries_and_namespaces() -> None:
    view = world()
    view.environments["any"] = environment_body("any")
    view.environments["hub"] = environment_body(
        "hub", allowedRegistries=["Index.Docker.io", "REGISTRY.example.com"]
    )
    data = params(view)
    assert data["registries.dev"] == f"\n{REGISTRY}\n"
    assert data["registries.any"] == ""  # exists, any registry
    assert data["registries.hub"] == "\ndocker.io\nregistry.example.com\n"
    assert data["namespaces.prod"] == "In team |shop|\n"
    assert "namespaces.dev" not in data
    assert "full" not in data and "loops" not in data
    assert (data["quota"], data["loopThreshold"], data["loopWindow"]) == ("500", "5", "600")


def test_an_invalid_environment_is_published_as_invalid_not_as_missing() -> None:
    view = world()
    view.environments["broken"] = environment_body("broken", approvals={"required": "lots"})
    data = params(view)
    assert "registries.broken" not in data
    assert data["invalid.broken"]


def test_a_namespace_at_its_quota_is_published_full() -> None:
    view = world()  # holds one unfinished Release in shop
    view.releases[("shop", "r2")] = release_body("r2")
    view.releases[("team", "t1")] = release_body("t1", "team")
    view.releases[("done", "d1")] = release_body(
        "d1", "done", phases={"dev": "Deployed", "staging": "Deployed", "prod": "Deployed"}
    )
    view.releases[("done", "d2")] = release_body(
        "d2", "done", phases={"dev": "Deployed", "staging": "Deployed", "prod": "Failed"}
    )
    assert params(view, quota=2)["full"] == "\nshop\n"
    assert params(view, quota=1)["full"] == "\nshop\nteam\n"
    assert "full" not in params(view, quota=3)


def test_the_same_spec_created_threshold_times_in_the_window_is_a_loop() -> None:
    view = world()
    for i in range(3):
        body = created(release_body(f"ci-{i}"), ago=10 * i, uid=f"u{i}")
        view.releases[("shop", f"ci-{i}")] = body
    # The same spec in another namespace is another count; an old one has left the window.
    view.releases[("team", "ci-x")] = created(release_body("ci-x", "team"), 5, "ux")
    view.releases[("shop", "old")] = created(release_body("old"), 700, "uold")
    key = loop_key(release_body()["spec"])
    # world() itself holds one more without a creation time: never counted.
    assert params(view, threshold=3)["loops"] == f"\nshop {key}\n"
    assert "loops" not in params(view, threshold=4)
    # Deleting what the loop made does not hide it.
    del view.releases[("shop", "ci-0")]
    assert params(view, threshold=3)["loops"] == f"\nshop {key}\n"


def test_a_threshold_of_one_refuses_a_spec_created_once() -> None:
    view = world()
    view.releases[("shop", "once")] = created(release_body("once"), ago=10, uid="u1")
    key = loop_key(release_body()["spec"])
    assert "loops" not in params(view, threshold=2)  # an index without the texts, first
    assert params(view, threshold=1)["loops"] == f"\nshop {key}\n"


def test_a_release_seen_again_is_not_another_create() -> None:
    """A Release's later versions (status writes, a relist) are the same create: its uid."""
    view = world()
    body = created(release_body("ci-0"), ago=10, uid="u0")
    view.releases[("shop", "ci-0")] = body
    for version in range(3):
        again = created(release_body("ci-0"), ago=10, uid="u0")
        again["status"] = {"summary": str(version)}
        view.releases[("shop", "ci-0")] = again
        assert "loops" not in params(view, threshold=2)
    view.releases[("shop", "ci-1")] = created(release_body("ci-1"), ago=5, uid="u1")
    for _ in range(2):
        view.releases[("shop", "ci-1")] = created(release_body("ci-1"), ago=5, uid="u1")
        assert params(view, threshold=2)["loops"].count("\nshop ") == 1
        assert "loops" not in params(view, threshold=3)


def test_creates_leave_the_window_once_or_repeated() -> None:
    view = world()
    view.releases[("shop", "a")] = created(release_body("a"), ago=590, uid="ua")
    view.releases[("shop", "b")] = created(release_body("b"), ago=300, uid="ub")
    other = release_body("c", images=(image_ref(2),))
    view.releases[("shop", "c")] = created(other, ago=599, uid="uc")
    key = loop_key(release_body()["spec"])
    assert params(view, threshold=2)["loops"] == f"\nshop {key}\n"
    # 20 seconds on, the older of the two and the single one have left the window.
    later = release_params(
        view,
        quota=500,
        loop_threshold=1,
        loop_window=600.0,
        now=NOW.timestamp() + 20,
    )
    assert later["loops"] == f"\nshop {key}\n"
    assert "loops" not in release_params(
        view,
        quota=500,
        loop_threshold=2,
        loop_window=600.0,
        now=NOW.timestamp() + 20,
    )


def test_the_loop_key_is_version_environments_and_components() -> None:
    spec = release_body(images=("a/b@sha256:" + "1" * 64, "c@sha256:" + "2" * 64))["spec"]
    assert loop_key(spec) == (
        "1.4.2|dev,staging,prod|c0=a/b@sha256:" + "1" * 64 + ",c1=c@sha256:" + "2" * 64
    )
    assert loop_key({}) == "||"


# ---- mirrors of the policy's CEL ------------------------------------------------------------
def cel_selects(lines: str, labels: dict[str, str]) -> bool:
    """The policy's `outside` variable, line for line, in Python."""
    for line in lines.split("\n"):
        if not line:
            continue
        op, key, values = line.split(" ")
        if op == "In":
            ok = key in labels and f"|{labels[key]}|" in values
        elif op == "NotIn":
            ok = key not in labels or f"|{labels[key]}|" not in values
        elif op == "Exists":
            ok = key in labels
        else:
            ok = key not in labels
        if not ok:
            return False
    return True


KEYS = st.sampled_from(["team", "tier", "example.com/zone"])
VALUES = st.sampled_from(["shop", "web", "a-b", "x.y"])
SELECTORS = st.builds(
    lambda labels, exprs: LabelSelector.model_validate(
        {"matchLabels": labels, "matchExpressions": exprs}
    ),
    st.dictionaries(KEYS, VALUES, max_size=2),
    st.lists(
        st.one_of(
            st.builds(
                lambda k, op, v: {"key": k, "operator": op, "values": v},
                KEYS,
                st.sampled_from(["In", "NotIn"]),
                st.lists(VALUES, max_size=3),
            ),
            st.builds(
                lambda k, op: {"key": k, "operator": op},
                KEYS,
                st.sampled_from(["Exists", "DoesNotExist"]),
            ),
        ),
        max_size=3,
    ),
)


@given(SELECTORS, st.dictionaries(KEYS, VALUES, max_size=3))
def test_the_published_selector_selects_what_the_selector_does(
    selector: LabelSelector, labels: dict[str, str]
) -> None:
    assert cel_selects(selector_lines(selector), labels) == selector.matches(labels)


def cel_registry(image: str) -> str:
    """The policy's `registries` variable for one image, in Python."""
    parts = image.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        host = first.lower()
        return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
    return "docker.io"


IMAGES = st.builds(
    lambda host, path, tag, digest: f"{host}{path}{tag}@sha256:{digest}",
    st.sampled_from(
        [
            "",
            "registry.example.com/",
            "localhost/",
            "localhost:5000/",
            "a-b.c:80/",
            "Reg.io/",
            "index.docker.io/",
            "myreg/",
            "[::1]:5000/",
            "x..y/",
        ]
    ),
    st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)?(/[a-zA-Z0-9._-]{1,8}){0,2}", fullmatch=True),
    st.sampled_from(["", ":1.0", ":latest", ":-bad", ":" + "t" * 130]),
    st.from_regex(r"[a-f0-9]{64}", fullmatch=True),
)


@given(IMAGES)
def test_an_image_the_policy_judges_alone_parses_to_the_registry_the_policy_reads(
    image: str,
) -> None:
    """An image matching PLAIN_IMAGE (the webhook is skipped for it) always parses, and the
    policy's registry is admission's; anything else goes to the webhook."""
    if not (len(image) <= 300 and re.fullmatch(PLAIN_IMAGE, image)):
        return
    ref = parse_image_ref(image)
    assert cel_registry(image) == normalize_registry(ref.registry)


def test_plain_images_cover_the_usual_references() -> None:
    for image in (
        f"{REGISTRY}/shop/web@sha256:{'a' * 64}",
        f"{REGISTRY}:5000/shop/web:1.2@sha256:{'a' * 64}",
        f"localhost:5000/web@sha256:{'a' * 64}",
        f"nginx@sha256:{'a' * 64}",
    ):
        assert re.fullmatch(PLAIN_IMAGE, image), image
    for image in (f"Shop/web@sha256:{'a' * 64}", f"myreg:5000/web@sha256:{'a' * 64}"):
        assert not re.fullmatch(PLAIN_IMAGE, image), image


def test_a_release_seen_again_after_it_left_the_window_is_not_counted_again() -> None:
    view = world()
    view.releases[("shop", "a")] = created(release_body("a"), ago=590, uid="ua")
    view.releases[("shop", "b")] = created(release_body("b"), ago=300, uid="ub")
    key = loop_key(release_body()["spec"])
    assert params(view, threshold=2)["loops"] == f"\nshop {key}\n"
    later = NOW.timestamp() + 20  # "a" has left the window
    args = {"quota": 500, "loop_threshold": 2, "loop_window": 600.0, "now": later}
    assert "loops" not in release_params(view, **args)  # type: ignore[arg-type]
    # A relist hands the index a new body object for the same Release: still left.
    view.releases[("shop", "a")] = created(release_body("a"), ago=590, uid="ua")
    assert "loops" not in release_params(view, **args)  # type: ignore[arg-type]
    # So does a stale relist that brings back one already gone from the view.
    del view.releases[("shop", "a")]
    assert "loops" not in release_params(view, **args)  # type: ignore[arg-type]
    view.releases[("shop", "a")] = created(release_body("a"), ago=590, uid="ua")
    assert "loops" not in release_params(view, **args)  # type: ignore[arg-type]


def test_the_window_holds_a_create_in_tens_of_bytes_not_in_objects() -> None:
    """T10: 30,000 to 50,000 creates are held for the window; as Python objects they pinned
    CPython's memory pools (session 24: 468, then 216 bytes a create, and RSS growth)."""
    index = LoopIndex()
    base = NOW.timestamp() - 590
    bodies = []
    for i in range(20_000):
        body = release_body(f"r{i}", images=(image_ref(i % 50),))
        body["spec"]["version"] = f"v{i}"
        meta = body["metadata"]
        assert isinstance(meta, dict)
        stamp = datetime.fromtimestamp(base + i * 0.025, UTC)
        meta["creationTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["uid"] = f"uid-{i}"
        bodies.append((("shop", f"r{i}"), body))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        objects = len(gc.get_objects())
        for key, body in bodies:
            index._add(key, body)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracked = len(gc.get_objects()) - objects
    finally:
        tracemalloc.stop()
    assert len(index) == 20_000
    assert grown / 20_000 < 100, f"{grown / 20_000:.0f} bytes a create"
    # One array per creation second (500 here), none per create.
    assert tracked <= 510, f"{tracked} more objects for 20,000 creates"
    assert index.looping(NOW.timestamp(), 2, 600.0) == []
