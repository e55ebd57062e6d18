"""Environment admission: a usable promotion path, well-formed freeze windows, and registry
credentials that are Vault references, never literal secrets, sent only to the registries
listed in allowedRegistries (none listed: refused).

Freeze windows are validated (croniter runs) only here, on CREATE/UPDATE of an
Environment whose spec changed; nothing else in admission evaluates a cron expression.
"""

from __future__ import annotations

from stella.admission._util import (
    clip,
    mapping,
    metadata,
    parse_model,
    requires_graph,
    schema_message,
    spec_of,
)
from stella.admission.base import (
    ENVIRONMENT_CREDENTIALS_HOSTS,
    ENVIRONMENT_CYCLE,
    ENVIRONMENT_FREEZE_WINDOW,
    ENVIRONMENT_LITERAL_SECRET,
    ENVIRONMENT_UNKNOWN_REQUIRES,
    SCHEMA,
    AdmissionPolicy,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.models.environment import EnvironmentSpec
from stella.policy.freeze import invalid_windows
from stella.policy.path import closure, find_cycle
from stella.registry.verify import credentials_withheld
from stella.secrets.refs import refuse_literal


def validate_environment(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation == "DELETE":
        return _delete(req, snap)
    if req.operation not in ("CREATE", "UPDATE"):
        return allow()
    raw_spec = spec_of(req.obj)
    if req.operation == "UPDATE" and raw_spec == spec_of(req.old):
        return allow()  # metadata only (finalizers, labels): spec rules were checked before
    name = req.name or str(metadata(req.obj).get("name", ""))
    old_spec = mapping(spec_of(req.old)) if req.operation == "UPDATE" else None

    def changed(field: str) -> bool:
        # On UPDATE only what changed is judged again: an unrelated edit (suspending the
        # environment in an emergency) must not fail because something else went stale.
        return old_spec is None or mapping(raw_spec).get(field) != old_spec.get(field)

    creds = mapping(raw_spec).get("registryCredentials")
    if isinstance(creds, str) and changed("registryCredentials"):
        refusal = refuse_literal(
            "registryCredentials", creds, suggest_path=f"secret/registry/{name or 'prod'}"
        )
        if refusal is not None:
            return deny(ENVIRONMENT_LITERAL_SECRET, clip(f"spec.{refusal}"))
    parsed = parse_model(EnvironmentSpec, raw_spec)
    if not isinstance(parsed, EnvironmentSpec):
        return deny(SCHEMA, schema_message("Environment", parsed))
    spec = parsed
    if changed("registryCredentials") or changed("allowedRegistries"):
        # Credentials go only to listed registries (T1/T9): with none listed they would
        # go nowhere, so say so now rather than at the first verification.
        withheld = credentials_withheld(
            name or "<unnamed>", spec.registry_credentials, spec.allowed_registries
        )
        if withheld is not None:
            return deny(ENVIRONMENT_CREDENTIALS_HOSTS, withheld)
    if changed("requires"):
        denial = _check_requires(snap, name, spec, old_spec)
        if denial is not None:
            return denial
    if changed("freezeWindows"):
        problems = invalid_windows(spec.freeze_windows)
        if problems:
            text = "; ".join(message for _, message in problems)
            return deny(ENVIRONMENT_FREEZE_WINDOW, clip(text))
    warnings: list[str] = []
    if not spec.allowed_registries:
        warnings.append(
            "spec.allowedRegistries is empty: Releases may use images from any registry; "
            "list the registries you trust to restrict them"
        )
    return allow(warnings)


def _check_requires(
    snap: Snapshot, name: str, spec: EnvironmentSpec, old_spec: object
) -> Verdict | None:
    before = mapping(old_spec).get("requires")
    had = {r for r in before if isinstance(r, str)} if isinstance(before, list) else set()
    unknown = [
        r
        for r in dict.fromkeys(spec.requires)
        if r != name and r not in had and r not in snap.environments
    ]
    if unknown:
        names = ", ".join(unknown)
        return deny(
            ENVIRONMENT_UNKNOWN_REQUIRES,
            f"spec.requires names Environment {names}, which does not exist: create "
            f"Environment {names} first or fix spec.requires",
        )
    graph = requires_graph(snap)
    graph[name] = list(spec.requires)
    reachable = closure(graph, [name])
    cycle = find_cycle({n: graph[n] for n in reachable if n in graph})
    if cycle is not None:
        return deny(
            ENVIRONMENT_CYCLE,
            f"spec.requires makes a cycle: {' -> '.join(cycle)}; environments must form a "
            "path, so remove one of these requires",
        )
    return None


def _delete(req: Request, snap: Snapshot) -> Verdict:
    name = req.name or str(metadata(req.old).get("name", ""))
    dependents = sorted(
        env for env, reqs in requires_graph(snap).items() if env != name and name in reqs
    )
    if dependents:
        return allow(
            [
                f"Environment {', '.join(dependents)} requires {name}; "
                "their promotion paths are broken until you fix their spec.requires"
            ]
        )
    return allow()
