"""Model validation gives exact, actionable messages and agrees with the samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.approval import ApprovalSpec
from stella.models.common import LabelSelector, set_condition

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "a" * 64


def release(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "version": "1.0.0",
        "components": [
            {
                "name": "web",
                "image": f"r.example.com/web@{DIGEST}",
                "workload": {"kind": "Deployment", "name": "web", "container": "web"},
            }
        ],
        "environments": ["dev"],
    }
    body.update(over)
    return body


def test_samples_validate() -> None:
    kinds: dict[str, type[BaseModel]] = {
        "Environment": EnvironmentSpec,
        "Release": ReleaseSpec,
        "Approval": ApprovalSpec,
    }
    seen = 0
    for path in (ROOT / "samples").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            kinds[doc["kind"]].model_validate(doc["spec"])
            seen += 1
    assert seen >= 5


@pytest.mark.parametrize(
    "image",
    [
        "r.example.com/web:1.0",
        "r.example.com/web@sha256:abc",
        "r.example.com/web@sha256:" + "A" * 64,
        "r.example.com/web@sha512:" + "a" * 64,
        " r.example.com/web@" + DIGEST,
    ],
)
def test_unpinned_or_malformed_images_are_refused(image: str) -> None:
    body = release()
    body["components"][0]["image"] = image  # type: ignore[index]
    with pytest.raises(ValidationError) as err:
        ReleaseSpec.model_validate(body)
    assert "image" in str(err.value)


def test_tag_only_image_message_says_what_to_do() -> None:
    body = release()
    body["components"][0]["image"] = "r.example.com/web:1.0"  # type: ignore[index]
    with pytest.raises(ValidationError, match="sha256"):
        ReleaseSpec.model_validate(body)


def test_unknown_fields_and_duplicates_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ReleaseSpec.model_validate(release(requester="mallory"))
    comps = release()["components"] * 2  # type: ignore[operator]
    with pytest.raises(ValidationError, match="repeated: web"):
        ReleaseSpec.model_validate(release(components=comps))
    with pytest.raises(ValidationError, match="must not repeat"):
        ReleaseSpec.model_validate(release(environments=["dev", "dev"]))


def test_environment_targets_and_windows_have_one_shape() -> None:
    with pytest.raises(ValidationError, match="a target names either a namespace"):
        EnvironmentSpec.model_validate({"targets": [{}]})
    with pytest.raises(ValidationError, match="a target names either a namespace"):
        EnvironmentSpec.model_validate(
            {"targets": [{"agentSelector": {"matchLabels": {"a": "b"}}}]}
        )
    app = {"application": {"name": "shop-dev"}}
    assert EnvironmentSpec.model_validate({"targets": [app]}).targets[0].application
    with pytest.raises(ValidationError, match="either a namespace"):
        EnvironmentSpec.model_validate({"targets": [{**app, "namespace": "shop"}]})
    both = {"targets": [{"namespace": "shop", "agentSelector": {"matchLabels": {"a": "b"}}}]}
    assert EnvironmentSpec.model_validate(both).targets[0].namespace == "shop"
    with pytest.raises(ValidationError, match="needs both schedule and duration"):
        EnvironmentSpec.model_validate({"freezeWindows": [{"schedule": "0 18 * * FRI"}]})
    with pytest.raises(ValidationError, match="end after it starts"):
        EnvironmentSpec.model_validate(
            {"freezeWindows": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]}
        )
    with pytest.raises(ValidationError, match="vault"):
        EnvironmentSpec.model_validate({"registryCredentials": "hunter2"})


def test_label_selector_semantics() -> None:
    sel = LabelSelector.model_validate(
        {
            "matchLabels": {"team": "shop"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert sel.matches({"team": "shop", "tier": "a"})
    assert not sel.matches({"team": "shop", "tier": "c"})
    assert not sel.matches({"team": "shop", "tier": "a", "legacy": "1"})
    assert not sel.matches({"tier": "a"})
    assert LabelSelector().matches({})


def test_condition_transition_time_moves_only_on_status_change() -> None:
    first = set_condition([], "Ready", "False", "Pending", "m")
    same = set_condition(first, "Ready", "False", "StillPending", "m2")
    assert same[0].last_transition_time == first[0].last_transition_time
    assert same[0].reason == "StillPending"
    flipped = set_condition(same, "Ready", "True", "Deployed")
    assert len(flipped) == 1 and flipped[0].status == "True"


def test_samples_can_be_applied() -> None:
    """`kubectl apply -f samples/` refuses generateName ("cannot use generate name with
    apply"): every sample names itself."""
    for path in (ROOT / "samples").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            meta = doc["metadata"]
            assert meta.get("name") and "generateName" not in meta, f"{path.name}: {meta}"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-12-20T00:00:00", "2025-01-06T00:00:00"),  # wall-clock time in timeZone
        ("2024-12-20T00:00", "2025-01-06T08:30"),
        ("2024-12-20T00:00:00Z", "2025-01-06T00:00:00+01:00"),
        ("2024-12-20T00:00:00.5+01:00", "2025-01-06T00:00:00"),  # mixed: policy orders them
    ],
)
def test_freeze_window_times_with_or_without_an_offset(start: str, end: str) -> None:
    """docs/concepts.md: a time written without an offset is read in timeZone. The CRD
    schema (what the API server checks first) and the model both take it."""
    import re

    from stella.models import ENVIRONMENT
    from stella.models.crdgen import crd_for
    from stella.policy.freeze import validate_freeze_window

    window = {"start": start, "end": end, "timeZone": "Europe/Berlin"}
    spec = EnvironmentSpec.model_validate({"freezeWindows": [window]})
    assert validate_freeze_window(spec.freeze_windows[0]) == []
    schema = crd_for(ENVIRONMENT)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]["freezeWindows"]["items"]["properties"]
    for field, value in (("start", start), ("end", end)):
        assert "format" not in props[field]  # date-time would refuse the offset-less form
        assert re.fullmatch(props[field]["pattern"], value), (field, value)


@pytest.mark.parametrize("value", ["2024-12-20", "20.12.2024 00:00", "2024-12-20T00:00:00 CET"])
def test_freeze_window_times_that_are_not_times_are_refused(value: str) -> None:
    import re

    from stella.models.environment import WALL_OR_OFFSET_TIME

    assert not re.fullmatch(WALL_OR_OFFSET_TIME, value)


def test_rfc3339_takes_a_naive_time_as_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time
    from datetime import UTC, datetime, timedelta, timezone

    from stella.models.common import rfc3339

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert rfc3339(datetime(2026, 3, 1, 11, 0, 5)) == "2026-03-01T11:00:05Z"
        assert rfc3339(datetime(2026, 3, 1, 11, 0, 5, 999, tzinfo=UTC)) == "2026-03-01T11:00:05Z"
        plus2 = timezone(timedelta(hours=2))
        assert rfc3339(datetime(2026, 3, 1, 13, 0, 5, tzinfo=plus2)) == "2026-03-01T11:00:05Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
