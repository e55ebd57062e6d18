"""CSRF on every write, and the headers every response carries."""

from __future__ import annotations

from stella.web.csrf import csrf_refusal
from stella.web.headers import CSP, SECURITY_HEADERS, cookie_attributes

HOST = "console.example:8443"
ORIGIN = f"https://{HOST}"


def test_a_matching_token_from_this_origin_passes() -> None:
    assert csrf_refusal("tok", "tok", ORIGIN, None, HOST) is None
    assert csrf_refusal("tok", "tok", None, f"{ORIGIN}/inbox", HOST) is None
    assert csrf_refusal("tok", "tok", None, None, HOST) is None


def test_a_missing_or_wrong_token_is_refused_with_what_to_do() -> None:
    assert "no CSRF token" in (csrf_refusal("tok", None, ORIGIN, None, HOST) or "")
    assert "reload" in (csrf_refusal("tok", "", ORIGIN, None, HOST) or "")
    assert "does not match" in (csrf_refusal("tok", "tOk", ORIGIN, None, HOST) or "")


def test_another_origin_is_refused_even_with_the_token() -> None:
    assert "another site" in (csrf_refusal("tok", "tok", "https://evil.example", None, HOST) or "")
    assert csrf_refusal("tok", "tok", f"http://{HOST}", None, HOST) is not None
    assert csrf_refusal("tok", "tok", None, "https://evil.example/x", HOST) is not None
    assert "opaque" in (csrf_refusal("tok", "tok", "null", None, HOST) or "")


def test_the_policy_allows_no_inline_script_no_framing_and_no_foreign_form_target() -> None:
    directives = dict(d.split(" ", 1) for d in CSP.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in CSP
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert SECURITY_HEADERS["Content-Security-Policy"] == CSP
    assert SECURITY_HEADERS["Cache-Control"] == "no-store"


def test_session_cookies_are_secure_httponly_and_strict() -> None:
    attrs = cookie_attributes(60)
    assert attrs["secure"] is True and attrs["httponly"] is True
    assert attrs["samesite"] == "Strict" and attrs["path"] == "/"
