"""The previous chart version (charts/stella at PREVIOUS, 0.1.0) and its operator code, for
the upgrade tests: extracted with `git archive`, so the old templates, CRDs and Python are
exactly those of that commit.

0.1.0 has no `webhook.url`: its webhook configurations name the chart's Service, which the
API server would reach at a ClusterIP — outside loopback, so never here. A helm
post-renderer (this file, run as a script) rewrites each webhook's `clientConfig.service`
into `url: <base>/<path>` on loopback before anything reaches the API server; that is the
one change made to the old chart's output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS = "e508e61"  # charts/stella 0.1.0, before webhook.url existed
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def extract(dest: Path) -> Path:
    """charts/, crds/ and operator/ of PREVIOUS under dest (once)."""
    if not (dest / "charts" / "stella" / "Chart.yaml").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", PREVIOUS, "charts/stella", "crds", "operator"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def operator_program(tree: Path) -> list[str]:
    """The previous version's `stella` (its own code; this venv's dependencies, which are
    the same pins as then apart from the console-script names)."""
    return ["env", f"PYTHONPATH={tree / 'operator'}", sys.executable, "-m", "stella.cli"]


def post_renderer(workdir: Path) -> Path:
    """An executable for `helm --post-renderer` that runs this module's main()."""
    path = workdir / "loopback-webhooks"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} "$@"\n')
    path.chmod(0o755)
    return path


def loopback_webhooks(docs: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    """Every webhook that names a Service calls base_url + the Service path instead."""
    for doc in docs:
        if doc.get("kind") not in WEBHOOK_KINDS:
            continue
        for hook in doc["webhooks"]:
            service = hook["clientConfig"].pop("service")
            hook["clientConfig"]["url"] = base_url.rstrip("/") + service.get("path", "/")
    return docs


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].startswith("https://"):
        print("usage: loopback-webhooks https://127.0.0.1:PORT < manifests", file=sys.stderr)
        return 2
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    sys.stdout.write(yaml.safe_dump_all(loopback_webhooks(docs, sys.argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
