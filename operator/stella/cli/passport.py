"""`stella passport params`: which images carry Stella's passport for an Environment,
verified against the registry, as the parameter object of the workload-digests admission
policy — so a cluster without Stella refuses digests without it (docs/supply-chain.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from stella.cli.output import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from stella.supplychain.admission_params import PassportLookup

DESCRIPTION = """\
Look up Stella's passport for ENVIRONMENT on each IMAGE (repo@sha256:...) in its registry,
verify it with the evidence public keys given (--key, as `stella evidence keys` writes
them), and print the ConfigMap stella-passport-digests listing the digests that carry one.
Apply it where docs/supply-chain/passport-binding.yaml binds Stella's workload-digests
policy: that cluster's API server then refuses every other digest."""


PARAMS_EPILOG = """\
examples:
  stella passport params --environment prod --key keys/KEYID.pem \\
      registry.example.com/shop/web@sha256:... | kubectl apply -n shop -f -
"""

PASSPORT_EPILOG = """\
examples:
  stella evidence keys --out-dir keys/        the evidence public keys, one .pem file each
  stella passport params --environment prod --key keys/KEYID.pem \\
      registry.example.com/shop/web@sha256:... | kubectl apply -n shop -f -
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "passport",
        help="Stella's release passport: requirements for clusters without Stella",
        description="Stella's release passport (docs/supply-chain.md).",
        epilog=PASSPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="passport_command", metavar="COMMAND", required=True)
    params = sub.add_parser(
        "params",
        help="print the admission parameter of the digests passported for an Environment",
        description=DESCRIPTION,
        epilog=PARAMS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    params.add_argument("images", nargs="+", metavar="IMAGE", help="repo@sha256:<digest>")
    params.add_argument("--environment", required=True, help="whose passport, e.g. prod")
    params.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="PEM",
        help="an evidence public key file (repeat for rotated keys)",
    )
    params.add_argument("--namespace", "-n", help="set metadata.namespace of the ConfigMap")
    params.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a registry served over plain HTTP (loopback and development only)",
    )
    params.set_defaults(func=cmd_params)


def cmd_params(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from stella.registry.client import RegistryClient
    from stella.registry.errors import InvalidImageReference
    from stella.registry.reference import parse_pinned
    from stella.supplychain.admission_params import lookup_passports, params_configmap
    from stella.supplychain.errors import TrustConfigError
    from stella.supplychain.keys import load_trusted_key

    out = out if out is not None else sys.stdout
    try:
        keys = [load_trusted_key(path, Path(path).read_text()) for path in args.key]
        for image in args.images:
            parse_pinned(image)
    except OSError as exc:
        raise CliError(f"cannot read a key: {exc}", EXIT_USAGE) from None
    except (TrustConfigError, InvalidImageReference) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None

    insecure = [
        *args.insecure_registry,
        *os.environ.get("STELLA_INSECURE_REGISTRIES", "").split(","),
    ]

    async def run() -> list[PassportLookup]:
        async with RegistryClient(insecure_registries=[h for h in insecure if h]) as client:
            return await lookup_passports(client, args.images, args.environment, keys)

    found = asyncio.run(run())
    for f in found:
        print(f"{'ok     ' if f.passport else 'MISSING'} {f.image}: {f.why}", file=sys.stderr)
    json.dump(params_configmap(args.environment, found, args.namespace), out, indent=1)
    print(file=out)
    return EXIT_OK if all(f.passport for f in found) else EXIT_REFUSED
