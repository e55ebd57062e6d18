"""The data of the approved-digests ConfigMap: the parameter with which the API server's
workload-digests policy decides as validate_workload does."""

from __future__ import annotations

from admission_factories import digest, environment_body, image, release_body, world

from stella.admission.workloads import approved_digests_params
from stella.engine.view import ClusterView
from stella.policy.digest_buckets import approved_digests as approved


def test_a_namespace_no_strict_environment_targets_needs_only_pinning() -> None:
    assert approved_digests_params(world(), "plain") == {"environments": ""}


def test_digests_deploying_or_deployed_in_the_environment_are_listed() -> None:
    view = world()
    view.releases[("shop", "r-deployed")] = release_body(
        name="r-deployed", images=(image(1),), phases={"prod": "Deployed"}
    )
    view.releases[("shop", "r-deploying")] = release_body(
        name="r-deploying", images=(image(2),), phases={"prod": "Deploying"}
    )
    view.releases[("shop", "r-waiting")] = release_body(
        name="r-waiting", images=(image(3),), phases={"prod": "WaitingForApproval"}
    )
    view.releases[("shop", "r-staging")] = release_body(
        name="r-staging", images=(image(4),), phases={"staging": "Deployed"}
    )
    data = approved_digests_params(view, "shop-prod")
    assert data["environments"] == "prod"
    assert approved(data) == sorted([digest(1), digest(2)])


def test_several_strict_environments_need_the_digest_in_each() -> None:
    view = world()
    view.environments["prod-eu"] = environment_body(
        "prod-eu", targets=[{"namespace": "shop-prod"}], requireApprovedDigests=True
    )
    view.releases[("shop", "both")] = release_body(
        name="both", images=(image(1),), phases={"prod": "Deployed", "prod-eu": "Deployed"}
    )
    view.releases[("shop", "one")] = release_body(
        name="one", images=(image(2),), phases={"prod": "Deployed"}
    )
    data = approved_digests_params(view, "shop-prod")
    assert data["environments"] == "prod,prod-eu"
    assert approved(data) == [digest(1)]


def test_an_invalid_environment_targeting_the_namespace_refuses_everything() -> None:
    view: ClusterView = world()
    view.environments["broken"] = {
        "metadata": {"name": "broken"},
        "spec": {"targets": [{"namespace": "shop-prod"}], "requires": "not-a-list"},
    }
    data = approved_digests_params(view, "shop-prod")
    assert "broken" in data["invalid"] and "fix Environment broken" in data["invalid"]
