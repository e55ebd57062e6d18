"""The command tree: every command parses, global flags go anywhere, help is for users."""

from __future__ import annotations

import argparse
import io
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import stella
from stella.cli import build_parser, main
from stella.cli.completion import walk

PACKAGE = Path(stella.__file__).resolve().parent


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "shop/shop-1-4-2", "-o", "json"],
        ["status", "-A", "-o", "yaml"],
        ["approve", "shop/shop-1-4-2", "prod", "--comment", "CAB-1"],
        ["reject", "shop-1-4-2", "prod", "-n", "shop", "--comment", "no"],
        ["promote", "shop/shop-1-4-2", "prod", "--reason", "CAB-2", "--wait", "--timeout", "5"],
        ["rollback", "prod", "--to", "shop/shop-1-4-1", "--dry-run"],
        ["env", "list", "-o", "json"],
        ["env", "clear", "prod", "--reason", "INC-1"],
        ["env", "suspend", "prod", "--reason", "migration", "--wait"],
        ["env", "resume", "prod"],
        ["action", "list", "-e", "prod", "-o", "yaml"],
        ["release", "create", "x", "--from-tags", "--component", "web=r/web:1"],
        ["evidence", "verify", "--log", "x.jsonl", "-o", "json"],
        ["evidence", "show", "prod#1", "--bundle", "b.json", "-o", "yaml"],
        ["evidence", "keys", "--bundle", "b.json", "-o", "json"],
        ["evidence", "export", "--out", "b.json"],
        ["completion", "bash"],
        ["operator", "run", "--http-port", "9000"],
        ["admission", "run", "--http-port", "9001", "--verbose"],
    ],
)
def test_every_command_parses_to_a_function(argv: list[str]) -> None:
    assert callable(parse(*argv).func)


def test_global_flags_go_before_or_after_the_command() -> None:
    before = parse("--context", "alice", "--kubeconfig", "k.yaml", "env", "list")
    after = parse("env", "list", "--context", "alice", "--kubeconfig", "k.yaml")
    for args in (before, after):
        assert (args.context, args.kubeconfig) == ("alice", "k.yaml")
    # given before, a subcommand's own (suppressed) default does not overwrite it
    assert parse("--context", "bob", "status").context == "bob"
    assert not hasattr(parse("status"), "context")


def test_every_command_that_reads_the_cluster_takes_context_and_kubeconfig() -> None:
    tree = walk(build_parser())
    for path in (
        "stella status",
        "stella approve",
        "stella reject",
        "stella promote",
        "stella rollback",
        "stella env list",
        "stella env clear",
        "stella env suspend",
        "stella env resume",
        "stella action list",
        "stella evidence verify",
        "stella evidence show",
        "stella evidence keys",
        "stella evidence export",
    ):
        flags = {f for o in tree[path].options for f in o.flags}
        assert {"--context", "--kubeconfig"} <= flags, path


def test_every_read_command_has_output_json_and_yaml() -> None:
    tree = walk(build_parser())
    for path in (
        "stella status",
        "stella env list",
        "stella action list",
        "stella evidence verify",
        "stella evidence show",
        "stella evidence keys",
    ):
        out = next(o for o in tree[path].options if "-o" in o.flags)
        assert out.choices == ("table", "json", "yaml"), path


def test_the_old_json_flag_still_means_output_json() -> None:
    assert parse("evidence", "verify", "--json").output == "json"
    assert "--json" not in {
        f for o in walk(build_parser())["stella evidence verify"].options for f in o.flags
    }


def help_of(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return out.getvalue()


def test_top_level_help_documents_the_exit_codes() -> None:
    text = help_of()
    assert "exit codes:" in text
    for line in ("0  done", "1  the thing asked for is not so", "2  bad usage", "3  cannot reach"):
        assert line in text


@pytest.mark.parametrize(
    "argv",
    [
        ["evidence"],
        ["evidence", "verify"],
        ["promote"],
        ["env", "clear"],
        ["env", "suspend"],
        ["env", "list"],
        ["action", "list"],
        ["approve"],
        ["status"],
        ["rollback"],
        ["release", "create"],
        ["completion"],
    ],
)
def test_help_is_for_users_with_examples(argv: list[str]) -> None:
    text = help_of(*argv)
    assert "examples:" in text
    for internal in ("Wire it", "cli.py", "register(", "subparsers", "args.func"):
        assert internal not in text, internal


def examples_of(text: str) -> list[str]:
    """The command lines of a help's examples section: continuation lines joined, each
    line's trailing note (after three spaces or more) left off."""
    lines = text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        out.append(re.split(r"\s{3,}", line, maxsplit=1)[0])
    return out


def commands_in(example: str) -> list[list[str]]:
    """The `stella` commands of one example line (between pipes and &&, without a
    redirect, a comment or leading VAR=value settings)."""
    out: list[list[str]] = []
    words = shlex.split(example.split(" # ", 1)[0])
    segment: list[str] = []
    for word in [*words, "|"]:
        if word not in ("|", "&&", ";"):
            segment.append(word)
            continue
        while segment and re.fullmatch(r"[A-Z_]+=\S*", segment[0]):
            segment.pop(0)  # PGPASSWORD=... stella ...
        if segment[:1] == ["stella"]:  # not kubectl, jq, source <(...)
            out.append(segment[: segment.index(">")] if ">" in segment else segment)
        segment = []
    return out


def test_every_command_and_group_has_examples_that_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stella env --help`, `stella action --help`, ...: a group listed its subcommands and
    nothing to type. Every command's help ends in examples, and each `stella ...` example
    is a command line this parser accepts (up to a pipe or a redirect)."""
    monkeypatch.setenv("COLUMNS", "100")
    missing, wrong = [], {}
    for path in walk(build_parser()):
        text = help_of(*path.split()[1:])
        if "\nexamples:\n" not in text:
            missing.append(path)
            continue
        for example in examples_of(text):
            for words in commands_in(example):
                try:
                    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                        build_parser().parse_args(words[1:])
                except SystemExit:
                    wrong[path] = example
    assert not missing, f"no examples: {missing}"
    assert not wrong, f"examples that do not parse: {wrong}"


def test_examples_of_joins_continued_lines_and_drops_notes() -> None:
    text = (
        "usage: x\n\nexamples:\n  stella a --b c    a note\n  stella d \\\n      e | f\n\n"
        "more text\n"
    )
    assert examples_of(text) == ["stella a --b c", "stella d e | f"]
    both = "X=1 stella a  b > o && jq . | stella c # d"
    assert commands_in(both) == [["stella", "a", "b"], ["stella", "c"]]


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: stella" in capsys.readouterr().err


def test_a_missing_subcommand_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["env"])
    assert exit_.value.code == 2


def test_domain_packages_hold_no_cli_modules() -> None:
    """The CLI is one package; nothing else is loaded by string or hides a command tree."""
    strays = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if (p.stem == "cli" or p.stem.startswith("cli_")) and p.parent.name != "cli"
    ]
    assert strays == []
    assert not (PACKAGE / "cli.py").exists()
    source = "\n".join(p.read_text() for p in (PACKAGE / "cli").glob("*.py"))
    assert "importlib" not in source


def test_admission_without_a_certificate_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stella admission run` serves webhooks or nothing: without a serving certificate it
    stops at once, before any watch, and names the settings to give it."""
    monkeypatch.delenv("STELLA_WEBHOOK_CERT", raising=False)
    monkeypatch.delenv("STELLA_WEBHOOK_KEY", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # never read
    assert main(["admission", "run"]) == 2
    err = capsys.readouterr().err
    assert "STELLA_WEBHOOK_CERT" in err and "STELLA_WEBHOOK_KEY" in err, err


def test_no_help_line_is_wider_than_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten commands' descriptions were one line each (up to 363 characters) that a terminal
    broke mid-word; every line of every command's help fits 100 columns."""
    monkeypatch.setenv("COLUMNS", "100")
    wide = {}
    for path in walk(build_parser()):
        argv = path.split()[1:]
        lines = [line for line in help_of(*argv).splitlines() if len(line) > 100]
        if lines:
            wide[path] = lines[0]
    assert not wide, wide
