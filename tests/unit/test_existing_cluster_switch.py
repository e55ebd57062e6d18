"""The existing-cluster switch (hack/devenv/existing.py): KUBECONFIG alone never points the
demo or the e2e tier anywhere, and a context that does not look disposable is refused
unless named explicitly."""

from __future__ import annotations

from typing import Any

import pytest

from devenv.existing import ClusterRefused, choose_context, requested


def config(current: str, cluster: str) -> dict[str, Any]:
    return {
        "current-context": current,
        "contexts": [{"name": current, "context": {"cluster": cluster, "user": "u"}}],
        "clusters": [{"name": cluster, "cluster": {"server": "https://10.0.0.1:6443"}}],
    }


def test_the_switch_is_explicit() -> None:
    assert requested({}) is False
    assert requested({"KUBECONFIG": "/home/me/.kube/config"}) is False  # a stray KUBECONFIG
    assert requested({"STELLA_CLUSTER": "local"}) is False
    assert requested({"STELLA_CLUSTER": "existing"}) is True
    with pytest.raises(ClusterRefused, match="use `existing`"):
        requested({"STELLA_CLUSTER": "exisitng"})  # a typo never falls back silently


@pytest.mark.parametrize(
    ("context", "cluster"),
    [("kind-stella", "kind-stella"), ("k3d-dev", "k3d-dev"), ("admin", "stella-local")],
)
def test_kind_k3d_and_the_local_control_plane_are_disposable(context: str, cluster: str) -> None:
    assert choose_context(config(context, cluster), {}) == context


def test_a_real_looking_context_is_refused_unless_named() -> None:
    prod = config("arn:aws:eks:eu-west-1:1:cluster/prod", "prod")
    with pytest.raises(ClusterRefused) as refused:
        choose_context(prod, {})
    message = str(refused.value)
    assert "does not look disposable" in message and "10.0.0.1:6443" in message
    assert "STELLA_CLUSTER_DISPOSABLE=arn:aws:eks:eu-west-1:1:cluster/prod" in message
    # A yes for another context does not carry over; the exact name does.
    with pytest.raises(ClusterRefused):
        choose_context(prod, {"STELLA_CLUSTER_DISPOSABLE": "kind-stella"})
    ok = {"STELLA_CLUSTER_DISPOSABLE": "arn:aws:eks:eu-west-1:1:cluster/prod"}
    assert choose_context(prod, ok) == "arn:aws:eks:eu-west-1:1:cluster/prod"


def test_the_context_can_be_chosen_and_must_exist() -> None:
    both = config("kind-a", "kind-a")
    both["contexts"].append({"name": "prod", "context": {"cluster": "p", "user": "u"}})
    assert choose_context(both, {"STELLA_KUBE_CONTEXT": "kind-a"}) == "kind-a"
    with pytest.raises(ClusterRefused, match="does not look disposable"):
        choose_context(both, {"STELLA_KUBE_CONTEXT": "prod"})
    with pytest.raises(ClusterRefused, match=r"no context 'nope'.*kind-a, prod"):
        choose_context(both, {"STELLA_KUBE_CONTEXT": "nope"})
