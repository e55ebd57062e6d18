"""`stella release create --from-tags`: resolve tags to digests once, print a pinned Release.

Two ways to say what goes in::

    stella release create shop-1-4-2 -n shop --version 1.4.2 --environments dev,staging,prod \\
        --component web=registry.example.com/shop/web:1.4.2 \\
        --workload web=Deployment/web/web --from-tags | kubectl apply -f -

    stella release create --from-tags -f release-with-tags.yaml | kubectl apply -f -

Each tag is resolved against its registry (credentials from a Vault reference, read with
the ``STELLA_VAULT_*`` settings) and the Release is printed with every image written as
``host/repo:tag@sha256:...``: the digest decides what runs, the tag stays for readers.
The Release is validated with the same model the CRD schema comes from before it is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stella import API_VERSION
from stella.cli.output import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from stella.registry.client import RegistryClient
    from stella.registry.verify import CredentialsLookup


def parse_component_flags(
    components: Sequence[str], workloads: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """``web=reg/shop/web:1.4.2`` plus optional ``web=Deployment/web/web`` (kind/name/container;
    the default is a Deployment and a container both named like the component)."""
    by_name: dict[str, dict[str, str]] = {}
    for w in workloads:
        name, _, spec = w.partition("=")
        parts = spec.split("/")
        if not name or len(parts) not in (2, 3):
            raise ValueError(f"--workload {w!r}: write NAME=Kind/workload[/container]")
        kind, wname = parts[0], parts[1]
        by_name[name] = {
            "kind": kind,
            "name": wname,
            "container": parts[2] if len(parts) == 3 else wname,
        }
    out = []
    for c in components:
        name, _, image = c.partition("=")
        if not name or not image:
            raise ValueError(f"--component {c!r}: write NAME=IMAGE:TAG")
        workload = by_name.pop(name, {"kind": "Deployment", "name": name, "container": name})
        out.append({"name": name, "image": image, "workload": workload})
    if by_name:
        raise ValueError(f"--workload names no --component: {', '.join(sorted(by_name))}")
    return out


async def pin_release(
    release: dict[str, Any],
    client: RegistryClient,
    credentials_lookup: CredentialsLookup | None = None,
) -> dict[str, Any]:
    """A copy of a Release manifest with each component image resolved and pinned.

    Raises :class:`RegistryError` (TagNotFound, RegistryUnavailable, ...) or
    :class:`SecretsError`, and pydantic's ``ValidationError`` when the result is no valid
    Release spec.
    """
    from stella.models.release import ReleaseSpec
    from stella.registry.verify import pin_images

    spec = dict(release.get("spec") or {})
    components = [dict(c) for c in spec.get("components") or []]
    pins = await pin_images(client, [c["image"] for c in components], credentials_lookup)
    for comp, pin in zip(components, pins, strict=True):
        comp["image"] = pin.image
    spec["components"] = components
    ReleaseSpec.model_validate(spec)
    return {**release, "spec": spec}


def _release_from_args(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    if args.file:
        with open(args.file) if args.file != "-" else sys.stdin as fh:
            doc = yaml.safe_load(fh)
        if not isinstance(doc, dict) or doc.get("kind") != "Release":
            raise ValueError(f"{args.file}: expected one Release manifest")
        if args.namespace:
            doc.setdefault("metadata", {})["namespace"] = args.namespace
        return doc
    missing = [
        flag
        for flag, value in (
            ("NAME", args.name),
            ("--version", args.version),
            ("--component", args.component),
            ("--environments", args.environments),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"without -f, give {', '.join(missing)}")
    metadata: dict[str, Any] = {"name": args.name}
    if args.namespace:
        metadata["namespace"] = args.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "Release",
        "metadata": metadata,
        "spec": {
            "version": args.version,
            "components": parse_component_flags(args.component, args.workload or ()),
            "environments": [e for e in args.environments.split(",") if e],
        },
    }


def registry_failure(err: Exception, insecure: Sequence[str] = ()) -> CliError:
    """A registry or Vault failure while resolving tags, as one line with its exit code.
    A TLS failure says how to use a plain-HTTP registry (``--insecure-registry``)."""
    from stella.registry.errors import (
        InvalidImageReference,
        RegistryError,
        RegistryUnavailable,
    )
    from stella.secrets.errors import BadReference, SecretsError, VaultUnavailable

    if isinstance(err, RegistryUnavailable):
        host = (err.image or "").split("/", 1)[0]
        text = err.message
        if "SSL" in text or "ssl" in text or "TLS" in text:
            hint = (
                f"; if {host} serves plain HTTP (a local registry), add --insecure-registry {host}"
                if host and host.lower() not in {h.lower() for h in insecure}
                else ""
            )
            return CliError(
                f"cannot reach registry {host or '?'} over HTTPS (TLS failed) to resolve "
                f"{err.image}{hint}",
                EXIT_UNAVAILABLE,
            )
        cause = text.split("; failing closed")[0].replace(
            "(ClientConnectorError)", "(cannot connect)"
        )
        return CliError(f"{cause}; {err.image} was not resolved", EXIT_UNAVAILABLE)
    if isinstance(err, InvalidImageReference | BadReference):
        return CliError(str(getattr(err, "message", err)), EXIT_USAGE)
    if isinstance(err, RegistryError):
        return CliError(err.message, EXIT_REFUSED)
    if isinstance(err, VaultUnavailable):
        return CliError(str(getattr(err, "message", err)), EXIT_UNAVAILABLE)
    if isinstance(err, SecretsError):
        return CliError(str(getattr(err, "message", err)), EXIT_REFUSED)
    raise err


def _hosts_of(release: dict[str, Any]) -> list[str]:
    """The registry hosts the Release's components name (unparseable images: none)."""
    from stella.registry.errors import InvalidImageReference
    from stella.registry.reference import parse_image_ref

    hosts: list[str] = []
    for component in (release.get("spec") or {}).get("components") or []:
        image = component.get("image") if isinstance(component, dict) else None
        try:
            hosts.append(parse_image_ref(str(image)).registry)
        except InvalidImageReference:
            continue
    return hosts


def _create(args: argparse.Namespace) -> int:
    import yaml

    from stella.registry.client import RegistryClient
    from stella.registry.errors import RegistryError
    from stella.registry.verify import vault_credentials
    from stella.secrets.errors import SecretsError
    from stella.secrets.vault import VaultClient, VaultSettings

    if not args.from_tags:
        raise CliError(
            "stella release create resolves tags only with --from-tags (or write the Release "
            "with digests yourself and kubectl apply it)",
            EXIT_USAGE,
        )
    try:
        release = _release_from_args(args)
    except (ValueError, OSError, yaml.YAMLError) as err:
        raise CliError(str(err), EXIT_USAGE) from None

    async def go() -> dict[str, Any]:
        lookup = None
        if args.registry_credentials:
            vault = VaultClient(VaultSettings.from_env())
            # The person running this named each image's registry (-f or --component): the
            # credentials go to those hosts, as an Environment's go to its allowedRegistries.
            lookup = vault_credentials(vault, args.registry_credentials, _hosts_of(release))
        client = RegistryClient.from_env(timeout=args.timeout)
        client.insecure_registries |= {h.lower() for h in args.insecure_registry or ()}
        async with client:
            return await pin_release(release, client, lookup)

    try:
        pinned = asyncio.run(go())
    except (RegistryError, SecretsError) as err:
        raise registry_failure(err, args.insecure_registry or ()) from None
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        from stella.cli.output import shorten

        raise CliError(
            f"the pinned Release is not valid: {shorten(str(err))}", EXIT_USAGE
        ) from None
    if args.output == "json":
        print(json.dumps(pinned, indent=2))
    else:
        print(yaml.safe_dump(pinned, sort_keys=False), end="")
    return EXIT_OK


CREATE_DESCRIPTION = """\
Resolve image tags to digests once and print a Release whose images are pinned
(host/repo:tag@sha256:...): the digest decides what runs, the tag stays for readers. The
Release is validated before it is printed; pipe it to kubectl apply -f -.
"""

# The two ways to create a Release, shown by `stella release create --help` and `stella
# release --help` alike.
_CREATE_FROM_FLAGS = """\
  stella release create shop-1-4-2 -n shop --version 1.4.2 --environments dev,staging,prod \\
      --component web=registry.example.com/shop/web:1.4.2 \\
      --workload web=Deployment/web/web --from-tags | kubectl apply -f -
"""
_CREATE_FROM_FILE = (
    "  stella release create --from-tags -f release-with-tags.yaml | kubectl apply -f -\n"
)

CREATE_EPILOG = (
    "examples:\n"
    + _CREATE_FROM_FLAGS
    + "\n"
    + _CREATE_FROM_FILE
    + """
Registry credentials come from a Vault reference (--registry-credentials, read with the
STELLA_VAULT_* settings). A plain-HTTP registry (loopback, dev) needs --insecure-registry.
"""
)


RELEASE_EPILOG = (
    "examples:\n"
    + _CREATE_FROM_FLAGS
    + _CREATE_FROM_FILE
    + "  kubectl get rel -n shop                     where each Release stands, and who asked\n"
)


def register(subparsers: Any) -> None:
    """Add ``release create`` to the top-level ``stella`` subcommands."""
    rel = subparsers.add_parser(
        "release",
        help="create Releases with images pinned from tags",
        description="Create Releases: resolve image tags to digests once.",
        epilog=RELEASE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rel_sub = rel.add_subparsers(dest="release_command", metavar="COMMAND", required=True)
    create = rel_sub.add_parser(
        "create",
        help="resolve image tags to digests once and print a pinned Release",
        description=CREATE_DESCRIPTION,
        epilog=CREATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("name", nargs="?", help="Release name (without -f)")
    create.add_argument("-f", "--file", help="a Release manifest whose images carry tags")
    create.add_argument("-n", "--namespace", help="the Release's namespace")
    create.add_argument("--version", help="the version people read, e.g. 1.4.2")
    create.add_argument("--environments", help="comma-separated promotion path, e.g. dev,prod")
    create.add_argument("--component", action="append", metavar="NAME=IMAGE:TAG")
    create.add_argument("--workload", action="append", metavar="NAME=KIND/NAME[/CONTAINER]")
    create.add_argument("--from-tags", action="store_true", help="resolve tags to digests")
    create.add_argument(
        "--registry-credentials",
        metavar="vault:MOUNT/PATH#KEY",
        help="Vault reference of the registry password (username in the same secret)",
    )
    create.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST:PORT",
        help="plain-HTTP registry (loopback/dev only); also STELLA_INSECURE_REGISTRIES",
    )
    create.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="per registry request (default: %(default)g)",
    )
    create.add_argument(
        "-o", "--output", choices=("yaml", "json"), default="yaml", help="(default: %(default)s)"
    )
    create.set_defaults(func=_create)
