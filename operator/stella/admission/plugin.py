"""Plugin and PluginPublisher admission (T7): only a signed, trusted manifest installs a
plugin, and only a person holding the `reenable` verb lifts a quarantine, in their own
name.

Pure: the glue passes the publishers the API server lists right now (never a cached view:
a publisher removed a moment ago must no longer vouch) and the answer of RBAC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stella.admission._util import parse_model, schema_message, spec_of
from stella.admission.base import (
    FORGED_IDENTITY,
    PLUGIN_PUBLISHER_KEY,
    PLUGIN_REENABLE,
    PLUGIN_REFUSED,
    SCHEMA,
    UNAUTHORIZED_ACTION,
    UNTRUSTED_PLUGIN,
    Request,
    Verdict,
    allow,
    deny,
)
from stella.evidence.errors import EvidenceError
from stella.evidence.keys import load_public_key
from stella.models.plugin import PluginPublisherSpec, PluginSpec
from stella.plugins import errors as pe
from stella.plugins.reenable import (
    REENABLE_ANNOTATION,
    REENABLE_VERB,
    parse_reenable,
    quarantine_since,
)
from stella.plugins.signing import Trust, verify_manifest

# RBAC asked for the reenable verb on plugins/<name>: True, False, or None (not asked).
MayReenable = Callable[[], bool | None]
_SIGNALLED = {pe.TAMPERED, pe.UNTRUSTED}


def validate_plugin(
    req: Request,
    trust: Trust | None,
    may_reenable: MayReenable,
    quarantined_modules: Mapping[str, str] | None = None,
) -> Verdict:
    """quarantined_modules: module digest -> the other Plugin quarantined for running it
    (None: they could not be listed, and a CREATE or UPDATE is refused)."""
    if req.operation == "DELETE":
        return _delete(req, may_reenable)
    if req.operation not in ("CREATE", "UPDATE") or req.obj is None:
        return allow()
    parsed = parse_model(PluginSpec, spec_of(req.obj))
    if not isinstance(parsed, PluginSpec):
        return deny(SCHEMA, schema_message("Plugin", parsed))
    if trust is None:
        return deny(
            PLUGIN_REFUSED,
            "could not read the PluginPublishers to verify the manifest's signature; nothing "
            "was changed, retry in a few seconds",
        )
    try:
        verified = verify_manifest(parsed.manifest.wire(), trust)
    except pe.PluginRefused as exc:
        return deny(
            PLUGIN_REFUSED,
            f"{exc.message} ({exc.reason})",
            UNTRUSTED_PLUGIN if exc.reason in _SIGNALLED else None,
        )
    if quarantined_modules is None:
        return deny(
            PLUGIN_REFUSED,
            "could not list the Plugins to check for a quarantined module; nothing was "
            "changed, retry in a few seconds",
        )
    held_by = quarantined_modules.get(verified.manifest.module.digest)
    if held_by is not None:
        return deny(
            PLUGIN_REFUSED,
            f"this module ({verified.manifest.module.digest}) is quarantined as Plugin "
            f"{held_by}: a quarantine holds for the module under any name; a person with the "
            f"reenable verb lifts it there first (stella plugin reenable {held_by})",
            UNTRUSTED_PLUGIN,
        )
    if req.name and verified.manifest.name != req.name:
        return deny(
            PLUGIN_REFUSED,
            f"the signed manifest is for plugin {verified.manifest.name!r}: name the Plugin "
            f"{verified.manifest.name} (metadata.name)",
        )
    if req.operation == "UPDATE":
        return _reenable(req, may_reenable)
    if _annotation(req.obj) is not None:
        return deny(
            PLUGIN_REENABLE,
            f"{REENABLE_ANNOTATION} is for lifting a quarantine of an existing Plugin "
            "(stella plugin reenable); remove it",
            FORGED_IDENTITY,
        )
    return allow()


def _annotation(body: Mapping[str, Any] | None) -> object:
    return ((body or {}).get("metadata") or {}).get("annotations", {}).get(REENABLE_ANNOTATION)


def _reenable(req: Request, may_reenable: MayReenable) -> Verdict:
    raw = _annotation(req.obj)
    if raw is None or raw == _annotation(req.old):
        return allow()
    r = parse_reenable(raw)
    who = req.user
    if r is None or (r.by.username, r.by.uid, r.by.groups) != (who.username, who.uid, who.groups):
        return deny(
            PLUGIN_REENABLE,
            f"{REENABLE_ANNOTATION} must name you, exactly as the API server authenticates "
            "you, and the quarantine it lifts: use stella plugin reenable NAME --reason ...",
            FORGED_IDENTITY,
        )
    since = quarantine_since(req.old or {})
    if since is None or r.quarantine != since:
        return deny(
            PLUGIN_REENABLE,
            f"Plugin {req.name} has no quarantine since {r.quarantine!r} "
            f"(its quarantine: {since or 'none'}); nothing to re-enable",
        )
    if not r.reason.strip():
        return deny(PLUGIN_REENABLE, "say why the plugin may run again (--reason)")
    return _authorized(req, may_reenable, "re-enable")


def _delete(req: Request, may_reenable: MayReenable) -> Verdict:
    """Deleting a quarantined Plugin (and re-creating it clean) would lift the quarantine:
    only someone who may lift it may delete it."""
    if quarantine_since(req.old or {}) is None:
        return allow()
    return _authorized(req, may_reenable, "delete the quarantined")


def _authorized(req: Request, may_reenable: MayReenable, what: str) -> Verdict:
    answer = may_reenable()
    if answer is True:
        return allow()
    if answer is None:
        return deny(
            PLUGIN_REENABLE,
            f"could not check whether {req.user.username} may {what} plugin {req.name}: "
            "the SubjectAccessReview failed; nothing was changed, retry in a few seconds",
        )
    return deny(
        PLUGIN_REENABLE,
        f"{req.user.username} may not {what} plugin {req.name}: that needs the "
        f"`{REENABLE_VERB}` verb on plugins/{req.name} (group stella.io); ask your platform "
        "team (docs/plugins.md shows the role)",
        UNAUTHORIZED_ACTION,
    )


def validate_publisher(req: Request) -> Verdict:
    if req.operation not in ("CREATE", "UPDATE") or req.obj is None:
        return allow()
    parsed = parse_model(PluginPublisherSpec, spec_of(req.obj))
    if not isinstance(parsed, PluginPublisherSpec):
        return deny(SCHEMA, schema_message("PluginPublisher", parsed))
    ids = [k.key_id for k in parsed.keys]
    if len(set(ids)) != len(ids):
        return deny(PLUGIN_PUBLISHER_KEY, "spec.keys: each keyId appears once")
    for i, key in enumerate(parsed.keys):
        try:
            load_public_key(key.public_key)
        except EvidenceError as exc:
            return deny(PLUGIN_PUBLISHER_KEY, f"spec.keys[{i}].publicKey: {exc}")
    return allow()
