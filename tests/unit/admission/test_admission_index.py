"""The secondary indexes follow their mapping through every kind of change."""

from __future__ import annotations

from typing import Any

from admission_factories import BOB, CAROL, approval_body, digest, image, release_body
from hypothesis import given, settings
from hypothesis import strategies as st

from stella.admission.index import DecisionIndex, DigestIndex


def rel(n: int, phase: str | None) -> dict[str, Any]:
    return release_body(name=f"r{n}", images=(image(n),), phases={"prod": phase} if phase else None)


def test_digest_index_add_change_remove_reorder() -> None:
    idx = DigestIndex()
    src: dict[tuple[str, str], Any] = {
        ("shop", "r1"): rel(1, "Deployed"),
        ("shop", "r2"): rel(2, None),
    }
    idx.sync(src)
    assert idx.approved(digest(1), "prod") and not idx.approved(digest(2), "prod")
    src[("shop", "r2")] = rel(2, "Deploying")
    idx.sync(src)
    assert idx.approved(digest(2), "prod")
    del src[("shop", "r1")]
    src[("shop", "r3")] = rel(3, "Deployed")  # same length, other keys
    idx.sync(src)
    assert not idx.approved(digest(1), "prod") and idx.approved(digest(3), "prod")
    body = src.pop(("shop", "r2"))
    src[("shop", "r2")] = body  # re-inserted: other order
    idx.sync(src)
    assert idx.approved(digest(2), "prod") and idx.approved(digest(3), "prod")
    src.clear()
    idx.sync(src)
    assert not idx.approved(digest(2), "prod")


def test_an_equal_copy_counts_as_unchanged_and_later_changes_are_seen() -> None:
    idx = DigestIndex()
    src = {("shop", "r1"): rel(1, "Deployed")}
    idx.sync(src)
    src[("shop", "r1")] = rel(1, "Deployed")  # equal, not identical
    idx.sync(src)
    src[("shop", "r1")] = rel(1, "Failed")
    idx.sync(src)
    assert not idx.approved(digest(1), "prod")


def test_decision_index() -> None:
    idx = DecisionIndex()
    src = {("shop", "a"): approval_body(name="a", approver=BOB)}
    idx.sync(src)
    assert [d[1] for d in idx.decisions("shop", "shop-1-4-2", "prod")] == [BOB]
    src[("shop", "b")] = approval_body(name="b", approver=CAROL, decision="Reject")
    src[("shop", "junk")] = {"spec": {"release": 3}}
    idx.sync(src)
    assert {d[0] for d in idx.decisions("shop", "shop-1-4-2", "prod")} == {"a", "b"}
    assert idx.decisions("other", "shop-1-4-2", "prod") == []


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from([None, "Deployed", "Pending", "delete"])),
        max_size=40,
    )
)
def test_index_equals_a_fresh_build_after_any_sequence(ops: list[tuple[int, str | None]]) -> None:
    idx = DigestIndex()
    src: dict[tuple[str, str], Any] = {}
    for n, phase in ops:
        key = ("shop", f"r{n}")
        if phase == "delete":
            src.pop(key, None)
        else:
            src[key] = rel(n, phase)
        idx.sync(src)
        fresh = DigestIndex()
        fresh.sync(src)
        for m in range(7):
            assert idx.approved(digest(m), "prod") == fresh.approved(digest(m), "prod")
