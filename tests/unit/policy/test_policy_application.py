"""The kustomize image override Stella writes into an Argo CD Application, and what the
Application's status says about it."""

from __future__ import annotations

from typing import Any

from stella.policy.application import entry_name, judge, override, previous, repo_of, restore

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
