"""Admission glue for Plugins and PluginPublishers: the publishers as the API server lists
them now, and RBAC's answer for the `reenable` verb on plugins/NAME, handed to the pure
rules of stella.admission.plugin."""

from __future__ import annotations

import logging

from stella.admission.base import Request, Verdict
from stella.admission.plugin import validate_plugin, validate_publisher
from stella.plugins import store
from stella.plugins.reenable import REENABLE_VERB, quarantined_modules
from stella.plugins.signing import Trust

log = logging.getLogger("stella.admission")
PLUGIN_KINDS = frozenset({"Plugin", "PluginPublisher"})


def decide_plugin(req: Request) -> Verdict:
    if req.kind == "PluginPublisher":
        return validate_publisher(req)
    trust: Trust | None = None
    held: dict[str, str] | None = None
    if req.operation in ("CREATE", "UPDATE"):
        try:  # fail closed: the rule refuses without publishers or without the Plugins
            trust = store.trust()
            held = quarantined_modules(store.list_plugins(), req.name or "")
        except Exception as exc:
            log.warning("could not list PluginPublishers or Plugins: %s", exc)
    return validate_plugin(req, trust, lambda: _may_reenable(req), held)


def _may_reenable(req: Request) -> bool | None:
    from stella.handlers.access_reviews import review_access

    try:
        return review_access(req.user, REENABLE_VERB, req.name or "", 5.0, resource="plugins")
    except Exception as exc:
        log.warning("SubjectAccessReview for %s failed: %s", req.user.username, exc)
        return None
