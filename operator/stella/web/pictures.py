"""The console's pictures, server-rendered (the CSP forbids inline script and style): the
promotion path as an SVG graph, DORA figures as SVG bar charts, freeze windows as a
calendar. Pure: no I/O, no clock (the caller passes `now`). Colours come from classes
styled in /static/console.css; every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from stella.evidence.dora import Dora, format_duration
from stella.models.environment import FreezeWindow
from stella.policy.freeze import active_freeze, validate_freeze_window
from stella.web.render import esc

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 50, 56, 18, 8
BAR_H, LABEL_W, BAR_W = 22, 120, 300


def _m(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _name(env: Mapping[str, Any]) -> str:
    return str(_m(env.get("metadata")).get("name") or "")


def _requires(env: Mapping[str, Any]) -> list[str]:
    value = _m(env.get("spec")).get("requires")
    return [str(r) for r in value] if isinstance(value, list) else []


def layers(environments: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each Environment's column: 0 without prerequisites, else one past its furthest
    prerequisite (prerequisites that do not exist are ignored; a cycle stops climbing)."""
    requires = {_name(e): _requires(e) for e in environments}
    out: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str]) -> int:
        if name in out:
            return out[name]
        if name in seen:
            return 0
        known = [r for r in requires.get(name, []) if r in requires]
        value = 1 + max((depth(r, seen | {name}) for r in known), default=-1)
        out[name] = value
        return value

    for name in sorted(requires):
        depth(name, frozenset())
    return out


def path_graph(environments: Sequence[Mapping[str, Any]]) -> str:
    """The promotion path: a box per Environment (its current release, its state), an arrow
    from each prerequisite. Each box links to the Environment's page."""
    if not environments:
        return '<p class="empty">No Environments you may read.</p>'
    column = layers(environments)
    rows: dict[int, list[str]] = {}
    for name in sorted(column, key=lambda n: (column[n], n)):
        rows.setdefault(column[name], []).append(name)
    at = {
        name: (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
        for col, names in rows.items()
        for row, name in enumerate(names)
    }
    width = PAD * 2 + (max(rows) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(n) for n in rows.values()) * (NODE_H + GAP_Y) - GAP_Y
    edges = []
    for env in environments:
        x2, y2 = at[_name(env)]
        for req in _requires(env):
            if req in at:
                x1, y1 = at[req]
                edges.append(
                    f'<line class="edge" x1="{x1 + NODE_W}" y1="{y1 + NODE_H // 2}" '
                    f'x2="{x2 - 2}" y2="{y2 + NODE_H // 2}" marker-end="url(#arrow)"/>'
                )
    nodes = []
    for env in sorted(environments, key=_name):
        name, status = _name(env), _m(env.get("status"))
        x, y = at[name]
        state = (
            "halted" if status.get("halted") else "suspended" if status.get("suspended") else "open"
        )
        current = str(status.get("currentRelease") or "nothing deployed")
        if len(current) > 24:
            current = current[:23] + "…"
        nodes.append(
            f'<a href="/environments/{esc(name)}" class="node {state}" data-env="{esc(name)}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 20}" class="name">{esc(name)}</text>'
            f'<text x="{x + 10}" y="{y + 38}" class="sub">{esc(current)} · {state}</text></a>'
        )
    return (
        f'<svg class="graph" id="path-graph" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>The promotion path</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        + "".join(edges)
        + "".join(nodes)
        + "</svg>"
    )


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], css: str = "") -> str:
    """Horizontal bars: (label, value >= 0, the value as text). Scaled to the largest."""
    top = max((v for _, v, _ in bars), default=0.0) or 1.0
    height = PAD * 2 + len(bars) * (BAR_H + 6) + 18
    width = LABEL_W + BAR_W + 140
    out = [
        f'<svg class="chart {esc(css)}" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(title)}</title>"
        f'<text x="{PAD}" y="{PAD + 10}" class="title">{esc(title)}</text>'
    ]
    for i, (label, value, text) in enumerate(bars):
        y = PAD + 18 + i * (BAR_H + 6)
        w = max(0.0, value) / top * BAR_W
        out.append(
            f'<text x="{PAD}" y="{y + 15}" class="label">{esc(label)}</text>'
            f'<rect class="bar" x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}"/>'
            f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 15}" class="value">{esc(text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _rate(per_day: float) -> str:
    return f"{per_day:.2f}" if per_day < 10 else f"{per_day:.0f}"


def dora_charts(rows: Sequence[Dora]) -> str:
    """The four keys per Environment, one chart each (only Environments with figures)."""
    if not rows:
        return '<p class="empty">No finished promotions in the evidence yet.</p>'
    deploys = [
        (r.environment, float(r.deployments), f"{r.deployments} ({_rate(r.per_day)}/day)")
        for r in rows
    ]
    lead = [(r.environment, r.lead_time_p50 or 0.0, format_duration(r.lead_time_p50)) for r in rows]
    cfr = [
        (
            r.environment,
            r.change_failure_rate or 0.0,
            "—" if r.change_failure_rate is None else f"{100 * r.change_failure_rate:.0f}%",
        )
        for r in rows
    ]
    restore = [
        (r.environment, r.time_to_restore_p50 or 0.0, format_duration(r.time_to_restore_p50))
        for r in rows
    ]
    return (
        '<div class="charts" id="dora-charts">'
        + bar_chart("Deployments", deploys, "deployments")
        + bar_chart("Lead time (p50)", lead, "lead")
        + bar_chart("Change failure rate", cfr, "failures")
        + bar_chart("Time to restore (p50)", restore, "restore")
        + "</div>"
    )


def _windows(raw: Sequence[Any]) -> list[FreezeWindow]:
    out = []
    for w in raw:
        try:
            window = FreezeWindow.model_validate(w)
        except ValidationError:
            continue
        if not validate_freeze_window(window):
            out.append(window)
    return out


def frozen_hours(windows: Sequence[FreezeWindow], day: datetime) -> dict[str, int]:
    """Per window label, how many of the day's 24 hours (sampled at half past, UTC) it
    freezes; windows that freeze none are left out."""
    out: dict[str, int] = {}
    for hour in range(24):
        found = active_freeze(windows, day + timedelta(hours=hour, minutes=30))
        if found is not None:
            label = found.window.name or f"window #{found.index + 1}"
            out[label] = out.get(label, 0) + 1
    return out


def freeze_calendar(raw_windows: Sequence[Any], now: datetime, weeks: int = 4) -> str:
    """The next `weeks` weeks (from this week's Monday, UTC days): a day is frozen all day,
    partly, or open; its tooltip names the windows and their hours."""
    windows = _windows(raw_windows)
    if not windows:
        return ""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=today.weekday())
    head = "".join(f"<th>{d}</th>" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    body = []
    for week in range(weeks):
        cells = []
        for d in range(7):
            day = start + timedelta(days=week * 7 + d)
            hours = frozen_hours(windows, day)
            total = min(24, sum(hours.values()))
            state = "frozen" if total == 24 else "partly" if total else "open"
            classes = f"day {state}" + (" today" if day == today else "")
            tip = "; ".join(f"{name}: {n}h" for name, n in hours.items()) or "open"
            cells.append(
                f'<td class="{classes}" title="{esc(tip)}" data-day="{day:%Y-%m-%d}">'
                f'<span class="date">{day:%d %b}</span>'
                f'<span class="mark">{"frozen" if state == "frozen" else tip if total else ""}'
                "</span></td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="calendar" id="freeze-calendar"><caption>Freeze windows, the next '
        f"{weeks} weeks (UTC days)</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
