"""Typed Vault references: ``vault:<mount>/<path>#<key>``.

A reference names a secret; it is never the secret. Where a spec needs a credential it
holds a reference, the CRD schema checks its shape (``stella.models.common.VAULT_REF``),
admission calls :func:`parse_vault_ref` for an actionable message, and the operator
resolves it with :class:`stella.secrets.vault.VaultClient` at the moment of use.

Error messages never echo the offending value: a field that should hold a reference may
hold the very secret that must not appear in a condition, an Event or a log line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from stella.models.common import VAULT_REF
from stella.secrets.errors import BadReference

PREFIX = "vault:"
_REF_RE = re.compile(VAULT_REF)
_MOUNT_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_LENGTH = 512


@dataclass(frozen=True, slots=True)
class VaultRef:
    """A parsed reference. ``path`` is the KV path *inside* the mount, without ``data/``."""

    mount: str
    path: str
    key: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.mount}/{self.path}#{self.key}"

    @property
    def kv_path(self) -> str:
        """``<mount>/<path>``, as ``bao kv get`` takes it."""
        return f"{self.mount}/{self.path}"


def _example(field: str, suggest_path: str | None, key: str) -> str:
    path = suggest_path or "secret/stella/<name>"
    return f"store it in Vault (bao kv put {path} {key}=...) and write vault:{path}#{key}"


def _guess_key(field: str) -> str:
    lowered = field.lower()
    for word in ("token", "password", "key"):
        if word in lowered:
            return word
    return "token" if "credential" in lowered else "value"


def parse_vault_ref(
    value: object,
    field: str = "value",
    *,
    suggest_path: str | None = None,
) -> VaultRef:
    """Parse ``vault:<mount>/<path>#<key>`` or raise :class:`BadReference` saying how to fix it.

    ``field`` is the user-facing field name (``registryCredentials``) and ``suggest_path``
    a KV path to propose in the message (``secret/registry/prod``). A KV v2 API path
    (``secret/data/registry/prod``) is accepted and normalized: ``data/`` is dropped.
    """
    key = _guess_key(field)
    how = _example(field, suggest_path, key)
    if not isinstance(value, str) or not value:
        raise BadReference(f"{field} is empty; {how}")
    if len(value) > MAX_LENGTH:
        raise BadReference(f"{field} is longer than {MAX_LENGTH} characters; {how}")
    if not value.startswith(PREFIX):
        if value.lower().startswith(PREFIX):
            raise BadReference(f"{field} must start with lowercase 'vault:'; {how}")
        raise BadReference(f"{field} holds a literal value; {how}")
    body = value[len(PREFIX) :]
    if "#" not in body:
        raise BadReference(
            f"{field} names no key: a reference ends in #<key>, the key inside the Vault "
            f"secret, as in vault:secret/registry/prod#{key}"
        )
    location, _, ref_key = body.partition("#")
    if "#" in ref_key:
        raise BadReference(f"{field} has more than one '#'; write vault:<mount>/<path>#<key>")
    if not ref_key or not _SEGMENT_RE.match(ref_key):
        raise BadReference(
            f"{field} has an empty or invalid key after '#' (allowed: letters, digits, . _ -)"
        )
    segments = location.split("/")
    mount, rest = segments[0], segments[1:]
    if not mount or not _MOUNT_RE.match(mount):
        raise BadReference(
            f"{field} has an empty or invalid mount before the first '/' "
            "(allowed: letters, digits, _ -), as in vault:secret/registry/prod#token"
        )
    if not rest or any(not s for s in rest):
        raise BadReference(
            f"{field} names no path inside the mount (or has an empty segment '//'); "
            "write vault:<mount>/<path>#<key>, as in vault:secret/registry/prod#token"
        )
    bad = [s for s in rest if not _SEGMENT_RE.match(s) or s in (".", "..")]
    if bad:
        raise BadReference(
            f"{field} has a path segment with characters other than letters, digits, . _ - "
            "(or a '.'/'..' segment)"
        )
    if rest[0] == "data" and len(rest) > 1:
        rest = rest[1:]  # KV v2 API form: secret/data/x is the secret kv put as secret/x
    if not _REF_RE.match(value):  # belt and braces: the CRD schema's own pattern
        raise BadReference(f"{field} is not a valid reference; {how}")
    return VaultRef(mount=mount, path="/".join(rest), key=ref_key)


def is_vault_ref(value: object) -> bool:
    """True when ``value`` is a well-formed reference."""
    try:
        parse_vault_ref(value)
    except BadReference:
        return False
    return True


# Prefixes and shapes of well-known credentials (none of them is ever echoed back).
_KNOWN_SECRET_PATTERNS = [
    re.compile(p)
    for p in (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"\b(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}",
        r"\bglpat-[A-Za-z0-9_-]{20,}",
        r"\b(AKIA|ASIA)[A-Z0-9]{16}\b",
        r"\bxox[abpors]-[A-Za-z0-9-]{10,}",
        r"\bsk-[A-Za-z0-9_-]{20,}",
        r"\b(hvs|hvb|hvr|s)\.[A-Za-z0-9_-]{20,}",
        r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # a JWT
        r"://[^/\s:@]+:[^/\s@]+@",  # credentials inside a URL
        r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)\s*[:=]\s*\S{4,}",
        r"(?i)^(basic|bearer)\s+[A-Za-z0-9+/=._-]{8,}$",
    )
]


def _entropy_bits_per_char(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_like_secret(value: str) -> bool:
    """Heuristic for free-text fields (comments, annotations): does this look like a credential?

    True for well-known token formats, private keys, JWTs, ``user:pass@`` URLs,
    ``password=...`` assignments, and long high-entropy words mixing character classes.
    It errs towards silence on prose: sentences, CAB ticket ids, versions and digests pass.
    """
    if not value or value.startswith(PREFIX):
        return False
    if any(p.search(value) for p in _KNOWN_SECRET_PATTERNS):
        return True
    for word in re.findall(r"[A-Za-z0-9+=_\-!@$%^&*~]{20,}", value):
        if re.fullmatch(r"(sha256:)?[a-f0-9]{40,128}", word):  # digests and commit ids are public
            continue
        classes = sum(
            bool(re.search(p, word)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
        )
        if classes >= 3 and _entropy_bits_per_char(word) >= 3.5:
            return True
    return False


def refuse_literal(field: str, value: str, *, suggest_path: str | None = None) -> str | None:
    """For admission: the refusal message when ``value`` is not a reference, else None."""
    try:
        parse_vault_ref(value, field, suggest_path=suggest_path)
    except BadReference as err:
        return err.message
    return None
