"""Tables, -o json|yaml, names, and every failure as one line with its exit code."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import pytest
import urllib3
import yaml
from cli_fakes import api_exception
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

import stella.cli as cli
from stella.cli.output import (
    EXIT_PIPE,
    CliError,
    age,
    check_name,
    dump,
    emit,
    k8s_list,
    refused,
    shorten,
    table,
    translate,
)

# --- rendering -----------------------------------------------------------------------------


def test_table_aligns_columns_and_strips_trailing_space() -> None:
    text = table([["dev", "Deployed", ""], ["production", "Pending", "x"]], ["ENV", "PHASE", "M"])
    assert text.splitlines() == [
        "ENV         PHASE     M",
        "dev         Deployed",
        "production  Pending   x",
    ]


def test_json_and_yaml_round_trip_in_the_given_key_order() -> None:
    data = k8s_list([{"metadata": {"name": "prod"}, "spec": {"requires": ["staging"]}}])
    assert json.loads(dump(data, "json")) == data
    assert yaml.safe_load(dump(data, "yaml")) == data
    assert dump(data, "yaml").startswith("apiVersion: v1\nkind: List\nitems:")
    stamped = {"at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC)}
    assert json.loads(dump(stamped, "json")) == {"at": "2026-03-01T12:00:00Z"}
    assert yaml.safe_load(dump(stamped, "yaml")) == {"at": "2026-03-01T12:00:00Z"}


def test_emit_builds_the_table_only_for_table(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> str:
        raise AssertionError("the table is not built for -o json")

    emit("json", {"a": 1}, boom)
    assert json.loads(capsys.readouterr().out) == {"a": 1}
    emit("table", {"a": 1}, lambda: "A\n1")
    assert capsys.readouterr().out == "A\n1\n"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (86400 * 2 - 1, "47h"),
        (86400 * 3, "3d"),
    ],
)
def test_age_reads_like_kubectl(seconds: int, text: str) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    then = datetime.fromtimestamp(now.timestamp() - seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert age(then, now) == text
    assert age(None, now) == "-" and age("garbage", now) == "-"


# --- names ---------------------------------------------------------------------------------


def test_a_bad_name_is_a_short_usage_error_not_a_regex() -> None:
    assert check_name("shop-1.4.2", "Release") == "shop-1.4.2"
    for bad in ("Shop_1", "prod/", "-x", "a" * 64):
        with pytest.raises(CliError) as err:
            check_name(bad, "Release")
        assert err.value.code == 2
        assert len(err.value.message) < 160 and "^[a-z0-9]" not in err.value.message
    with pytest.raises(CliError, match="not a valid namespace name"):
        check_name("a.b", "namespace", label=True)


def test_server_messages_lose_regexes_links_and_prefixes() -> None:
    regex = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    message = (
        'Approval.stella.io "x" is invalid: spec.release: Invalid value: "Prod_1": '
        f"spec.release in body should match '{regex}'"
    )
    short = shorten(message)
    assert regex not in short and "is not a valid name" in short and "Prod_1" in short
    assert (
        shorten(
            "Value error, bad version\n  For further information visit https://errors.pydantic.dev/2.9/v/value_error"
        )
        == "bad version"
    )


# --- errors --------------------------------------------------------------------------------


def connection_refused(host: str = "127.0.0.1", port: int = 6443) -> MaxRetryError:
    pool = urllib3.HTTPSConnectionPool(host, port)
    conn = urllib3.connection.HTTPSConnection(host, port)
    reason = NewConnectionError(
        conn, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    return MaxRetryError(pool, "/apis/stella.io/v1alpha1/environments", reason)


def test_an_unreachable_api_server_is_one_line_and_exit_3() -> None:
    message, code = translate(connection_refused()) or ("", 0)
    assert code == 3
    assert message == (
        "cannot reach the Kubernetes API server at https://127.0.0.1:6443: connection refused; "
        "check --context/KUBECONFIG"
    )
    assert "MaxRetryError" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (
            NameResolutionError(  # urllib3 types conn and reason for its own raise sites
                "k8s.example",
                None,  # type: ignore[arg-type]
                OSError("[Errno -2] Name or service not known"),  # type: ignore[arg-type]
            ),
            "host name not found",
        ),
        (
            SSLError(
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                "self-signed certificate (_ssl.c:1006)"
            ),
            "TLS self-signed certificate",
        ),
        (ReadTimeoutError(None, "/x", "Read timed out."), "timed out"),  # type: ignore[arg-type]
        (ProtocolError("Connection aborted.", ConnectionResetError()), "the connection was closed"),
    ],
)
def test_each_connection_failure_says_what_happened(reason: Exception, said: str) -> None:
    pool = urllib3.HTTPSConnectionPool("k8s.example", 443)
    message, code = translate(MaxRetryError(pool, "/api", reason)) or ("", 0)
    assert code == 3 and said in message and "at https://k8s.example:443" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("status", "server_said", "code"),
    [
        (403, 'actions.stella.io is forbidden: User "alice" cannot create resource "actions"', 1),
        (403, 'admission webhook "approvals.stella.io" denied the request: bob requested it', 1),
        (422, "ValidatingAdmissionPolicy 'x' with binding 'y' denied request: pinned only", 1),
        (422, 'Action.stella.io "promote-x" is invalid: spec.environment: Required value', 2),
        (404, 'releases.stella.io "x" not found', 1),
        (409, 'releases.stella.io "x" already exists', 1),
        (500, "etcdserver: request timed out", 3),
        (429, "too many requests", 3),
    ],
)
def test_api_server_answers_keep_its_message_and_map_to_a_code(
    status: int, server_said: str, code: int
) -> None:
    message, got = translate(api_exception(status, server_said)) or ("", 0)
    assert got == code
    assert server_said.split(":", maxsplit=1)[0] in message and "\n" not in message


def test_401_says_to_log_in_again() -> None:
    message, code = translate(api_exception(401, "Unauthorized")) or ("", 0)
    assert code == 1 and "credentials" in message


def test_refused_names_the_action_but_keeps_cannot_reach_as_is() -> None:
    err = refused("promote", api_exception(403, 'admission webhook "a" denied the request: no'))
    assert err.code == 1 and err.message.startswith("promote refused: admission webhook")
    err = refused("promote", connection_refused())
    assert err.code == 3 and err.message.startswith("cannot reach")


def test_a_kubeconfig_problem_is_exit_3_with_what_to_do() -> None:
    message, code = translate(
        ConfigException("Invalid kube-config file. No configuration found.")
    ) or ("", 0)
    assert code == 3 and "KUBECONFIG" in message


def test_unknown_exceptions_are_not_swallowed() -> None:
    assert translate(RuntimeError("a bug")) is None


# --- main: the one place that prints failures ------------------------------------------------


def run_main(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> int:
    """`stella env list` whose command raises ``exc`` (the parser is built inside main,
    so it picks up the patched function)."""

    def command(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr("stella.cli.envs.cmd_list", command)
    return cli.main(["env", "list"])


def test_main_prints_one_line_and_exits_3_when_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, connection_refused()) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot reach the Kubernetes API server")
    assert "Traceback" not in err and "MaxRetryError" not in err


def test_main_reports_a_cli_error_with_its_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, CliError("no such thing\nreally", 2)) == 2
    assert capsys.readouterr().err == "error: no such thing; really\n"


def test_main_is_quiet_when_the_reader_goes_away(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, BrokenPipeError()) == EXIT_PIPE
    assert capsys.readouterr().err == ""


def test_main_lets_a_bug_through(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError):
        run_main(monkeypatch, RuntimeError("a bug"))


def test_ctrl_c_is_130(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_main(monkeypatch, KeyboardInterrupt()) == 130


def test_the_clients_status_subclasses_are_translated_too() -> None:
    """kubernetes 37 raises ForbiddenException & co. (subclasses of ApiException): found by
    the issue 9 e2e, where a 403 on `stella rollback` printed a traceback."""
    from kubernetes.client.exceptions import ForbiddenException

    exc = ForbiddenException(status=403, reason="Forbidden")
    exc.body = '{"message": "releases.stella.io is forbidden: User \\"bob\\" cannot create"}'
    err = refused("rollback", exc)
    assert err.code == 1 and err.message.startswith("rollback refused: releases.stella.io")
