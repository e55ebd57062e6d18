"""The first-ten-minutes guides (docs/guides/) stay true to the CLI: every `stella`
command in their shell blocks parses with today's parser, and every `--context` is a
person of the demo's token file."""

from __future__ import annotations

import itertools
import re
import shlex
import sys
from pathlib import Path

import pytest

from stella.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
ROLES = ("platform-engineer", "requester", "approver", "auditor")


def _commands(path: Path) -> list[list[str]]:
    """Each command of the ```sh blocks, as argv (continuations joined, comments cut,
    pipes and && split)."""
    out: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
        text = block.replace("\\\n", " ")
        pending = ""
        for line in text.splitlines():
            # a comment is `  # words` (bash: '#' starts one only at a word's start)
            pending += re.sub(r"(^|\s)#\s.*$", "", line) + "\n"
            try:
                words = shlex.split(pending)
            except ValueError:  # a quote spans lines: read on
                continue
            pending = ""
            current: list[str] = []
            for word in [*words, "|"]:
                if word in ("|", "&&", ";"):
                    if current:
                        out.append(current)
                    current = []
                else:
                    current.append(word)
    return out


def test_there_is_a_guide_per_role() -> None:
    names = {p.stem for p in GUIDES}
    assert set(ROLES) <= names
    index = (ROOT / "docs" / "guides" / "README.md").read_text()
    for role in ROLES:
        assert f"({role}.md)" in index


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_every_stella_command_parses(guide: Path) -> None:
    parser = build_parser()
    stella = [argv for argv in _commands(guide) if argv[0] == "stella"]
    for argv in stella:
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"{guide.name}: `{shlex.join(argv)}` does not parse") from exc
        assert getattr(args, "func", None) is not None, shlex.join(argv)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_every_context_is_a_person_of_the_demo(guide: Path) -> None:
    sys.path.insert(0, str(ROOT / "hack"))
    try:
        from devenv.controlplane import USERS
    finally:
        sys.path.remove(str(ROOT / "hack"))
    for argv in _commands(guide):
        for flag, value in itertools.pairwise(argv):
            if flag == "--context":
                assert value in USERS, f"{guide.name}: `{shlex.join(argv)}`: no such person"
