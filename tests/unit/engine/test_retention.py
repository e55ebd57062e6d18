"""Which finished Releases the opt-in retention deletes (stella.engine.retention.prunable):
the newest N finished per namespace stay, unfinished ones and those an Environment names
stay, off means nothing goes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stella.engine.retention import finished, named_by_environments, prunable
from stella.engine.view import ReleaseKey


def rel(ns: str, name: str, minute: int, *phases: str) -> tuple[ReleaseKey, dict[str, Any]]:
    body = {
        "metadata": {
            "namespace": ns,
            "name": name,
            "creationTimestamp": f"2026-11-30T08:{minute:02d}:00Z",
        },
        "status": {"environments": [{"name": f"e{i}", "phase": p} for i, p in enumerate(phases)]},
    }
    return (ns, name), body


def test_off_deletes_nothing() -> None:
    releases = [rel("shop", f"r{i}", i, "Superseded") for i in range(5)]
    assert prunable(releases, 0, set()) == []


def test_keeps_the_newest_finished_per_namespace_and_every_unfinished() -> None:
    releases = [
        rel("shop", "r0", 0, "Superseded"),
        rel("shop", "r1", 1, "Failed"),
        rel("shop", "r2", 2, "Deploying"),  # unfinished, older than the kept ones
        rel("shop", "r3", 3, "Deployed", "Superseded"),
        rel("shop", "r4", 4, "Deployed"),
        rel("shop", "r5", 5),  # never evaluated
        rel("blog", "b0", 0, "Superseded"),
    ]
    assert prunable(releases, 2, set()) == [("shop", "r0"), ("shop", "r1")]


def test_never_deletes_what_an_environment_names() -> None:
    envs: list[dict[str, Any]] = [
        {"status": {"currentRelease": "shop/r0"}},
        {"status": {"inFlight": "shop/r1", "history": [{"release": "shop/r2"}]}},
        {"status": None},
    ]
    named = named_by_environments(envs)
    assert named == {"shop/r0", "shop/r1", "shop/r2"}
    releases = [rel("shop", f"r{i}", i, "Superseded") for i in range(5)]
    assert prunable(releases, 1, named) == [("shop", "r3")]


def test_finished_needs_every_environment_final() -> None:
    assert finished(rel("a", "b", 0, "Deployed", "Rejected")[1])
    assert not finished(rel("a", "b", 0, "Deployed", "Pending")[1])
    assert not finished(rel("a", "b", 0)[1])
    assert not finished({"status": "garbage"})


phases = st.sampled_from(["Deployed", "Failed", "Superseded", "Pending", "Deploying"])


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 59), phases), max_size=30),
    st.integers(1, 5),
)
def test_property_what_goes_is_finished_and_beyond_the_newest_kept(
    items: list[tuple[str, int, str]], keep: int
) -> None:
    releases = [rel(ns, f"r{i}", minute, phase) for i, (ns, minute, phase) in enumerate(items)]
    gone = set(prunable(releases, keep, set()))
    by_key = dict(releases)
    for key in gone:
        assert finished(by_key[key])
    for ns in ("a", "b"):
        done = [k for k, b in releases if k[0] == ns and finished(b)]
        kept = [k for k in done if k not in gone]
        assert len(kept) == min(keep, len(done))
        # every one kept is at least as new as every one deleted
        for g in (k for k in gone if k[0] == ns):
            for k in kept:
                gk = by_key[g]["metadata"]["creationTimestamp"], g[1]
                kk = by_key[k]["metadata"]["creationTimestamp"], k[1]
                assert kk > gk


def test_a_full_batch_sweeps_again_at_once_until_the_backlog_is_gone() -> None:
    from stella.engine.retention import BACKLOG_PAUSE, BATCH, FOLLOW_PAUSE, next_sweep_in

    assert next_sweep_in(BATCH, 30.0) == BACKLOG_PAUSE < FOLLOW_PAUSE  # more are waiting
    # Releases are finishing: follow them soon rather than let a period's worth pile up.
    assert next_sweep_in(BATCH - 1, 30.0) == FOLLOW_PAUSE < 30.0
    assert next_sweep_in(1, 30.0) == FOLLOW_PAUSE
    assert next_sweep_in(1, 1.0) == 1.0  # never later than the period itself
    assert next_sweep_in(0, 30.0) == 30.0  # none went: back to the period
