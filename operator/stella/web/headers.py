"""The security headers of every console response, and the session cookies' attributes.

A strict Content-Security-Policy: nothing but this origin's own script and style files
(no inline script, no eval, no framing, forms post only here). Cookies are __Host-
prefixed (Secure, Path=/, no Domain), HttpOnly and SameSite=Strict. Pure.
"""

from __future__ import annotations

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

ACCESS_COOKIE = "__Host-stella-access"
REFRESH_COOKIE = "__Host-stella-refresh"


def cookie_attributes(max_age: int) -> dict[str, object]:
    """Keyword arguments of aiohttp's set_cookie for a session cookie."""
    return {
        "max_age": max_age,
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "Strict",
    }
