"""The console's pictures: the path graph, DORA charts and the freeze calendar (pure)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from stella.evidence.dora import Dora, format_duration
from stella.web import pictures

SVG = "{http://www.w3.org/2000/svg}"


def env(name: str, requires: list[str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"requires": requires or []},
        "status": status,
    }


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def test_columns_follow_the_path_and_ignore_unknown_or_cyclic_prerequisites() -> None:
    envs = [
        env("prod", ["staging", "qa"]),
        env("staging", ["dev"]),
        env("qa", ["dev"]),
        env("dev"),
        env("lonely", ["gone"]),
        env("a", ["b"]),
        env("b", ["a"]),
    ]
    cols = pictures.layers(envs)
    assert cols["dev"] == 0 and cols["lonely"] == 0
    assert cols["staging"] == cols["qa"] == 1
    assert cols["prod"] == 2
    assert cols["a"] != cols["b"]  # a cycle ends: each drawn once, in some column


def test_the_path_graph_draws_each_environment_and_each_prerequisite() -> None:
    envs = [
        env("dev", currentRelease="shop/shop-1"),
        env("staging", ["dev"], halted={"reason": "DigestMismatch"}),
        env("prod", ["staging"], suspended={"by": "frank"}),
    ]
    svg = pictures.path_graph(envs)
    root = parse(svg)
    links = root.findall(f"{SVG}a")
    assert [a.get("href") for a in links] == [
        "/environments/dev",
        "/environments/prod",
        "/environments/staging",
    ]
    classes = {a.get("data-env"): a.get("class") for a in links}
    assert classes == {"dev": "node open", "staging": "node halted", "prod": "node suspended"}
    assert len(root.findall(f"{SVG}line")) == 2
    assert "shop/shop-1 · open" in svg
    # arrows run left to right: each edge ends right of where it starts
    for line in root.findall(f"{SVG}line"):
        assert float(line.get("x2") or 0) > float(line.get("x1") or 0)


def test_the_path_graph_escapes_what_the_cluster_says() -> None:
    svg = pictures.path_graph([env("dev", currentRelease='<script>x</script>"')])
    assert "<script>" not in svg
    parse(svg)
    assert pictures.path_graph([]).startswith('<p class="empty">')


def dora_row(name: str, deployments: int, cfr: float | None) -> Dora:
    return Dora(
        environment=name,
        days=7.0,
        deployments=deployments,
        per_day=deployments / 7,
        lead_time_p50=5400.0,
        lead_time_p90=7200.0,
        failures=1,
        change_failure_rate=cfr,
        restores=1,
        time_to_restore_p50=None,
    )


def test_dora_charts_scale_bars_to_the_largest_and_say_each_figure() -> None:
    html = pictures.dora_charts([dora_row("dev", 14, 0.25), dora_row("prod", 7, None)])
    charts = re.findall(r"<svg.*?</svg>", html)
    assert len(charts) == 4
    deploys = parse(charts[0])
    widths = [float(r.get("width") or 0) for r in deploys.findall(f"{SVG}rect")]
    assert widths == [pictures.BAR_W, pictures.BAR_W / 2]
    texts = [t.text for t in deploys.findall(f"{SVG}text")]
    assert "14 (2.00/day)" in texts and "7 (1.00/day)" in texts
    assert "25%" in charts[2] and "—" in charts[2]  # no finished promotion: no rate
    assert "1h30m" in charts[1] and "-" in charts[3]
    assert pictures.dora_charts([]).startswith('<p class="empty">')


def test_bars_of_nothing_do_not_divide_by_zero() -> None:
    svg = pictures.bar_chart("Deployments", [("dev", 0.0, "0")])
    assert parse(svg).findall(f"{SVG}rect")[0].get("width") == "0.0"


def test_durations_read_as_the_cli_prints_them() -> None:
    assert [format_duration(s) for s in (None, 42, 600, 5400, 3 * 86400)] == [
        "-",
        "42s",
        "10m00s",
        "1h30m",
        "3d00h",
    ]


NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday


def test_the_calendar_marks_recurring_and_absolute_windows() -> None:
    windows = [
        # Friday 18:00 for 62h: Friday partly, Saturday and Sunday whole, Monday until 08:00
        {"name": "weekend", "schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "UTC"},
        {"name": "xmas", "start": "2026-12-10T00:00:00Z", "end": "2026-12-11T00:00:00Z"},
    ]
    html = pictures.freeze_calendar(windows, NOW)
    cells = re.findall(r'<td class="day ([a-z ]+)"[^>]*data-day="([0-9-]+)"', html)
    by_day = {day: state for state, day in cells}
    assert by_day["2026-11-23"] == "partly"  # Monday: the previous weekend's last 8 hours
    assert by_day["2026-11-25"] == "open today"
    assert by_day["2026-11-27"] == "partly"  # Friday from 18:00
    assert by_day["2026-11-28"] == by_day["2026-11-29"] == "frozen"
    assert by_day["2026-12-10"] == "frozen"  # the absolute window, a whole UTC day
    assert by_day["2026-12-09"] == "open"
    assert len(by_day) == 28
    assert 'title="weekend: 6h"' in html  # Friday 18:00-24:00


def test_a_calendar_skips_invalid_windows_and_is_empty_without_windows() -> None:
    assert pictures.freeze_calendar([], NOW) == ""
    bad = [{"name": "x", "schedule": "61 * * * *", "duration": "1h"}]
    assert pictures.freeze_calendar(bad, NOW) == ""
