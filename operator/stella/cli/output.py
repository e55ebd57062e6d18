"""What every command shares: tables, ``-o json|yaml``, one-line failures, exit codes.

A failure is one line on standard error that says what happened and what to do; the exit
code says what kind of failure it was, the same in every command:

0   done, or everything holds
1   the thing asked for is not so, or was refused (RBAC, admission, a gate, a finding)
2   bad usage: a flag, a name or an argument is wrong
3   cannot reach the Kubernetes API server or another service (registry, Vault, a log)

Commands raise :class:`CliError` (or let the Kubernetes client's exceptions through);
:func:`translate` turns any of them into the line and the code, and ``main`` prints it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
# Like any Unix tool whose reader went away (`stella env list | head -1`): 128 + SIGPIPE.
EXIT_PIPE = 141

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  done, or everything holds
  {EXIT_REFUSED}  the thing asked for is not so, or was refused (RBAC, admission, a gate)
  {EXIT_USAGE}  bad usage: a flag, a name or an argument is wrong
  {EXIT_UNAVAILABLE}  cannot reach the Kubernetes API server or another service
     (registry, Vault, the evidence log)
"""

FORMATS = ("table", "json", "yaml")


class CliError(Exception):
    """A failure to report as one line (``error: <message>``) with an exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Unreachable(CliError):
    """The API server (or another service) did not answer at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNAVAILABLE)


def fail(message: str, code: int = EXIT_REFUSED, *, err: TextIO | None = None) -> int:
    """Print ``error: <message>`` on standard error (one line) and return ``code``."""
    print(f"error: {one_line(message)}", file=err if err is not None else sys.stderr)
    return code


def one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", "; ", text.strip())


# --- tables and structured output ----------------------------------------------------------


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [list(header), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def add_output_flag(parser: argparse.ArgumentParser, *, default: str = "table") -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=default,
        help="output format: a table for people, json or yaml for scripts (default: %(default)s)",
    )


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON (indented) or YAML (block style, keys in their given order)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=_json_default)
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True)).rstrip("\n")
    raise ValueError(f"not a structured format: {fmt}")


def k8s_list(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The shape `kubectl get -o json` prints for several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def emit(
    fmt: str,
    data: Any,
    table_text: Callable[[], str],
    *,
    out: TextIO | None = None,
) -> None:
    """Print ``data`` as json/yaml, or the table ``table_text()`` builds."""
    text = table_text() if fmt == "table" else dump(data, fmt)
    print(text, file=out if out is not None else sys.stdout)


def emit_list(
    fmt: str,
    items: Sequence[Mapping[str, Any]],
    empty: str,
    row: Callable[[Any], Sequence[object]],
    header: Sequence[str],
) -> None:
    """A list command's output: `empty` (what to do) when there is nothing to show as a
    table, else the items as json/yaml (a kubectl List) or one table row each."""
    if not items and fmt == "table":
        print(empty)
        return
    emit(fmt, k8s_list(items), lambda: table([row(i) for i in items], header))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return rfc3339(value)
    return value


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """`kubectl`-style age of an RFC 3339 timestamp: 45s, 12m, 3h, 5d."""
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- names ------------------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_name(value: str, what: str, *, label: bool = False) -> str:
    """``value`` if it is a valid Kubernetes name; else a short usage error (exit 2)."""
    pattern = _DNS_LABEL if label else _DNS_SUBDOMAIN
    if len(value) <= 63 and pattern.fullmatch(value):
        return value
    allowed = "digits and '-'" if label else "digits, '-' and '.'"
    why = (
        "longer than 63 characters"
        if len(value) > 63
        else f"use lowercase letters, {allowed}, starting and ending with a letter or digit"
    )
    raise CliError(f"{value!r} is not a valid {what} name: {why}", EXIT_USAGE)


# --- translating exceptions into one line and an exit code ---------------------------------


def translate(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for ``exc``; None when it is not one we know
    (a bug: let its traceback through)."""
    if isinstance(exc, CliError):
        return exc.message, exc.code
    unreachable = _unreachable(exc)
    if unreachable is not None:
        return unreachable, EXIT_UNAVAILABLE
    kind = type(exc).__name__
    module = type(exc).__module__
    # kubernetes 37 raises subclasses (ForbiddenException, NotFoundException, ...).
    if any(
        c.__name__ == "ApiException" and c.__module__.startswith("kubernetes")
        for c in type(exc).__mro__
    ):
        return api_error(exc)
    if kind == "ConfigException" and module.startswith("kubernetes"):
        return (
            f"cannot load a kubeconfig ({one_line(str(exc))}); "
            "set KUBECONFIG or pass --kubeconfig/--context",
            EXIT_UNAVAILABLE,
        )
    return None


def api_error(exc: Any) -> tuple[str, int]:
    """What the API server said, as one line, and the exit code its status means."""
    status = int(getattr(exc, "status", 0) or 0)
    message = server_message(exc)
    if status == 401:
        return (
            "the API server did not accept your credentials (401 Unauthorized); "
            "log in again or check the user of your kubeconfig context",
            EXIT_REFUSED,
        )
    if status in (400, 422):
        # Admission policies and webhooks refuse; the schema says the input is wrong.
        return message, EXIT_REFUSED if "denied" in message else EXIT_USAGE
    if status == 429 or status >= 500 or status == 0:
        return (
            f"the Kubernetes API server could not answer ({status or 'no status'}"
            f"{' ' + str(exc.reason) if getattr(exc, 'reason', None) else ''}): {message}; "
            "try again shortly",
            EXIT_UNAVAILABLE,
        )
    return message, EXIT_REFUSED


def refused(what: str, exc: Any) -> CliError:
    """``<what> refused: <the server's message>`` with the code its status means; a
    connection failure keeps its own "cannot reach" message; anything else is re-raised."""
    known = translate(exc)
    if known is None:  # a bug, not an answer: keep its traceback
        raise exc
    message, code = known
    if code == EXIT_UNAVAILABLE:
        return CliError(message, code)
    return CliError(f"{what} refused: {message}", code)


def server_message(exc: Any) -> str:
    """The `message` of the API server's Status body, shortened for people."""
    body = getattr(exc, "body", None)
    message = ""
    if body:
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                message = str(doc.get("message") or "")
        except (ValueError, TypeError):
            message = body if isinstance(body, str) and len(body) < 300 else ""
    if not message:
        message = str(getattr(exc, "reason", None) or type(exc).__name__)
    return shorten(message)


_REGEX_CLAUSE = re.compile(r"(?:[\w.\[\]]+ in body )?should match '\^?[^']*'")
_PYDANTIC_LINK = re.compile(r"\s*For further information visit https://errors\.pydantic\.dev\S*")


def shorten(message: str) -> str:
    """Drop what only a developer can read: regular expressions, pydantic links,
    "Value error, " prefixes, newlines."""
    message = _REGEX_CLAUSE.sub(
        "is not a valid name (lowercase letters, digits, '-' and '.', starting and ending "
        "with a letter or digit)",
        message,
    )
    message = _PYDANTIC_LINK.sub("", message)
    message = message.replace("Value error, ", "")
    return one_line(message)


def _unreachable(exc: BaseException) -> str | None:
    """A one-line "cannot reach" message for connection-level failures, else None."""
    try:
        import urllib3.exceptions as u3
    except ImportError:  # pragma: no cover - urllib3 comes with the kubernetes client
        return None
    if isinstance(exc, u3.MaxRetryError):
        server = _server_of(exc)
        return cannot_reach(server, connection_reason(exc.reason or exc))
    if isinstance(exc, u3.HTTPError):
        server = _server_of(exc)
        return cannot_reach(server, connection_reason(exc))
    return None


def cannot_reach(server: str | None, reason: str) -> str:
    where = f" at {server}" if server else ""
    return f"cannot reach the Kubernetes API server{where}: {reason}; check --context/KUBECONFIG"


def connection_reason(exc: BaseException) -> str:
    """`connection refused`, `timed out`, `host name not found`, `TLS: certificate ...`."""
    import urllib3.exceptions as u3

    text = str(exc)
    if isinstance(exc, u3.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        m = re.search(r"certificate verify failed: ([^()\"']+)", text)
        detail = m.group(1).strip() if m else "handshake failed"
        return f"TLS {detail} (is the kubeconfig's certificate-authority right?)"
    if isinstance(exc, u3.NameResolutionError) or "Name or service not known" in text:
        return "host name not found"
    m = re.search(r"\[Errno -?\d+\] ([^)'\"]+)", text)
    if m:
        return m.group(1).strip().lower()
    if isinstance(exc, u3.ReadTimeoutError | u3.ConnectTimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, u3.ProtocolError):
        return "the connection was closed while talking to it"
    return type(exc).__name__


def _server_of(exc: BaseException) -> str | None:
    pool = getattr(exc, "pool", None)
    if pool is None:
        conn = getattr(exc, "conn", None)
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        scheme = "https" if "HTTPS" in type(conn).__name__ else "http"
    else:
        host, port, scheme = pool.host, pool.port, pool.scheme
    if not host:
        return None
    return f"{scheme}://{host}" + (f":{port}" if port else "")
