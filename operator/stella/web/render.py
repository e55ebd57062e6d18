"""HTML building blocks of the console: escaping, the page frame, phase badges. Pure.

Every value from the cluster goes through `esc` (html.escape with quotes). No inline
script or style anywhere (the Content-Security-Policy forbids both): behaviour lives in
/static/console.js, looks in /static/console.css.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

PHASE_CLASSES: dict[str, str] = {
    "Deployed": "ok",
    "Live": "live",
    "Deploying": "busy",
    "Verifying": "busy",
    "WaitingForApproval": "wait",
    "WaitingForPrerequisites": "idle",
    "Pending": "idle",
    "Frozen": "frozen",
    "Failed": "bad",
    "Rejected": "bad",
    "Halted": "bad",
    "Blocked": "bad",
    "Superseded": "idle",
}
NAV = (
    ("/", "Pipelines"),
    ("/inbox", "Waiting for me"),
    ("/environments", "Environments"),
    ("/evidence", "Evidence"),
    ("/dora", "DORA"),
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def badge(phase: str, live: bool = False) -> str:
    shown = "Live" if live else phase
    css = PHASE_CLASSES.get(shown, "idle")
    return f'<span class="phase {css}" data-phase="{esc(shown)}">{esc(shown)}</span>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], css: str = "") -> str:
    """Cells are HTML already (escape values before)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cls = f' class="{esc(css)}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def hidden_csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def page(
    title: str,
    body: str,
    user: str | None = None,
    csrf: str = "",
    active: str = "",
    notice: str = "",
    synced: bool = True,
) -> str:
    nav = ""
    if user is not None:
        links = "".join(
            f'<a href="{href}"{" class=active" if href == active else ""}>{esc(text)}</a>'
            for href, text in NAV
        )
        nav = (
            f'<nav>{links}<span class="who">{esc(user)}'
            f'<form method="post" action="/logout" class="inline">{hidden_csrf(csrf)}'
            '<button type="submit" class="link">log out</button></form></span></nav>'
        )
    banner = f'<p class="notice" role="status">{esc(notice)}</p>' if notice else ""
    if not synced:
        banner += (
            '<p class="notice warn">The console is still reading the cluster; what you see '
            "may be incomplete and no action is offered yet.</p>"
        )
    meta = f'<meta name="csrf-token" content="{esc(csrf)}">' if csrf else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · Stella</title>{meta}"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        f'<body><header><a class="brand" href="/">★ Stella</a>{nav}</header>'
        f"<main><h1>{esc(title)}</h1>{banner}{body}</main></body></html>"
    )
