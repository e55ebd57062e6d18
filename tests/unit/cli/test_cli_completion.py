"""`stella completion bash|zsh`: generated from the parser, valid shell, completes right."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stella.cli import build_parser, main
from stella.cli.completion import bash_script, walk, zsh_script

BASH = shutil.which("bash")


def test_the_tree_has_every_command_and_its_flags() -> None:
    tree = walk(build_parser())
    assert list(tree["stella"].commands)[:5] == [
        "status",
        "approve",
        "reject",
        "promote",
        "rollback",
    ]
    assert set(tree["stella env"].commands) == {"list", "clear", "suspend", "resume"}
    assert set(tree["stella evidence"].commands) >= {"verify", "export", "show", "keys"}
    promote = {f for o in tree["stella promote"].options for f in o.flags}
    assert {"--reason", "--wait", "--timeout", "-n", "--namespace", "--context"} <= promote
    out = next(o for o in tree["stella env list"].options if "--output" in o.flags)
    assert out.value_kind == "choices" and out.choices == ("table", "json", "yaml")
    ctx = next(o for o in tree["stella status"].options if "--context" in o.flags)
    assert ctx.value_kind == "context"
    kc = next(o for o in tree["stella status"].options if "--kubeconfig" in o.flags)
    assert kc.value_kind == "file"


def test_completion_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert out == bash_script(build_parser())
    assert "complete -o default -F _stella stella" in out
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef stella\n") and "compdef _stella stella" in out


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_the_bash_script_is_valid_bash(tmp_path: Path) -> None:
    script = tmp_path / "stella.bash"
    script.write_text(bash_script(build_parser()))
    subprocess.run([str(BASH), "-n", str(script)], check=True)


def complete_bash(tmp_path: Path, line: str) -> list[str]:
    """What the generated function offers for `line` (the cursor at its end)."""
    script = tmp_path / "stella.bash"
    script.write_text(bash_script(build_parser()))
    words = line.split(" ")
    driver = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_stella\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    res = subprocess.run(
        [str(BASH), "--norc", "-c", driver],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return sorted(w for w in res.stdout.splitlines() if w)


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_flags_and_values(tmp_path: Path) -> None:
    assert complete_bash(tmp_path, "stella e") == ["env", "evidence"]
    assert complete_bash(tmp_path, "stella env ") == ["clear", "list", "resume", "suspend"]
    assert complete_bash(tmp_path, "stella --context alice env l") == ["list"]
    assert complete_bash(tmp_path, "stella env list -o ") == ["json", "table", "yaml"]
    assert complete_bash(tmp_path, "stella env list --output y") == ["yaml"]
    assert "--wait" in complete_bash(tmp_path, "stella promote shop/x prod --w")
    assert complete_bash(tmp_path, "stella completion ") == []  # a positional: no flags offered
    assert complete_bash(tmp_path, "stella completion -") == ["--help", "-h"]
    # a flag's value is not taken for a command
    after_value = complete_bash(tmp_path, "stella --context env ")
    assert "status" in after_value and "clear" not in after_value


def test_the_zsh_script_covers_the_same_tree() -> None:
    script = zsh_script(build_parser())
    tree = walk(build_parser())
    for path in tree:
        assert f"'{path}')" in script
    assert "'stella env list|-o') compadd -- 'table' 'json' 'yaml'; return ;;" in script
    assert "'list:every environment in path order: current release and state'" in script
    zsh = shutil.which("zsh")
    if zsh is not None:
        subprocess.run([zsh, "-n", "-c", script], check=True)
