"""A cluster that enforces Stella's passports without Stella (issue 17, docs/supply-chain.md):
Stella's workload-digests ValidatingAdmissionPolicy (the chart's own file), the documented
binding docs/supply-chain/passport-binding.yaml and writer lock
docs/supply-chain/passport-writer.yaml, and the parameter ConfigMap that
`stella passport params` writes from the passports it verified in the registry. No CRD, no
operator, no webhook: the API server alone refuses a digest without the passport."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from kubernetes import client
from tests.kube_support import eventually

ROOT = Path(__file__).resolve().parents[2]
STELLA = str(Path(sys.executable).parent / "stella")
POLICY = "workload-digests.stella.io"
WRITER_POLICY = "passport-digests-writer.stella.io"
#: The identity docs/supply-chain/passport-writer.yaml lets write the parameter.
PARAMS_WRITER = "system:serviceaccount:stella-passport:writer"
DOCS = ROOT / "docs" / "supply-chain"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DOCS / name).read_text()) if d]


def as_user(admin: client.ApiClient, username: str) -> client.ApiClient:
    """An API client for ``admin``'s cluster that acts as ``username`` (impersonation)."""
    impersonating = client.ApiClient(admin.configuration)
    impersonating.set_default_header("Impersonate-User", username)  # type: ignore[no-untyped-call]
    return impersonating


def evidence_public_key(private_key: Path, out: Path) -> Path:
    """The operator's evidence public key (PEM), as `stella evidence keys` gives it."""
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    out.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return out


def passport_params(
    environment: str, evidence_pub: Path, namespace: str, registry: str, *images: str
) -> tuple[int, dict[str, Any], str]:
    """`stella passport params` as the deploying pipeline runs it: (exit code, the
    ConfigMap it prints, what it said on stderr)."""
    out = subprocess.run(
        [
            STELLA,
            "passport",
            "params",
            "--environment",
            environment,
            "--key",
            str(evidence_pub),
            "--namespace",
            namespace,
            *images,
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "STELLA_INSECURE_REGISTRIES": registry},
        timeout=60,
    )
    return out.returncode, json.loads(out.stdout), out.stderr


def install_passport_policy(admin: client.ApiClient, namespace: str) -> None:
    """What a platform team installs in a cluster without Stella: only the workload-digests
    policy (from the chart's file) and the passport binding, and a namespace that opts in."""
    docs = yaml.safe_load_all((ROOT / "charts/stella/files/admission-policies.yaml").read_text())
    policy = next(
        d
        for d in docs
        if d and d["kind"] == "ValidatingAdmissionPolicy" and d["metadata"]["name"] == POLICY
    )
    admission: Any = client.AdmissionregistrationV1Api(admin)  # dict bodies, sent as they are
    admission.create_validating_admission_policy(policy)
    for doc in _docs("passport-binding.yaml") + _docs("passport-writer.yaml"):
        if doc["kind"] == "ValidatingAdmissionPolicy":
            admission.create_validating_admission_policy(doc)
        else:
            admission.create_validating_admission_policy_binding(doc)
    client.CoreV1Api(admin).create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=namespace, labels={"stella.io/passport-required": "true"}
            )
        )
    )


def uninstall_passport_policy(admin: client.ApiClient, namespace: str) -> None:
    admission: Any = client.AdmissionregistrationV1Api(admin)  # dict bodies, sent as they are
    for doc in _docs("passport-binding.yaml") + _docs("passport-writer.yaml"):
        if doc["kind"] == "ValidatingAdmissionPolicy":
            admission.delete_validating_admission_policy(doc["metadata"]["name"])
        else:
            admission.delete_validating_admission_policy_binding(doc["metadata"]["name"])
    admission.delete_validating_admission_policy(POLICY)
    client.CoreV1Api(admin).delete_namespace(namespace)


def pod_refusal(admin: client.ApiClient, namespace: str, image: str) -> str | None:
    """Why Stella's policy refuses a Pod running ``image`` (server-side dry run), or None
    when the API server admits it. A refusal for want of the parameter is a 422, a rule's
    refusal a 403; anything else fails the test."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(generate_name="web-"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=image)]),
    )
    try:
        client.CoreV1Api(admin).create_namespaced_pod(namespace, pod, dry_run="All")
    except client.exceptions.ApiException as exc:
        body = str(exc.body)
        if exc.status in (403, 422) and f"ValidatingAdmissionPolicy '{POLICY}'" in body:
            return body
        raise AssertionError(f"{exc.status}: {body}") from None
    return None


def wait_refused(admin: client.ApiClient, namespace: str, image: str) -> str:
    """The policy is loaded by the API server a moment after it is stored: poll until the
    digest without a passport is refused, and return why."""
    return eventually(
        lambda: pod_refusal(admin, namespace, image),
        timeout=30,
        what=f"a Pod running {image} refused in {namespace}",
    )


def writer_refusal(call: Any) -> str | None:
    """Why the writer lock refuses ``call()`` (a write of the parameter), or None when the
    API server lets it through."""
    try:
        call()
    except client.exceptions.ApiException as exc:
        body = str(exc.body)
        if exc.status == 403 and f"ValidatingAdmissionPolicy '{WRITER_POLICY}'" in body:
            return body
        raise AssertionError(f"{exc.status}: {body}") from None
    return None
