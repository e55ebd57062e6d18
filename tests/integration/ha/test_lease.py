"""Leader election on a real API server: one holder at a time, takeover only after the
record went unrenewed for the Lease's duration (by the candidate's own clock), an
immediate takeover after a clean release, and a race for a new Lease won by one."""

from __future__ import annotations

import threading
import time

from kubernetes import client

from stella.k8s.lease import LeaseElector, Timing

FAST = Timing(duration=2.0, renew_deadline=1.4, retry=0.2)


def _electors(api: client.ApiClient, ns: str, n: int, name: str = "engine") -> list[LeaseElector]:
    return [LeaseElector(name, ns, api, identity=f"replica-{i}", timing=FAST) for i in range(n)]


def _holder(api: client.ApiClient, ns: str, name: str = "engine") -> tuple[str | None, int]:
    lease = client.CoordinationV1Api(api).read_namespaced_lease(name, ns)
    assert lease.spec is not None
    return lease.spec.holder_identity, int(lease.spec.lease_transitions or 0)


def test_one_holder_and_takeover_only_after_the_duration(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    a, b = _electors(kube_admin, test_namespace, 2)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    # While a renews, b never takes over, however long it waits.
    deadline = time.monotonic() + 3 * FAST.duration
    while time.monotonic() < deadline:
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        time.sleep(FAST.retry)
    assert _holder(kube_admin, test_namespace) == ("replica-0", 0)
    # a stops renewing (killed): b takes over, but not before the duration has passed.
    stopped = time.monotonic()
    while not b.try_acquire_or_renew():
        time.sleep(FAST.retry)
    waited = time.monotonic() - stopped
    assert waited >= FAST.duration - FAST.retry, waited
    assert _holder(kube_admin, test_namespace) == ("replica-1", 1)
    # The old holder learns it lost: it may not renew any more.
    assert not a.try_acquire_or_renew()


def test_a_clean_release_hands_over_at_once(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    a, b = _electors(kube_admin, test_namespace, 2, "handover")
    assert a.try_acquire_or_renew()
    b.release()  # not the holder: changes nothing
    assert _holder(kube_admin, test_namespace, "handover")[0] == "replica-0"
    a.release()
    assert b.try_acquire_or_renew()  # no waiting out the duration
    assert _holder(kube_admin, test_namespace, "handover")[0] == "replica-1"


def test_a_race_for_a_new_lease_has_one_winner(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    electors = _electors(kube_admin, test_namespace, 4, "race")
    results: dict[str, bool] = {}
    start = threading.Barrier(len(electors))

    def go(e: LeaseElector) -> None:
        start.wait()
        results[e.identity] = e.attempt()

    threads = [threading.Thread(target=go, args=(e,)) for e in electors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [who for who, won in results.items() if won]
    assert len(winners) == 1, results
    assert _holder(kube_admin, test_namespace, "race")[0] == winners[0]


def test_holding_expires_with_the_renew_deadline(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    (a,) = _electors(kube_admin, test_namespace, 1, "deadline")
    assert a.try_acquire_or_renew()
    assert a.holding()
    time.sleep(FAST.renew_deadline + 0.1)
    assert not a.holding()
