"""CSRF protection for every write: a per-session token, plus the Origin check.

Every form and every script-made POST carries the session's CSRF token (a hidden field
`csrf` or the header X-CSRF-Token); it is compared in constant time. A request whose
Origin (or, without one, Referer) names another site is refused even with a token.
SameSite=Strict cookies already keep other sites' requests cookie-less; this is the
second lock. Pure.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit


def csrf_refusal(
    expected: str,
    submitted: str | None,
    origin: str | None,
    referer: str | None,
    host: str,
) -> str | None:
    """None when the write may go on; else why not (for the 403 page)."""
    source = origin or referer
    if source and source != "null":
        parts = urlsplit(source)
        if parts.scheme != "https" or parts.netloc != host:
            return f"the request came from another site ({parts.scheme}://{parts.netloc})"
    elif origin == "null":
        return "the request came from an opaque origin"
    if not submitted:
        return "the form carried no CSRF token: reload the page and try again"
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        return "the form's CSRF token does not match this session: reload the page"
    return None
