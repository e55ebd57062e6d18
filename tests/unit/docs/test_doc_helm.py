"""Every `helm install` of the chart that README.md, docs/ and the chart's README show
renders with today's chart: the docs check (tests/e2e/test_docs_e2e.py) skips helm, since
its test session installs its own Stella, so a required value the chart gained since
(evidence.log) would otherwise leave a reader's first command failing. Illustrative blocks
count too: their placeholders (`sha256:...`, `$(base64 -w0 ca.crt)`) are filled in,
nothing else."""

from __future__ import annotations

import itertools
import subprocess

import pytest
from tests.docs_blocks import DOCS, ROOT, blocks
from tests.unit.chart.test_chart import CA, DIGEST, HELM

CHART = "charts/stella"
CHART_README = ROOT / CHART / "README.md"

#: (file:line, argv) of each `helm install ... charts/stella`
INSTALLS = [
    (f"{path.relative_to(ROOT).as_posix()}:{command.line}", argv)
    for path in [*DOCS, CHART_README]
    for block in blocks(path)
    for command in block.commands
    for argv in command.argvs
    if argv[:2] == ["helm", "install"] and CHART in argv
]


def sets_of(argv: list[str]) -> list[str]:
    """The command's `--set K=V` values, each placeholder filled in as a reader would."""
    out = []
    for flag, value in itertools.pairwise(argv):
        if flag != "--set":
            continue
        key, _, val = value.partition("=")
        if val == "sha256:...":
            val = DIGEST
        elif "$(" in val:  # a command substitution: the file's contents, base64
            val = CA
        out.append(f"{key}={val}")
    return out


def test_the_docs_show_helm_installs() -> None:
    assert len(INSTALLS) >= 5, INSTALLS


@pytest.mark.parametrize(("where", "argv"), INSTALLS, ids=[w for w, _ in INSTALLS])
def test_every_helm_install_in_the_docs_renders(where: str, argv: list[str]) -> None:
    assert HELM.exists(), f"helm not built at {HELM}; run `make binaries`"
    args = [str(HELM), "template", "stella", str(ROOT / CHART), "--namespace", "stella-system"]
    for s in sets_of(argv):
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{where}: `{' '.join(argv)}` fails:\n{out.stderr}"


def test_the_chart_readme_quotes_the_refusal_without_evidence_log() -> None:
    """The chart README shows what `helm install` says without evidence.log; it must be
    the first line helm prints today (the template's line number included)."""
    quoted = next(
        line.removesuffix(" ...")
        for line in CHART_README.read_text().splitlines()
        if line.startswith("Error: execution error at")
    )
    args = [str(HELM), "template", "stella", str(ROOT / CHART), "--set", f"image.digest={DIGEST}"]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith(quoted), (quoted, out.stderr)
