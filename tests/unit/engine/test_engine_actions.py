"""What people's Actions mean to the engine (pure): judged once, then derived from the
Done ones, so a restart neither loses nor repeats one."""

from __future__ import annotations

from typing import Any

from stella.engine.actions import halt_cleared_by, judge, promoters, suspension_of
from stella.engine.view import ClusterView
from stella.policy.binding import BINDING_ANNOTATION, binding_of, format_binding
from stella.policy.identity import Identity, format_identity

FRANK = Identity("frank", "u-f", frozenset({"platform-engineers"}))


def act(
    kind: str, at: str, phase: str | None = None, stamped: bool = True, **spec: Any
) -> dict[str, Any]:
    ann = {"stella.io/actor": format_identity(FRANK)} if stamped else {}
    body: dict[str, Any] = {
        "metadata": {"name": f"{kind.lower()}-{at}", "creationTimestamp": at, "annotations": ann},
        "spec": {"action": kind, "environment": "prod", **spec},
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


def env(halted_since: str | None = None, **spec: Any) -> dict[str, Any]:
    status = {}
    if halted_since:
        status["halted"] = {"reason": "DigestMismatch", "since": halted_since}
    return {"metadata": {"name": "prod"}, "spec": spec, "status": status}


def release(uid: str = "u1", image: str = "r/w@sha256:" + "1" * 64) -> dict[str, Any]:
    return {
        "metadata": {"name": "rel", "namespace": "shop", "uid": uid},
        "spec": {"version": "1", "environments": ["prod"], "components": [{"image": image}]},
    }


def test_a_clear_lifts_only_a_halt_older_than_it() -> None:
    view = ClusterView()
    older = act("ClearHalt", "2026-11-28T10:00:00Z", reason="x")
    newer = act("ClearHalt", "2026-11-28T12:00:00Z", reason="x")
    assert judge(older, env("2026-11-28T11:00:00Z"), view).reason == "HaltIsNewer"
    assert judge(newer, env("2026-11-28T11:00:00Z"), view).phase == "Done"
    assert judge(newer, env(), view).reason == "NotHalted"
    done = [act("ClearHalt", "2026-11-28T12:00:00Z", "Done", reason="x")]
    from datetime import UTC, datetime

    assert halt_cleared_by(done, datetime(2026, 11, 28, 11, tzinfo=UTC)) is not None
    # A later halt is not lifted by an earlier clear; a Refused clear lifts nothing.
    assert halt_cleared_by(done, datetime(2026, 11, 28, 13, tzinfo=UTC)) is None
    refused = [act("ClearHalt", "2026-11-28T12:00:00Z", "Refused", reason="x")]
    assert halt_cleared_by(refused, datetime(2026, 11, 28, 11, tzinfo=UTC)) is None


def test_an_unstamped_action_is_refused() -> None:
    verdict = judge(act("Suspend", "2026-11-28T10:00:00Z", stamped=False), env(), ClusterView())
    assert verdict.phase == "Refused" and verdict.reason == "Unstamped"


def test_the_newest_done_suspend_or_resume_decides() -> None:
    s = act("Suspend", "2026-11-28T10:00:00Z", "Done", reason="INC")
    r = act("Resume", "2026-11-28T11:00:00Z", "Done")
    pending = act("Suspend", "2026-11-28T12:00:00Z")
    got = suspension_of([s])
    assert got is not None and got.by == "frank" and got.reason == "INC"
    assert suspension_of([s, r]) is None
    assert suspension_of([s, r, pending]) is None  # not carried out yet


def test_a_resume_in_the_same_second_as_its_suspend_comes_after_it() -> None:
    """The API server's creationTimestamp has seconds; "resume-…" sorts before "suspend-…"
    by name. The order is the watch's (etcd's) and then the order the engine carried them
    out — not the names."""
    view = ClusterView()
    same = "2026-11-28T10:00:00Z"
    suspend = act("Suspend", same, reason="INC")
    resume = act("Resume", same)
    view.apply("Action", "ADDED", suspend)
    view.apply("Action", "ADDED", resume)
    assert [a["spec"]["action"] for a in view.actions_for("prod")] == ["Suspend", "Resume"]
    # Carried out in that order, a microsecond apart: the Resume is the newest.
    suspend["status"] = {"phase": "Done", "processedAt": "2026-11-28T10:00:00.100001+00:00"}
    resume["status"] = {"phase": "Done", "processedAt": "2026-11-28T10:00:00.100002+00:00"}
    assert suspension_of(view.actions_for("prod")) is None
    # Whatever order they are listed in (a restart re-lists by name), processedAt decides.
    assert suspension_of([resume, suspend]) is None
    resume["status"]["processedAt"] = "2026-11-28T10:00:00.100000+00:00"
    got = suspension_of([resume, suspend])
    assert got is not None and got.reason == "INC"


def test_a_promote_counts_only_for_the_release_it_was_bound_to() -> None:
    rel = release()
    binding = binding_of(rel)
    assert binding is not None
    promote = act("Promote", "2026-11-28T10:00:00Z", "Done", release="shop/rel")
    promote["metadata"]["annotations"][BINDING_ANNOTATION] = format_binding(binding)
    assert promoters([promote], rel) == ["frank"]
    assert promoters([promote], release(uid="u2")) == []  # re-created under the same name
    assert promoters([promote], release(image="r/w@sha256:" + "2" * 64)) == []
    pending = dict(promote, status={})
    assert promoters([pending], rel) == []
    view = ClusterView()
    view.releases[("shop", "rel")] = release(uid="u2")
    verdict = judge(dict(promote, status={}), env(), view)
    assert verdict.phase == "Refused" and verdict.reason == "ReleaseReplaced"
