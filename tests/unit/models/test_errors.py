"""Validation errors as people read them (stella.models.errors)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from stella.admission._util import schema_message
from stella.models import ApprovalSpec, EnvironmentSpec, ReleaseSpec
from stella.models.errors import PATTERN_WORDS, human_error_list, human_errors, may_hold_secret

DIGEST = "a" * 64
IMAGE = f"registry.example.com/shop/web@sha256:{DIGEST}"
WORKLOAD = {"name": "web", "container": "web"}


def error_of(model: type[BaseModel], data: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value


def release(**spec: Any) -> dict[str, Any]:
    base = {
        "version": "1.4.2",
        "components": [{"name": "web", "image": IMAGE, "workload": WORKLOAD}],
        "environments": ["dev"],
    }
    return base | spec


def test_an_unquoted_version_read_as_a_float_says_to_quote_it() -> None:
    spec = yaml.safe_load(
        f"version: 1.10\ncomponents: [{{name: web, image: '{IMAGE}', "
        "workload: {name: web, container: web}}]\nenvironments: [dev]\n"
    )
    assert spec["version"] == 1.1  # what YAML makes of it
    assert human_errors(error_of(ReleaseSpec, spec)) == (
        "spec.version: must be text, but YAML read the unquoted value as the number 1.1, "
        "which drops trailing zeros (1.10 is read as 1.1); quote it as meant, e.g. "
        'version: "1.10"'
    )


def test_an_unquoted_integer_and_boolean_say_to_quote_them() -> None:
    assert human_errors(error_of(ReleaseSpec, release(version=2))) == (
        "spec.version: must be text, but YAML read the unquoted value as the number 2; "
        'quote it: version: "2"'
    )
    env = yaml.safe_load("rollout: {timeout: yes}")
    assert human_errors(error_of(EnvironmentSpec, env)).startswith(
        "spec.rollout.timeout: must be text, but YAML read the unquoted value as the boolean true"
    )


def test_no_links_no_value_error_prefix_no_regex() -> None:
    exc = error_of(
        ReleaseSpec,
        release(
            environments=["Prod"],
            components=[{"name": "web", "image": "web:1", "workload": WORKLOAD}],
        ),
    )
    raw = str(exc)
    assert "errors.pydantic.dev" in raw and "Value error," in raw  # what it replaces
    text = human_errors(exc)
    assert "http" not in text and "Value error" not in text and "[a-z0-9]" not in text
    assert human_error_list(exc) == [
        "spec.components[0].image: image 'web:1' is not pinned by digest; write it as "
        "repo@sha256:<64 lowercase hex> (resolve a tag once with `stella release create "
        "--from-tags` or `skopeo inspect`)",
        "spec.environments[0]: must be lowercase letters, digits and '-' or '.', starting "
        "and ending with a letter or digit, e.g. prod; did you mean prod?",
    ]


def test_a_misspelt_field_gets_the_field_it_was_meant_to_be() -> None:
    text = human_errors(error_of(ReleaseSpec, release(enviroments=["dev"])))
    assert text.startswith("spec.enviroments: is not a field here; did you mean environments?")
    nested = error_of(EnvironmentSpec, {"approvals": {"requried": 2}})
    assert "spec.approvals.requried: is not a field here; did you mean required?" in (
        human_errors(nested)
    )


def test_an_enum_in_the_wrong_case_gets_the_right_spelling() -> None:
    exc = error_of(ApprovalSpec, {"release": "r", "environment": "prod", "decision": "approve"})
    assert human_errors(exc) == (
        "spec.decision: must be Approve or Reject, capitalized as written; did you mean Approve?"
    )


@pytest.mark.parametrize(
    ("data", "secret"),
    [
        ({"registryCredentials": "hunter2-s3cr3t"}, "hunter2-s3cr3t"),
        ({"registryCredentials": 987654321}, "987654321"),
        ({"registryCredentials": ["hunter2-s3cr3t"]}, "hunter2-s3cr3t"),
    ],
)
def test_a_secret_in_the_wrong_place_is_never_repeated(data: dict[str, Any], secret: str) -> None:
    text = human_errors(error_of(EnvironmentSpec, data))
    assert text.startswith("spec.registryCredentials: ")
    assert secret not in text


def test_free_text_fields_are_not_echoed_either() -> None:
    exc = error_of(
        ApprovalSpec, {"release": "r", "environment": "p", "decision": "Approve", "comment": 4711}
    )
    assert "4711" not in human_errors(exc)
    assert may_hold_secret(("comment",)) and may_hold_secret(("registryCredentials",))
    assert not may_hold_secret(("components", 0, "image"))


def test_several_problems_are_all_named_then_counted() -> None:
    exc = error_of(
        ReleaseSpec, {"version": "", "components": [], "environments": [], "x": 1, "y": 2}
    )
    text = human_errors(exc, limit=2)
    assert text == (
        "spec.version: must not be empty; spec.components: needs at least 1 item "
        "(and 3 more problems)"
    )


def test_every_pattern_of_the_models_is_said_in_words() -> None:
    """A pattern added to a model without words here would show the regex to people."""

    def patterns(node: object) -> set[str]:
        if isinstance(node, dict):
            found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
            return found.union(*(patterns(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(patterns(v) for v in node))
        return set()

    from stella.models import ALL_KINDS
    from stella.models.crdgen import crd_for

    used = set().union(*(patterns(crd_for(k)) for k in ALL_KINDS))
    assert used - set(PATTERN_WORDS) == set()


def test_admission_schema_message_uses_the_words() -> None:
    exc = error_of(ReleaseSpec, release(version=1.1))
    message = schema_message("Release", exc)
    assert message.startswith("Release spec.version: must be text, but YAML read")
    assert message.endswith("fix the manifest (kubectl explain release.spec shows the schema)")


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
SECRET = "SeCrEt-4711"


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from([ReleaseSpec, EnvironmentSpec, ApprovalSpec]),
    data=st.dictionaries(
        st.sampled_from(
            [
                "version",
                "components",
                "environments",
                "targets",
                "approvals",
                "freezeWindows",
                "release",
                "environment",
                "decision",
                "rollout",
                "requires",
                "bogus",
            ]
        ),
        _junk,
        max_size=4,
    ),
)
def test_any_junk_gives_words_and_never_the_secret(
    model: type[BaseModel], data: dict[str, Any]
) -> None:
    for field in ("registryCredentials", "comment", "description"):
        data = data | {field: SECRET}
    try:
        model.model_validate(data)
    except ValidationError as exc:
        text = human_errors(exc, limit=50)
        assert SECRET not in text
        assert "pydantic" not in text and "http" not in text and "Value error" not in text
        assert all(line.startswith("spec") for line in human_error_list(exc))
