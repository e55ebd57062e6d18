"""Every command block of README.md and docs/ stays true to the code: each `stella` command
parses with today's CLI (illustrative blocks included), every program a runnable block
uses is one the docs check knows how to run (or deliberately skips), and the markers name
real files. tests/e2e/test_docs_e2e.py runs the blocks for real."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from tests.docs_blocks import DOCS, ROOT, Block, all_blocks, blocks, quote

from stella.cli import build_parser

#: what tests/e2e/test_docs_e2e.py runs in a block that is not illustrative
RUN = {"stella", "kubectl", "jq", "printf", "cat", "openssl", "base64"}
#: setup the docs check does not run: the test session set up its own
SETUP = {"make", "hack/cluster", "helm", "bao", "source"}
BLOCKS = all_blocks()


def test_the_docs_have_blocks_and_the_parser_finds_them() -> None:
    assert len(BLOCKS) >= 25
    example = Block(
        ROOT / "README.md", 1, "console",
        "$ stella env list \\\n    -o json   # as json\n[]\n$ kubectl get env\n",
        illustrative=False, after=None,
    )  # fmt: skip
    assert [c.argvs for c in example.commands] == [
        [["stella", "env", "list", "-o", "json"]],
        [["kubectl", "get", "env"]],
    ]
    assert [c.line for c in example.commands] == [2, 5]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_every_stella_command_parses_with_todays_cli(block: Block) -> None:
    for command in block.commands:
        for argv in command.argvs:
            if argv[0] != "stella":
                continue
            try:
                args = build_parser().parse_args(argv[1:])
            except SystemExit as exc:  # argparse's way of refusing
                raise AssertionError(
                    f"{block.where}: `{quote(argv)}` does not parse with today's CLI"
                ) from exc
            assert getattr(args, "func", None) is not None, f"{block.where}: {quote(argv)}"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_a_block_is_run_for_real_or_marked_illustrative(block: Block) -> None:
    if block.illustrative:
        return
    for command in block.commands:
        if command.is_assignment:
            continue
        unknown = set(command.programs) - RUN - SETUP
        assert not unknown, (
            f"{block.where}: `{command.text}` uses {sorted(unknown)}, which the docs check "
            "neither runs nor skips: run it in tests/e2e/test_docs_e2e.py, or mark the block "
            "<!-- illustrative -->"
        )


def test_every_after_marker_names_a_doc() -> None:
    names = {p.name for p in DOCS}
    for block in BLOCKS:
        if block.after is not None:
            assert block.after in names, f"{block.where}: no doc {block.after}"


def test_markers_are_read_only_right_before_a_fence(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- illustrative -->\n\n```sh\nstella env list\n```\n"
        "text\n```sh\nstella status\n```\n"
        "<!-- docs-check: after approver.md -->\n```console\n$ stella env list\n```\n"
    )
    found = blocks(doc)
    assert [(b.illustrative, b.after, b.kind) for b in found] == [
        (True, None, "sh"),
        (False, None, "sh"),
        (False, "approver.md", "console"),
    ]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_every_context_is_a_person_of_the_demo(block: Block) -> None:
    import itertools
    import sys

    sys.path.insert(0, str(ROOT / "hack"))
    try:
        from devenv.controlplane import USERS
    finally:
        sys.path.remove(str(ROOT / "hack"))
    for command in block.commands:
        for flag, value in itertools.pairwise(shlex.split(command.text)):
            if flag == "--context" or flag.startswith("--context="):
                person = value if flag == "--context" else flag.split("=", 1)[1]
                assert person in USERS, f"{block.where}: `{command.text}`: no such person"
