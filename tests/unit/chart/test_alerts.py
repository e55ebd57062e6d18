"""The chart's PrometheusRule alerts, rendered by helm and run through Prometheus' own
`promtool check rules` and `promtool test rules` (tests/unit/chart/alerts_test.yaml): each
alert fires on the signal it is for, with its labels and summary, and not before."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tests.unit.chart.test_chart import by_kind, rendered

HERE = Path(__file__).resolve().parent
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _rules() -> dict[str, Any]:
    rule = by_kind(rendered("prometheusRule.enabled=true"), "PrometheusRule", "stella")
    return {"groups": rule["spec"]["groups"]}


def test_promtool_checks_and_tests_every_alert(tmp_path: Path) -> None:
    assert Path(PROMTOOL).exists(), "promtool not found; run `make deps` (Debian prometheus)"
    rules = _rules()
    (tmp_path / "stella-rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    check = subprocess.run(
        [PROMTOOL, "check", "rules", "stella-rules.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr

    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
    tested = {
        case["alertname"] for t in tests for case in t["alert_rule_test"] if case.get("exp_alerts")
    }
    assert alerts == tested, f"alerts without a firing case: {sorted(alerts - tested)}"


DASHBOARD = HERE.parents[2] / "charts" / "stella" / "files" / "grafana-dashboard.json"


def test_the_grafana_dashboard_queries_parse_and_name_real_metrics(tmp_path: Path) -> None:
    """Every panel's PromQL parses (promtool checks it as a recording rule) and reads only
    metrics the operator exports; the chart ships the file unchanged."""
    from stella import metrics

    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs and dash["uid"] == "stella-overview"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"stella:panel_{i}", "expr": e.replace("$__rate_interval", "5m")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", "dashboard-rules.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    exported = {
        name + suffix
        for m in metrics.REGISTRY.collect()
        for name in (m.name,)
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    used = set(re.findall(r"\bstella_[a-z_]+", " ".join(exprs)))
    assert used and used <= exported, sorted(used - exported)
    for title in ("Promotions finished", "Waiting for approval p50 / p99", "Admission denials",
                  "Security signals", "Evidence backlog"):  # fmt: skip
        assert any(p["title"] == title for p in dash["panels"]), title

    cm = by_kind(rendered("grafanaDashboard.enabled=true"), "ConfigMap", "stella-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["stella.json"]) == dash
