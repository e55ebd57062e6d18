"""The console's pages, rendered from raw bodies of the view. Pure: no I/O, no clock.

The caller passes only what the person may read (the app filters by
SelfSubjectAccessReview) and the verdicts of what they may do (stella.web.inbox); a page
offers a form only where the verdict allows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stella.admission.base import Verdict
from stella.policy.path import CycleError, topological_order
from stella.policy.rollback import RollbackPlan
from stella.web.evidence import ReleaseEvidence
from stella.web.evidence_pages import release_evidence
from stella.web.inbox import Decidable
from stella.web.pictures import freeze_calendar, path_graph
from stella.web.render import badge, esc, hidden_csrf, table

Body = Mapping[str, Any]


def _m(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def path_order(environments: Sequence[Body]) -> list[str]:
    graph = {
        str(_m(e.get("metadata")).get("name")): [
            str(r) for r in _l(_m(e.get("spec")).get("requires"))
        ]
        for e in environments
    }
    try:
        return topological_order(graph)
    except CycleError:
        return sorted(graph)


def release_link(namespace: str, name: str) -> str:
    return f'<a href="/releases/{esc(namespace)}/{esc(name)}">{esc(namespace)}/{esc(name)}</a>'


def _groups(approvals: Mapping[str, Any]) -> str:
    return ", ".join(str(g) for g in _l(approvals.get("approverGroups"))) or "anyone"


def release_ref(body: Body) -> str:
    meta = _m(body.get("metadata"))
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass(frozen=True)
class Row:
    ref: str
    version: str
    cells: dict[str, tuple[str, bool]] = field(default_factory=dict)  # env -> (phase, live)


@dataclass(frozen=True)
class Pipeline:
    environments: list[str]
    rows: list[Row]

    def cells(self) -> dict[str, str]:
        """ "ns/name|env" -> what the cell shows: for the live updates."""
        return {
            f"{row.ref}|{env}": ("Live" if live else phase)
            for row in self.rows
            for env, (phase, live) in row.cells.items()
        }


def pipeline(environments: Sequence[Body], releases: Sequence[Body]) -> Pipeline:
    order = path_order(environments)
    current = {
        str(_m(e.get("metadata")).get("name")): _m(e.get("status")).get("currentRelease")
        for e in environments
    }
    rows = []
    for body in sorted(
        releases,
        key=lambda b: (str(_m(b.get("metadata")).get("creationTimestamp") or ""), release_ref(b)),
        reverse=True,
    ):
        ref = release_ref(body)
        targets = [str(t) for t in _l(_m(body.get("spec")).get("environments"))]
        progress = {
            str(_m(p).get("name")): str(_m(p).get("phase") or "Pending")
            for p in _l(_m(body.get("status")).get("environments"))
        }
        cells = {env: (progress.get(env, "Pending"), current.get(env) == ref) for env in targets}
        rows.append(Row(ref, str(_m(body.get("spec")).get("version") or ""), cells))
    return Pipeline(order, rows)


def pipeline_page(p: Pipeline, revision: int) -> str:
    if not p.rows:
        return '<p class="empty">No Releases you may read yet.</p>'
    heads = [
        "Release",
        "Version",
        *[f'<a href="/environments/{esc(e)}">{esc(e)}</a>' for e in p.environments],
    ]
    rows = []
    for row in p.rows:
        cells = [f'<a href="/releases/{esc(row.ref)}">{esc(row.ref)}</a>', esc(row.version)]
        for env in p.environments:
            if env in row.cells:
                phase, live = row.cells[env]
                cells.append(
                    f'<span data-cell="{esc(row.ref)}|{esc(env)}">{badge(phase, live)}</span>'
                )
            else:
                cells.append('<span class="none">—</span>')
        rows.append(cells)
    return (
        f'<div id="pipeline" data-revision="{revision}" data-poll="/api/pipeline">'
        + table(heads, rows, "pipeline")
        + "</div>"
    )


def _release_form(
    namespace: str, release: str, environment: str, csrf: str, step: str, css: str, inner: str
) -> str:
    """A form posting to /releases/NS/NAME/STEP for one Environment, with its CSRF token."""
    action = f"/releases/{esc(namespace)}/{esc(release)}/{step}"
    return (
        f'<form method="post" action="{action}" class="{css}">{hidden_csrf(csrf)}'
        f'<input type="hidden" name="environment" value="{esc(environment)}">{inner}</form>'
    )


def decision_form(namespace: str, release: str, environment: str, csrf: str) -> str:
    return _release_form(
        namespace,
        release,
        environment,
        csrf,
        "decide",
        "decide",
        '<input name="comment" maxlength="1024" placeholder="comment (e.g. CAB-1234)" '
        'aria-label="comment">'
        '<button name="decision" value="Approve" class="approve">Approve</button>'
        '<button name="decision" value="Reject" class="reject">Reject</button>',
    )


def awaits_promotion(progress: Mapping[str, Any]) -> bool:
    """Whether a Release's progress in an Environment waits for a person to promote it
    (autoPromote: false)."""
    return progress.get("phase") == "Pending" and progress.get("reason") == "AwaitingPromotion"


def promote_form(namespace: str, release: str, environment: str, csrf: str) -> str:
    return _release_form(
        namespace,
        release,
        environment,
        csrf,
        "promote",
        "decide promote",
        '<input name="reason" maxlength="1024" placeholder="why now (optional, kept as '
        'evidence)" aria-label="reason">'
        f'<button class="approve">Promote to {esc(environment)}</button>',
    )


def inbox_page(items: Sequence[Decidable], csrf: str) -> str:
    mine = [d for d in items if d.may_decide]
    others = [d for d in items if not d.may_decide]
    if not mine:
        out = '<p class="empty" id="nothing-waiting">Nothing waits for your decision.</p>'
    else:
        out = table(
            ["Release", "Version", "Environment", "Waiting for", "Decide"],
            [
                [
                    release_link(d.namespace, d.release),
                    esc(d.version),
                    esc(d.environment),
                    esc(d.message),
                    decision_form(d.namespace, d.release, d.environment, csrf),
                ]
                for d in mine
            ],
            "inbox",
        )
    if others:
        out += "<h2>Waiting for someone else</h2>" + table(
            ["Release", "Environment", "Why not you"],
            [
                [
                    release_link(d.namespace, d.release),
                    esc(d.environment),
                    f'<span class="why">{esc(d.verdict.message)}</span>',
                ]
                for d in others
            ],
            "others",
        )
    return out


def _decision(approval: Body) -> str:
    """One Approval: who (as admission recorded them), what, when, and the comment."""
    from stella.policy.identity import recorded_identity

    who = recorded_identity(approval, "approver")
    spec, meta = _m(approval.get("spec")), _m(approval.get("metadata"))
    comment = str(spec.get("comment") or "")
    return (
        f"<li>{esc(spec.get('decision'))} by <b>{esc(who.username if who else '?')}</b> at "
        f"<time>{esc(meta.get('creationTimestamp'))}</time>"
        f"{f' — <q>{esc(comment)}</q>' if comment else ''}</li>"
    )


def release_page(
    body: Body,
    verdicts: Mapping[str, Verdict],
    csrf: str,
    live_in: set[str],
    decisions: Mapping[str, Sequence[Body]] | None = None,
    evidence: Sequence[ReleaseEvidence] | None = None,
    promotable: set[str] | None = None,
) -> str:
    """decisions: the Approvals of this Release per Environment, oldest first. evidence:
    its packets as verified, or None when this person may not read the evidence."""
    decisions = decisions or {}
    meta, spec, status = _m(body.get("metadata")), _m(body.get("spec")), _m(body.get("status"))
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    components = table(
        ["Component", "Image", "Workload"],
        [
            [
                esc(_m(c).get("name")),
                f"<code>{esc(_m(c).get('image'))}</code>",
                esc("/".join(str(v) for v in _m(_m(c).get("workload")).values())),
            ]
            for c in _l(spec.get("components"))
        ],
    )
    progress = {str(_m(p).get("name")): _m(p) for p in _l(status.get("environments"))}
    steps = []
    for env in [str(e) for e in _l(spec.get("environments"))]:
        p = progress.get(env, {})
        phase = str(p.get("phase") or "Pending")
        approvals = "".join(_decision(a) for a in decisions.get(env, ()))
        verdict = verdicts.get(env)
        act = ""
        if phase == "WaitingForApproval" and verdict is not None:
            act = (
                decision_form(namespace, name, env, csrf)
                if verdict.allowed
                else f'<p class="why">{esc(verdict.message)}</p>'
            )
        elif env in (promotable or ()) and awaits_promotion(p):
            act = promote_form(namespace, name, env, csrf)
        steps.append(
            f'<li class="step"><div class="env"><a href="/environments/{esc(env)}">{esc(env)}</a> '
            f'<span data-cell="{esc(namespace)}/{esc(name)}|{esc(env)}">'
            f"{badge(phase, env in live_in)}</span></div>"
            f'<p class="msg">{esc(p.get("message") or "")}</p>'
            f'<p class="since">{esc(p.get("since") or "")}</p>'
            f"{'<ul class=approvals>' + approvals + '</ul>' if approvals else ''}{act}</li>"
        )
    requester = _m(meta.get("annotations")).get("stella.io/requester") or ""
    by = f" · requested by <b>{esc(_requester_name(requester))}</b>" if requester else ""
    return (
        f'<p class="facts">version <b>{esc(spec.get("version"))}</b> · created '
        f"<time>{esc(meta.get('creationTimestamp'))}</time>"
        f"{by}</p><h2>Components</h2>{components}"
        '<h2>Path</h2><ol class="timeline" id="timeline" data-poll="/api/pipeline" data-refresh>'
        f"{''.join(steps)}</ol>" + release_evidence(evidence)
    )


def _requester_name(raw: str) -> str:
    from stella.policy.identity import parse_identity

    who = parse_identity(raw)
    return who.username if who is not None else "?"


def environments_page(environments: Sequence[Body]) -> str:
    by_name = {str(_m(e.get("metadata")).get("name")): e for e in environments}
    rows = []
    for name in path_order(environments):
        e = by_name[name]
        spec, status = _m(e.get("spec")), _m(e.get("status"))
        approvals = _m(spec.get("approvals"))
        state = (
            "halted"
            if status.get("halted")
            else ("suspended" if status.get("suspended") else "open")
        )
        rows.append(
            [
                f'<a href="/environments/{esc(name)}">{esc(name)}</a>',
                esc(", ".join(str(r) for r in _l(spec.get("requires"))) or "—"),
                esc(status.get("currentRelease") or "—"),
                esc(f"{approvals.get('required', 0)} of {_groups(approvals)}"),
                f'<span class="state {state}">{state}</span>',
            ]
        )
    return (
        '<h2>Path</h2><div class="picture">'
        + path_graph(environments)
        + "</div>"
        + table(["Environment", "Requires", "Current release", "Approvals", "State"], rows)
    )


def env_action_applies(body: Body, action: str) -> bool:
    """Whether an Environment's state makes this action meaningful now."""
    status = _m(body.get("status"))
    if action == "ClearHalt":
        return bool(status.get("halted"))
    if action == "Resume":
        return bool(status.get("suspended"))
    return action == "Suspend" and not status.get("suspended")


def rollback_form(plan: RollbackPlan, csrf: str) -> str:
    """Roll the Environment back to the plan's Release (as `stella rollback ENV --to`)."""
    return (
        f'<div class="actions"><form method="post" action="/environments/'
        f'{esc(plan.environment)}/rollback" class="decide rollback">{hidden_csrf(csrf)}'
        f'<input type="hidden" name="to" value="{esc(plan.to_release)}">'
        f'<button class="reject">Roll back to {esc(plan.to_release)}</button></form>'
        f'<p class="hint">{esc(plan.message)}</p></div>'
    )


def env_action_form(environment: str, step: str, csrf: str) -> str:
    """A form for one Environment action (step: clear-halt, suspend, resume)."""
    label, hint = {
        "clear-halt": ("Clear halt", "why it is safe now (e.g. INC-42: registry fixed)"),
        "suspend": ("Suspend deployments", "why (e.g. database migration)"),
        "resume": ("Resume deployments", "why (optional)"),
    }[step]
    required = "" if step == "resume" else " required"
    return (
        f'<form method="post" action="/environments/{esc(environment)}/{step}" '
        f'class="decide {step}">{hidden_csrf(csrf)}'
        f'<input name="reason" maxlength="1024"{required} placeholder="{esc(hint)}" '
        'aria-label="reason">'
        f'<button class="{"reject" if step == "suspend" else "approve"}">{label}</button></form>'
    )


def environment_page(
    body: Body,
    offers: set[str] | None = None,
    csrf: str = "",
    now: datetime | None = None,
    rollback: RollbackPlan | None = None,
) -> str:
    """offers: the actions (clear-halt, suspend, resume) this person holds the RBAC verb
    for and that apply now; each gets its form. now: for the freeze calendar. rollback:
    the plan offered to a holder of the `rollback` verb, when there is one."""
    offers = offers or set()
    spec, status = _m(body.get("spec")), _m(body.get("status"))
    name = str(_m(body.get("metadata")).get("name") or "")
    approvals = _m(spec.get("approvals"))
    facts = [
        ("Requires", ", ".join(str(r) for r in _l(spec.get("requires"))) or "—"),
        ("Current release", status.get("currentRelease") or "—"),
        (
            "Targets",
            ", ".join(str(_m(t).get("namespace") or "agents") for t in _l(spec.get("targets"))),
        ),
        (
            "Approvals",
            f"{approvals.get('required', 0)} from {_groups(approvals)}"
            + ("; never the requester" if approvals.get("preventSelfApproval", True) else ""),
        ),
        ("Auto-promote", "yes" if spec.get("autoPromote", True) else "no"),
    ]
    out = (
        "<dl class=facts>"
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
        + "</dl>"
    )
    halted = _m(status.get("halted"))
    if halted:
        out += (
            f'<div class="notice bad" id="halted">Halted since {esc(halted.get("since"))}: '
            f"{esc(halted.get('reason'))} — {esc(halted.get('message'))}"
            f"{env_action_form(name, 'clear-halt', csrf) if 'clear-halt' in offers else ''}</div>"
        )
    suspended = _m(status.get("suspended"))
    if suspended:
        out += (
            f'<div class="notice warn" id="suspended">Deployments suspended by '
            f"<b>{esc(suspended.get('by'))}</b> at {esc(suspended.get('at'))}: "
            f"{esc(suspended.get('reason'))}"
            f"{env_action_form(name, 'resume', csrf) if 'resume' in offers else ''}</div>"
        )
    elif "suspend" in offers:
        out += f'<div class="actions">{env_action_form(name, "suspend", csrf)}</div>'
    if rollback is not None:
        out += rollback_form(rollback, csrf)
    windows = _l(spec.get("freezeWindows"))
    if windows:
        out += "<h2>Freeze windows</h2>" + table(
            ["Name", "Schedule / from", "Duration / until", "Time zone"],
            [
                [
                    esc(_m(w).get("name") or "—"),
                    esc(_m(w).get("schedule") or _m(w).get("start") or ""),
                    esc(_m(w).get("duration") or _m(w).get("end") or ""),
                    esc(_m(w).get("timeZone") or "UTC"),
                ]
                for w in windows
            ],
        )
        if now is not None:
            out += freeze_calendar(windows, now)
    history = _l(status.get("history"))
    out += "<h2>History</h2>" + (
        table(
            ["When", "Release", "Version", "Outcome", "Approvers"],
            [
                [
                    f"<time>{esc(_m(h).get('at'))}</time>",
                    esc(_m(h).get("release")),
                    esc(_m(h).get("version")),
                    badge(str(_m(h).get("outcome") or "")),
                    esc(", ".join(str(a) for a in _l(_m(h).get("approvers"))) or "—"),
                ]
                for h in sorted(history, key=lambda h: str(_m(h).get("at")), reverse=True)
            ],
        )
        if history
        else '<p class="empty">Nothing deployed here yet.</p>'
    )
    return out


LOGIN_MESSAGES: dict[str, str] = {
    "login": "",
    "expired": "Your session ended; log in again.",
    "refresh-reuse": "A refresh token of your session was used twice, so the session was "
    "revoked. Log in again; if you did not expect this, tell your security team.",
    "address-change": "Your session was used from another network address, so it was "
    "revoked. Log in again.",
    "refused": "The API server did not accept this token.",
    "unavailable": "The API server could not check the token; try again shortly.",
    "empty": "Paste a Kubernetes bearer token.",
    "csrf": "The login form expired or came from another site; try again.",
    "logout": "You are logged out.",
}


def refused_page(namespace: str, name: str, decision: str, env: str, message: str) -> str:
    return (
        f'<p class="notice bad" role="alert" id="refused">The API server refused '
        f"{esc(decision.lower())} of {esc(namespace)}/{esc(name)} for {esc(env)}: "
        f"{esc(message)}</p><p>Back to {release_link(namespace, name)}</p>"
    )


def action_refused_page(what: str, environment: str, message: str) -> str:
    return (
        f'<p class="notice bad" role="alert" id="refused">The API server refused to '
        f"{esc(what)} {esc(environment)}: {esc(message)}</p>"
        f'<p>Back to <a href="/environments/{esc(environment)}">{esc(environment)}</a></p>'
    )


def csrf_refused_page(reason: str) -> str:
    return (
        f'<p class="notice bad" role="alert" id="refused">Refused: {esc(reason)}. '
        "Nothing was changed.</p>"
    )


def login_page(csrf: str, message: str = "") -> str:
    error = f'<p class="notice bad" role="alert">{esc(message)}</p>' if message else ""
    return (
        f"{error}<form method=post action=/login class=login>{hidden_csrf(csrf)}"
        "<label>Kubernetes bearer token<input type=password name=token autocomplete=off "
        "required></label><button type=submit>Log in</button></form>"
        "<p class=hint>Your token is checked with the API server (TokenReview) and used only "
        "for requests made in your name. In a real cluster, sign in through your identity "
        "provider instead (docs/console.md).</p>"
    )
