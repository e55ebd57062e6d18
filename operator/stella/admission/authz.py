"""The one RBAC check every human action passes: the custom verb on the Environment.

`approve`, `promote`, `rollback`, `clear-halt` and `suspend` are verbs on the resource
`environments` of group stella.io, checked for the Environment by name with a
SubjectAccessReview (the Authorizer of the policy). A platform team grants "may approve
prod" with an ordinary ClusterRole (resourceNames: [prod]) bound to a group; see
docs/actions.md. The check answers from the API server's RBAC, never from a field.
"""

from __future__ import annotations

from stella.admission.base import (
    UNAUTHORIZED_ACTION,
    AdmissionPolicy,
    Request,
    Verdict,
    deny,
)
from stella.models.action import VERB_OF_ACTION  # noqa: F401  (re-exported for readers)


def verb_denied(
    req: Request, policy: AdmissionPolicy, verb: str, environment: str, rule: str, what: str
) -> Verdict | None:
    """None when `req.user` holds `verb` on environments/<environment>; else a refusal.

    what: the action in words for the message ("approve Release shop/x for prod").
    """
    answer = policy.authorizer.may(req.user, verb, environment)
    if answer is True:
        return None
    who = req.user.username
    if answer is None:
        return deny(
            rule,
            f"could not check whether {who} may {what}: Stella's SubjectAccessReview to the "
            "API server failed; nothing was changed, retry in a few seconds",
        )
    return deny(
        rule,
        f"{who} may not {what}: that needs the `{verb}` verb on environments/{environment} "
        f"(group stella.io) — ask your platform team for a role granting it "
        f"(docs/actions.md shows one)",
        UNAUTHORIZED_ACTION,
    )
