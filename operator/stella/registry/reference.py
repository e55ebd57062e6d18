"""Image references as Docker and OCI tools write them; pure, no I/O.

``[host[:port]/]path[:tag][@sha256:<hex>]``. The first path component is a registry
host when it contains ``.`` or ``:`` or is ``localhost``; otherwise the image is on
Docker Hub (``docker.io``, served at ``registry-1.docker.io``), and a one-component path
gets ``library/`` in front, as ``docker pull`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from stella.registry.errors import InvalidImageReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](?::[0-9]{1,5})?$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SHA256_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_ANY_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+$")
MAX_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str  # host[:port] as written (Docker Hub normalized to docker.io)
    repository: str  # path inside the registry, e.g. shop/web or library/nginx
    tag: str | None = None
    digest: str | None = None  # sha256:<64 hex>

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the distribution API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def with_digest(self, digest: str) -> ImageRef:
        if not SHA256_DIGEST.match(digest):
            raise InvalidImageReference(f"{digest!r} is not a sha256 digest")
        return replace(self, digest=digest)

    def without_tag(self) -> ImageRef:
        return replace(self, tag=None)

    def without_digest(self) -> ImageRef:
        return replace(self, digest=None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image_ref(value: str) -> ImageRef:
    """Parse an image reference or raise :class:`InvalidImageReference` saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidImageReference("the image reference is empty")
    if value != value.strip() or any(c.isspace() for c in value):
        raise InvalidImageReference(f"image {value!r} contains whitespace")
    if len(value) > MAX_LENGTH:
        raise InvalidImageReference(f"image reference longer than {MAX_LENGTH} characters")
    rest, digest = value, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if "@" in digest:
            raise InvalidImageReference(f"image {value!r} has more than one '@'")
        if not SHA256_DIGEST.match(digest):
            if _ANY_DIGEST.match(digest) and not digest.startswith("sha256:"):
                raise InvalidImageReference(
                    f"image {value!r} uses digest algorithm {digest.split(':')[0]!r}; "
                    "Stella pins sha256 digests"
                )
            raise InvalidImageReference(
                f"image {value!r} has a malformed digest; write @sha256:<64 lowercase hex>"
            )
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidImageReference(f"image {value!r} has an invalid tag {tag!r}")
    if not rest:
        raise InvalidImageReference(f"image {value!r} names no repository")
    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or "[" in first):
        registry, path = first, parts[1:]
        if not _HOST.match(registry):
            raise InvalidImageReference(f"image {value!r} has an invalid registry host")
        if registry.lower() in _HUB_ALIASES:
            registry = DOCKER_HUB
    else:
        registry, path = DOCKER_HUB, parts
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    for comp in path:
        if not _COMPONENT.match(comp):
            raise InvalidImageReference(
                f"image {value!r} has an invalid path component {comp!r} (lowercase letters, "
                "digits and single separators . _ __ - only)"
            )
    repository = "/".join(path)
    if len(registry) + 1 + len(repository) > 255:
        raise InvalidImageReference(f"image {value!r}: name longer than 255 characters")
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def parse_pinned(value: str) -> ImageRef:
    """Like :func:`parse_image_ref`, and the reference must carry a sha256 digest."""
    ref = parse_image_ref(value)
    if ref.digest is None:
        raise InvalidImageReference(
            f"image {value!r} is not pinned by digest; write {ref}@sha256:<digest>, or create "
            "the Release with `stella release create --from-tags` to resolve tags once"
        )
    return ref


def normalize_registry(host: str) -> str:
    """Registry hosts compare case-insensitively; Docker Hub's aliases are one registry."""
    lowered = host.strip().lower()
    return DOCKER_HUB if lowered in _HUB_ALIASES else lowered


def registry_hosts(hosts: Iterable[str]) -> frozenset[str]:
    """`hosts` as registries compare (:func:`normalize_registry`): every set of allowed
    registries is built here, so admission, deploy, credentials and rollbacks agree."""
    return frozenset(normalize_registry(h) for h in hosts)


def registry_in(hosts: Iterable[str]) -> Callable[[str], bool]:
    """Whether a registry host is one of `hosts` (as :func:`registry_hosts` compares them;
    an empty `hosts` holds none — callers decide what an empty list allows)."""
    listed = registry_hosts(hosts)
    return lambda host: normalize_registry(host) in listed


def credentials_matcher(hosts: Iterable[str]) -> Callable[[ImageRef], bool]:
    """Whether an image's registry may get credentials: it is one of `hosts`, compared as
    :func:`normalize_registry` does (case-insensitive, Docker Hub's aliases one registry,
    nothing else alike: a host that only starts or ends like a listed one is another
    registry). An empty `hosts` matches NO registry (fail closed, T1/T9) — unlike an empty
    allowedRegistries, which lets Releases use any registry: credentials go only to a
    registry listed explicitly, never to whatever registry a Release's image names."""
    listed = registry_in(hosts)
    return lambda ref: listed(ref.registry)


def foreign_registry(images: Iterable[str], allowed: Iterable[str]) -> tuple[str, str] | None:
    """The first image (and its registry) from a registry not in `allowed`, or None; an
    empty `allowed` allows every registry. An image that does not parse is foreign (its
    registry is not known to be allowed)."""
    hosts = registry_hosts(allowed)
    if not hosts:
        return None
    for image in images:
        try:
            host = parse_image_ref(image).registry
        except InvalidImageReference:
            return image, "(not an image reference)"
        if normalize_registry(host) not in hosts:
            return image, host
    return None
