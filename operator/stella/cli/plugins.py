"""`stella plugin sign | reenable | list`: a publisher signs a manifest; a platform engineer
lists plugins and lifts a quarantine in their own name.

`sign` reads a manifest (YAML or JSON) and the WebAssembly module, writes the module's
sha256 into the manifest, signs it with an ECDSA P-256 key file (the same local key format
as the evidence signer; generated when absent) and prints a Plugin to `kubectl apply`, and
the PluginPublisher that trusts the key. No cluster is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stella.cli.kube import connect
from stella.cli.output import EXIT_OK, EXIT_USAGE, CliError, add_output_flag, emit_list

SIGN_EPILOG = """\
examples:
  stella plugin sign manifest.yaml --module smoke.wasm --key publisher.pem > plugin.yaml
  stella plugin sign manifest.yaml --module smoke.wasm --key publisher.pem \\
      --file /var/lib/stella/plugins/smoke.wasm --publisher-out publisher.yaml

The manifest's module.digest is filled in from --module. The key file is created (mode
0600) when absent; keep it out of the cluster. docs/plugins.md explains each field.
"""

REENABLE_EPILOG = """\
examples:
  stella plugin reenable smoke-test --reason "INC-77: manifest fixed, egress reviewed"

Needs the `reenable` verb on plugins/NAME (group stella.io). Admission checks that the
annotation names you exactly as the API server knows you, and the quarantine it lifts.
"""


PLUGIN_EPILOG = """\
examples:
  stella plugin sign manifest.yaml --module smoke.wasm --key publisher.pem > plugin.yaml
  kubectl apply -f plugin.yaml
  stella plugin list                          version, publisher, quarantine, last run
  stella plugin reenable smoke-test --reason "INC-77: manifest fixed, egress reviewed"
"""

LIST_EPILOG = """\
examples:
  stella plugin list
  stella plugin list -o yaml
"""


def cmd_sign(args: argparse.Namespace) -> int:
    import yaml
    from pydantic import ValidationError

    from stella.models.errors import human_errors
    from stella.plugins.manifest import PluginManifest
    from stella.plugins.signing import module_digest, sign_manifest
    from stella.secrets.signers import LocalKeySigner

    try:
        doc = yaml.safe_load(Path(args.manifest).read_text())
        module = Path(args.module).read_bytes()
    except OSError as exc:
        raise CliError(f"{exc.filename}: {exc.strerror}", EXIT_USAGE) from None
    except yaml.YAMLError as exc:
        raise CliError(f"{args.manifest}: not YAML: {exc}", EXIT_USAGE) from None
    if not isinstance(doc, dict):
        raise CliError(
            f"{args.manifest}: a manifest is a mapping (see docs/plugins.md)", EXIT_USAGE
        )
    doc.setdefault("module", {})["digest"] = module_digest(module)
    try:
        manifest = PluginManifest.model_validate(doc)
    except ValidationError as exc:
        raise CliError(f"{args.manifest}: {human_errors(exc)}", EXIT_USAGE) from None
    signer = LocalKeySigner(args.key)
    envelope = sign_manifest(manifest, signer)
    source = {"file": args.file or str(Path(args.module).resolve())}
    plugin = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": manifest.name},
        "spec": {"manifest": envelope.to_dict(), "module": source},
    }
    if args.publisher_out:
        publisher = {
            "apiVersion": "stella.io/v1alpha1",
            "kind": "PluginPublisher",
            "metadata": {"name": manifest.publisher},
            "spec": {"keys": [{"keyId": signer.key_id, "publicKey": signer.public_key_pem()}]},
        }
        Path(args.publisher_out).write_text(yaml.safe_dump(publisher, sort_keys=False))
    sys.stdout.write(yaml.safe_dump(plugin, sort_keys=False))
    print(
        f"# signed {manifest.name} {manifest.version} for publisher {manifest.publisher} "
        f"with key {signer.key_id}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_reenable(args: argparse.Namespace) -> int:
    from kubernetes import client

    from stella.plugins.reenable import REENABLE_ANNOTATION, Reenable
    from stella.policy.identity import Identity

    if not args.reason.strip():
        raise CliError("--reason must say why the plugin may run again", EXIT_USAGE)
    kube = connect(args)
    plugin = kube.find("plugins", args.name)
    if plugin is None:
        raise CliError(f"no Plugin {args.name} (stella plugin list)", EXIT_USAGE)
    quarantine = (plugin.get("status") or {}).get("quarantine") or {}
    if not quarantine.get("since"):
        print(f"Plugin {args.name} is not quarantined; nothing to do")
        return EXIT_OK
    review: Any = client.AuthenticationV1Api(kube.api_client).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    )
    info: Any = review.status.user_info
    me = Identity(str(info.username), str(info.uid or ""), frozenset(info.groups or []))
    note = Reenable(me, str(quarantine["since"]), args.reason).wire()
    kube.patch("plugins", args.name, {"metadata": {"annotations": {REENABLE_ANNOTATION: note}}})
    print(
        f"Plugin {args.name} re-enabled by {me.username} (quarantined since "
        f"{quarantine['since']}: {quarantine.get('message', '')[:200]}); it runs at its next step"
    )
    return EXIT_OK


HEADER = ["PLUGIN", "VERSION", "PUBLISHER", "QUARANTINED", "LAST RUN", "FUEL", "MEMORY"]


def _row(p: dict[str, Any]) -> list[str]:
    st = p.get("status") or {}
    verified, last = st.get("verified") or {}, st.get("lastRun") or {}
    q = st.get("quarantine") or {}
    return [
        p["metadata"]["name"],
        verified.get("version") or "-",
        verified.get("publisher") or "-",
        q.get("since") or "-",
        last.get("outcome") or "-",
        str(last.get("fuelUsed", "-")),
        str(last.get("memoryBytes", "-")),
    ]


def cmd_list(args: argparse.Namespace) -> int:
    emit_list(
        args.output,
        connect(args).list("plugins"),
        "no Plugins yet (stella plugin sign ... | kubectl apply -f -; docs/plugins.md)",
        _row,
        HEADER,
    )
    return EXIT_OK


def register(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    plugin = sub.add_parser(
        "plugin",
        help="sign plugin manifests, list plugins, lift a quarantine",
        description="Workflow plugins: signed manifests, quarantine (docs/plugins.md).",
        epilog=PLUGIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plugin_sub = plugin.add_subparsers(dest="plugin_command", metavar="COMMAND", required=True)
    sign = plugin_sub.add_parser(
        "sign",
        help="sign a plugin manifest and print the Plugin to apply",
        description="Fill in the module's sha256, sign the manifest (DSSE, ECDSA P-256) and "
        "print a Plugin.",
        epilog=SIGN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sign.add_argument("manifest", metavar="MANIFEST", help="the manifest, YAML or JSON")
    sign.add_argument("--module", required=True, metavar="WASM", help="the WebAssembly module")
    sign.add_argument("--key", required=True, metavar="PEM", help="the publisher's key file")
    sign.add_argument(
        "--file", metavar="PATH", help="the module's path on the operator (default: --module's)"
    )
    sign.add_argument(
        "--publisher-out", metavar="FILE", help="also write the PluginPublisher trusting the key"
    )
    sign.set_defaults(func=cmd_sign)
    reenable = plugin_sub.add_parser(
        "reenable",
        parents=common,
        help="lift a plugin's quarantine, in your name",
        description="Lift a quarantined plugin's quarantine (needs the reenable verb).",
        epilog=REENABLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reenable.add_argument("name", metavar="NAME", help="the Plugin")
    reenable.add_argument("--reason", required=True, help="why it may run again (evidence)")
    reenable.set_defaults(func=cmd_reenable)
    ls = plugin_sub.add_parser(
        "list",
        parents=common,
        help="plugins: version, publisher, quarantine, last run",
        epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_flag(ls)
    ls.set_defaults(func=cmd_list)
