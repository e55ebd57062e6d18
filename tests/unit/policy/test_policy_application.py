"""The kustomize image override Stella writes into an Argo CD Application, and what the
Application's status says about it."""

from __future__ import annotations

from typing import Any

from stella.engine.applications import before, helm_parameters, unmapped
from stella.models import ReleaseSpec
from stella.models.environment import ApplicationTarget
from stella.policy.application import (
    app_parameters,
    entry_name,
    judge,
    override,
    parameter,
    previous,
    repo_of,
    restore,
    restore_parameter,
    set_parameter,
)

WEB = "registry.example.com/shop/web@sha256:" + "a" * 64
WEB2 = "registry.example.com/shop/web@sha256:" + "b" * 64


def test_override_replaces_the_entry_for_the_same_image_and_keeps_the_rest() -> None:
    assert repo_of("registry:5000/shop/web:1.0") == "registry:5000/shop/web"
    assert repo_of(WEB) == "registry.example.com/shop/web"
    assert entry_name(f"registry.example.com/shop/web={WEB}") == "registry.example.com/shop/web"
    images = ["registry.example.com/shop/web:1.0", "redis:7"]
    got = override(images, WEB)
    assert got == ["redis:7", WEB]
    assert override(got, WEB) == got  # idempotent
    assert previous(images, WEB) == "registry.example.com/shop/web:1.0"
    assert restore(override(images, WEB2), WEB2, previous(images, WEB2)) == [
        "redis:7",
        "registry.example.com/shop/web:1.0",
    ]
    assert restore([WEB], WEB, "") == []  # none before: Stella's entry goes


def app(sync: str, health: str, compared: list[str], message: str = "") -> dict[str, Any]:
    return {
        "status": {
            "sync": {
                "status": sync,
                "revision": "0123456789abcdef",
                "comparedTo": {"source": {"kustomize": {"images": compared}}},
            },
            "health": {"status": health, "message": message},
        }
    }


def test_judge_waits_for_argo_cd_to_compare_against_the_new_override() -> None:
    # Synced and Healthy, but against the old override: not yet.
    assert judge(app("Synced", "Healthy", ["old"]), [WEB]).state == "Waiting"
    # An old Degraded is not this Release's failure either.
    assert judge(app("Synced", "Degraded", ["old"]), [WEB]).state == "Waiting"
    assert judge(app("OutOfSync", "Progressing", [WEB]), [WEB]).state == "Waiting"
    done = judge(app("Synced", "Healthy", [WEB, "redis:7"]), [WEB])
    assert (done.state, done.revision) == ("Synced", "0123456789abcdef")
    assert done.message == "sync Synced, health Healthy at 0123456789ab"
    bad = judge(app("Synced", "Degraded", [WEB], "CrashLoopBackOff"), [WEB])
    assert bad.state == "Degraded" and "CrashLoopBackOff" in bad.message
    assert judge({}, [WEB]).state == "Waiting"


def test_helm_parameter_set_keeps_the_others_and_restore_puts_back_or_removes() -> None:
    params: list[dict[str, Any]] = [
        {"name": "replicas", "value": "2"},
        {"name": "web.image", "value": "web:1", "forceString": True},
    ]
    got = set_parameter(params, "web.image", WEB)
    assert got == [
        {"name": "replicas", "value": "2"},
        {"name": "web.image", "value": WEB, "forceString": True},
    ]
    assert params[1]["value"] == "web:1"  # the input is not changed
    assert set_parameter(got, "web.image", WEB) == got  # idempotent
    assert parameter(got, "web.image") == WEB and parameter(got, "absent") == ""
    assert restore_parameter(got, "web.image", "web:1") == params
    added = set_parameter([{"name": "replicas", "value": "2"}], "api.image", WEB)
    assert added[-1] == {"name": "api.image", "value": WEB}
    assert restore_parameter(added, "api.image", "") == [{"name": "replicas", "value": "2"}]


def test_judge_reads_helm_parameters_argo_cd_compared_against() -> None:
    def helm_app(value: str, health: str = "Healthy") -> dict[str, Any]:
        source = {"helm": {"parameters": [{"name": "web.image", "value": value}]}}
        return {
            "spec": {"source": source},
            "status": {
                "sync": {"status": "Synced", "revision": "abc", "comparedTo": {"source": source}},
                "health": {"status": health},
            },
        }

    assert judge(helm_app("web:1"), [], {"web.image": WEB}).state == "Waiting"
    assert judge(helm_app(WEB), [], {"web.image": WEB}).state == "Synced"
    assert judge(helm_app(WEB, "Degraded"), [], {"web.image": WEB}).state == "Degraded"
    assert app_parameters(helm_app(WEB)) == [{"name": "web.image", "value": WEB}]


def test_a_helm_target_maps_every_component_to_a_parameter() -> None:
    spec = ReleaseSpec.model_validate(
        {
            "version": "1.0",
            "components": [
                {
                    "name": "web",
                    "image": WEB,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                },
                {
                    "name": "api",
                    "image": WEB2,
                    "workload": {"kind": "Deployment", "name": "api", "container": "api"},
                },
            ],
            "environments": ["dev"],
        }
    )
    helm = ApplicationTarget.model_validate(
        {"name": "shop", "helmParameters": [{"component": "web", "parameter": "web.image"}]}
    )
    kustomize = ApplicationTarget(name="shop-k")
    assert helm_parameters(helm) == {"web": "web.image"} and helm_parameters(kustomize) == {}
    assert unmapped([kustomize], spec) == []
    assert unmapped([helm], spec) == [
        "component api has no Helm parameter in the target for Argo CD Application "
        "argocd/shop (add it to helmParameters)"
    ]
    full = helm.model_copy(
        update={
            "helm_parameters": [
                *helm.helm_parameters,
                *ApplicationTarget.model_validate(
                    {
                        "name": "x",
                        "helmParameters": [{"component": "api", "parameter": "api.image"}],
                    }
                ).helm_parameters,
            ]
        }
    )
    assert unmapped([full], spec) == []
    current = {("argocd", "shop"): {"spec": {"source": {"helm": {"parameters": [
        {"name": "web.image", "value": "web:1"}
    ]}}}}}  # fmt: skip
    was = before([full], current, spec)
    assert [(w.kind, w.name, w.container, w.image) for w in was] == [
        ("Application", "shop", "web", "web:1"),
        ("Application", "shop", "api", ""),
    ]
