"""The shell blocks of README.md and docs/ (```sh and ```console), as the docs check reads
them: tests/unit/docs/test_doc_commands.py parses every `stella` command with today's CLI,
tests/e2e/test_docs_e2e.py runs every block that is not marked illustrative against the
control plane with the operator running.

Markers, on the line right before a block's opening fence (invisible when rendered):

- ``<!-- illustrative -->``: the block shows a shape (placeholders, another cluster, a
  service the tests do not run); its `stella` commands must still parse;
- ``<!-- docs-check: after FILE.md -->``: run the block after the blocks of that guide
  (a guide that builds on a later one, e.g. a rollback once the approver approved).

In a `console` block only lines starting with ``$ `` are commands; the rest is output.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ILLUSTRATIVE = "<!-- illustrative -->"
AFTER = re.compile(r"^<!-- docs-check: after (\S+\.md) -->$")
FENCE = re.compile(r"^```(sh|console)\s*$")
SEPARATORS = ("|", "&&", "||", ";")
REDIRECTS = (">", ">>", "<", "2>", "2>&1")
ASSIGNMENT = re.compile(r"^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Command:
    """One logical command line of a block: continuations joined, comments cut."""

    text: str
    line: int  # in the Markdown file

    @property
    def argvs(self) -> list[list[str]]:
        """Each simple command of it (split at pipes, && and ;), redirections dropped."""
        out: list[list[str]] = []
        current: list[str] = []
        skip = False
        for word in [*shlex.split(self.text), "|"]:
            if skip:
                skip = False
                continue
            if word in SEPARATORS:
                if current:
                    out.append(current)
                current = []
            elif word in REDIRECTS:
                skip = word != "2>&1"
            else:
                current.append(word)
        return out

    @property
    def programs(self) -> list[str]:
        return [argv[0] for argv in self.argvs]

    @property
    def is_assignment(self) -> bool:
        return bool(ASSIGNMENT.match(self.text))


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    kind: str  # sh | console
    body: str
    illustrative: bool
    after: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def commands(self) -> list[Command]:
        out: list[Command] = []
        pending, start = "", 0
        for n, raw in enumerate(self.body.splitlines(), start=self.line + 1):
            line = raw
            if self.kind == "console" and not pending:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not pending:
                start = n
            # a comment is `  # words` (bash: '#' starts one only at a word's start)
            line = re.sub(r"(^|\s)#(\s.*)?$", "", line)
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            pending += line
            try:
                shlex.split(pending)
            except ValueError:  # a quote spans lines: read on
                pending += "\n"
                continue
            if pending.strip():
                out.append(Command(pending.strip(), start))
            pending = ""
        return out

    @property
    def runs_stella_or_kubectl(self) -> bool:
        return any(p in ("stella", "kubectl") for c in self.commands for p in c.programs)


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        before = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        after = AFTER.match(before)
        out.append(
            Block(
                path=path,
                line=i + 1,
                kind=m.group(1),
                body="\n".join(lines[i + 1 : j]),
                illustrative=before == ILLUSTRATIVE,
                after=after.group(1) if after else None,
            )
        )
        i = j + 1
    return out


def all_blocks() -> list[Block]:
    return [b for path in DOCS for b in blocks(path)]


def quote(argv: list[str]) -> str:
    return shlex.join(argv)
