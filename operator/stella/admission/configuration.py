"""The webhook configurations that route admission requests to Stella, as pure builders.

Used by the Helm chart's renderer, the local control plane and the tests. Every webhook
fails closed (failurePolicy Fail); only Stella's own kinds go through them. Workloads in
Stella-managed namespaces are judged inside the API server instead
(ValidatingAdmissionPolicies, charts/stella/files/admission-policies.yaml), so an operator
outage never stops a Pod there that the policies admit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stella import GROUP, VERSION
from stella.models.common import USERNAME_MAX

MANAGED_LABEL = "stella.io/managed"
NAME = "stella.io"


# The requester stamp exactly as stella.policy.identity.format_identity writes it, in CEL:
# the MutatingAdmissionPolicy stamp-requester.stella.io writes it (charts/stella/files/
# admission-policies.yaml, a test keeps the two equal) when the JSON needs no escaping.
# userInfo.uid and .groups may be absent (an impersonated user, a token-file user without a
# uid): a missing key in CEL is an error, and an error in a policy refuses the request.
UID_CEL = "(has(request.userInfo.uid) ? request.userInfo.uid : '')"
GROUPS_CEL = "(has(request.userInfo.groups) ? request.userInfo.groups : [])"
# The groups are quoted by one join, not a map() over them: this text is built for every
# Release CREATE three times (the policy, both webhooks' matchConditions), and a comprehension
# costs the API server more than the join (bench/bench_webhooks.py --profile).
STAMPED_IDENTITY_CEL = (
    "'{\"groups\":[' + (size("
    + GROUPS_CEL
    + ") == 0 ? '' : '\"' + "
    + GROUPS_CEL
    + ".sort().join('\",\"') + '\"') + "
    '\'],"uid":"\' + ' + UID_CEL + ' + \'","username":"\' + request.userInfo.username '
    "+ '\"}'"
)
# When that text needs no JSON escaping (printable ASCII but `"` and `\\`) and the username
# is one Stella records (USERNAME_MAX): only then does the policy stamp; otherwise the
# webhook does, as before, or refuses the username (identity.too-long). One regex over all
# the parts at once (each character is judged alone, so this is the same as one match per
# part).
PLAIN_IDENTITY_CEL = (
    f"size(request.userInfo.username) <= {USERNAME_MAX} && "
    "(request.userInfo.username + " + UID_CEL + " + " + GROUPS_CEL + ".join(''))"
    ".matches('^[ !#-\\\\[\\\\]-~]*$')"
)
# stamp-identity is called for a Release only when the policy could not do all of it (the
# API server runs MutatingAdmissionPolicies before mutating webhooks, so their stamp is
# there to see): a rollback (its stamp needs the Release rolled back to), any other
# stella.io/ annotation or label (refused as ForgedIdentity or a retired request, with its
# message and signal, as before), or a requester stamp that is not the sender's (forged, or
# not written because the identity needs JSON escaping). Actions: always (a Promote's
# binding needs the Release). Approvals go to admit-approval instead.
STAMP_IDENTITY_NEEDED = (
    "request.resource.resource != 'releases' || !has(object.metadata.annotations) || "
    "!('stella.io/requester' in object.metadata.annotations) || "
    "object.metadata.annotations.exists(k, k.startsWith('stella.io/') && "
    "k != 'stella.io/requester') || (has(object.metadata.labels) && "
    "object.metadata.labels.exists(k, k.startsWith('stella.io/'))) || "
    "object.metadata.annotations['stella.io/requester'] != " + STAMPED_IDENTITY_CEL
)

# A Release image the release-create policy can judge alone: one that parse_image_ref
# surely accepts (lower-case host with a dot or `localhost`, lower-case path components,
# a tag, the digest; short enough for the name limit), so the policy's registry (the first
# path component when it has a `.` or `:` or is `localhost`, else docker.io) is the one
# admission's parser finds. Anything else goes to the webhook, which says what is wrong.
PLAIN_IMAGE = (
    r"^((localhost|[a-z0-9]+(-+[a-z0-9]+)*(\.[a-z0-9]+(-+[a-z0-9]+)*)+)(:[0-9]{1,5})?/)?"
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$"
)
_CEL_PLAIN_IMAGE = PLAIN_IMAGE.replace("\\", "\\\\")
# validate-release is called only for what the policy release-create.stella.io cannot decide
# alone (a plain Release CREATE never reaches a webhook): any UPDATE; a description (the
# credential heuristic is Python's); an image the policy cannot parse for sure; and every
# Release stamp-identity handles (a rollback, a client-written stella.io/ annotation or
# label, an identity the policy could not stamp).
VALIDATE_RELEASE_NEEDED = (
    "request.operation != 'CREATE' || "
    "(has(object.spec.description) && object.spec.description != '') || "
    "!object.spec.components.all(c, size(c.image) <= 300 && c.image.matches('"
    + _CEL_PLAIN_IMAGE
    + "')) || "
    + STAMP_IDENTITY_NEEDED
)

# What admit-approval judged (admission.approval.judged_stamp), rebuilt from the final object.
# The prefix names the contract: "v2:" leaves the `approve` verb to the API server's
# authorizer in VALIDATE_APPROVAL_NEEDED. A configuration from before it (a rollback of the
# chart while newer admission pods still answer) rebuilds the stamp without the prefix, so
# it calls validate-approval, which asks for the verb: never an Approval whose verb nobody
# checked. (And a newer configuration calls it for a stamp an older pod wrote.)
JUDGED_PREFIX = "v2:"
JUDGED_CEL = (
    "'" + JUDGED_PREFIX + "' + object.spec.release + '/' + object.spec.environment + '/' + "
    "object.spec.decision"
)
# validate-approval is called at CREATE only when the final object is not what admit-approval
# judged for this user: no judged stamp (a body the schema judges first), a judged stamp or
# an approver stamp that differ from the object and the request's user (an identity that
# needs JSON escaping, which this CEL does not write; a later mutation). Every UPDATE and
# DELETE is judged there. Fields are read only after has(): the schema has run, but an error
# in a matchCondition would refuse the request with an opaque message.
# It is also called when the sender lacks the `approve` verb on the Environment: the API
# server's own authorizer answers that here, in process, so admit-approval need not ask it
# with a SubjectAccessReview (a second request to the API server inside every Approval
# CREATE); validate-approval asks, and refuses with the rule's words.
APPROVE_VERB_CEL = (
    "authorizer.group('" + GROUP + "').resource('environments')"
    ".name(object.spec.environment).check('approve').allowed()"
)
VALIDATE_APPROVAL_NEEDED = (
    "request.operation != 'CREATE' || !has(object.metadata.annotations) || "
    "!('stella.io/judged' in object.metadata.annotations) || "
    "!('stella.io/approver' in object.metadata.annotations) || "
    "!has(object.spec.release) || !has(object.spec.environment) || "
    "!has(object.spec.decision) || "
    "object.metadata.annotations['stella.io/judged'] != " + JUDGED_CEL + " || "
    "object.metadata.annotations['stella.io/approver'] != " + STAMPED_IDENTITY_CEL + " || "
    "!" + APPROVE_VERB_CEL
)


@dataclass(frozen=True)
class Hook:
    id: str
    group: str
    version: str
    resources: tuple[str, ...]
    operations: tuple[str, ...]
    match: str = ""  # a CEL matchCondition: the webhook is called only when it holds


MUTATING: tuple[Hook, ...] = (
    Hook(
        "stamp-identity",
        GROUP,
        VERSION,
        ("releases", "actions"),
        ("CREATE",),
        match=STAMP_IDENTITY_NEEDED,
    ),
    # Stamps and judges an Approval in one call (admission.approval.admit_approval).
    Hook("admit-approval", GROUP, VERSION, ("approvals",), ("CREATE",)),
)
VALIDATING: tuple[Hook, ...] = (
    Hook(
        "validate-release",
        GROUP,
        VERSION,
        ("releases",),
        ("CREATE", "UPDATE"),
        match=VALIDATE_RELEASE_NEEDED,
    ),
    Hook(
        "validate-approval",
        GROUP,
        VERSION,
        ("approvals",),
        ("CREATE", "UPDATE", "DELETE"),
        match=VALIDATE_APPROVAL_NEEDED,
    ),
    Hook("validate-action", GROUP, VERSION, ("actions",), ("CREATE", "UPDATE")),
    Hook("validate-environment", GROUP, VERSION, ("environments",), ("CREATE", "UPDATE")),
    Hook("validate-agent", GROUP, VERSION, ("agents",), ("CREATE", "UPDATE")),
    Hook("validate-receiver", GROUP, VERSION, ("receivers",), ("CREATE", "UPDATE")),
    Hook(
        "validate-plugin",
        GROUP,
        VERSION,
        ("plugins", "pluginpublishers"),
        ("CREATE", "UPDATE", "DELETE"),
    ),
)


def _client_config(
    hook: Hook, base_url: str | None, service: dict[str, Any] | None, ca_bundle: str
) -> dict[str, Any]:
    if base_url is not None:
        return {"url": f"{base_url.rstrip('/')}/{hook.id}", "caBundle": ca_bundle}
    assert service is not None
    return {"service": {**service, "path": f"/{hook.id}"}, "caBundle": ca_bundle}


def _webhook(
    hook: Hook, base_url: str | None, service: dict[str, Any] | None, ca_bundle: str, timeout: int
) -> dict[str, Any]:
    wh: dict[str, Any] = {
        "name": f"{hook.id}.{NAME}",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": timeout,
        "matchPolicy": "Equivalent",
        "clientConfig": _client_config(hook, base_url, service, ca_bundle),
        "rules": [
            {
                "apiGroups": [hook.group],
                "apiVersions": [hook.version],
                "resources": list(hook.resources),
                "operations": list(hook.operations),
                "scope": "*",
            }
        ],
    }
    if hook.match:
        wh["matchConditions"] = [{"name": "needs-the-webhook", "expression": hook.match}]
    return wh


def configurations(
    ca_bundle: str,
    *,
    base_url: str | None = None,
    service: dict[str, Any] | None = None,
    timeout: int = 5,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(MutatingWebhookConfiguration, ValidatingWebhookConfiguration).

    base_url: https://127.0.0.1:PORT for a local operator; or service: {name, namespace,
    port} in a cluster. ca_bundle: base64 PEM of the CA that signed the serving cert.
    """
    if (base_url is None) == (service is None):
        raise ValueError("give exactly one of base_url or service")
    meta = {"name": NAME, "labels": {"app.kubernetes.io/part-of": "stella"}}
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": meta,
        "webhooks": [
            {**_webhook(h, base_url, service, ca_bundle, timeout), "reinvocationPolicy": "Never"}
            for h in MUTATING
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": meta,
        "webhooks": [_webhook(h, base_url, service, ca_bundle, timeout) for h in VALIDATING],
    }
    return mutating, validating
