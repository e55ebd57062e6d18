"""The duplicate rule through the webhook's glue (handlers.admission): judged from
admission's synced view alone, with no read of the API server (issue 12: a consistent
LIST of the Release's Approvals waited ~100 ms for the watch cache whenever anything
else was written). A duplicate already in the view is refused with the rule's message;
why one still in flight may be admitted safely: tests/unit/policy/test_policy_lagged_duplicates.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from admission_factories import BOB, CAROL, POLICY, approval_body, world

from stella.engine import kubeio
from stella.engine.view import ClusterView
from stella.handlers.admission import Admission, Denied
from stella.policy.identity import Identity
from stella.settings import Settings


@pytest.fixture(autouse=True)
def no_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> Any:
        raise AssertionError("admission read the API server to judge an Approval")

    monkeypatch.setattr(kubeio, "_custom", refuse)
    monkeypatch.setattr(kubeio, "_api", refuse)


def review(view: ClusterView, user: Identity, decision: str = "Approve") -> None:
    admission = Admission(Settings())
    admission.policy = POLICY  # RBAC answers without a SubjectAccessReview
    admission.review(
        "Approval",
        mutating=False,
        view=view,
        operation="CREATE",
        userinfo={"username": user.username, "uid": user.uid, "groups": sorted(user.groups)},
        old=None,
        new=approval_body(approver=user, decision=decision),
        dryrun=True,
    )


def test_a_decision_in_the_view_refuses_the_same_persons_next_without_a_list() -> None:
    view = world()
    view.apply("Approval", "ADDED", approval_body(name="first", approver=BOB))
    with pytest.raises(Denied) as refused:
        review(view, BOB)
    assert refused.value.code == 403
    assert refused.value.message == (
        "bob already decided on Release shop-1-4-2 for prod (Approval first: Approve); each "
        "person decides once and an Approval cannot be changed; to withdraw an approval "
        "create a Reject for the same Release and Environment "
        "(`stella reject <release> <environment> --comment ...`)"
    )
    review(view, BOB, "Reject")  # withdrawing consent stays possible
    review(view, CAROL)  # another person decides


def test_before_the_view_holds_a_decision_the_next_is_admitted() -> None:
    """The lag window, shown: nothing is read to close it (the engine counts bob once)."""
    view = world()
    review(view, BOB)
    review(view, BOB)
