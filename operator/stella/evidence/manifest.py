"""Pure builders of the evidence ConfigMaps: names, labels, annotations, data.

One ConfigMap per packet, ``immutable: true``, named by chain and sequence so that the API
server itself refuses a second packet at the same place in a chain:

* ``stella-evidence-env-<environment>-<sequence, 10 digits>`` for an environment's chain,
* ``stella-evidence-cluster-<sequence>`` for cluster-scoped events (agents).

Published public keys: one immutable ConfigMap per key, ``stella-evidence-key-<hash>``.

Where the external log is: one immutable ConfigMap per log the operator was configured
with, ``stella-evidence-log-<hash>``, data ``log`` = a locator without any secret (a file
path, or ``postgresql://host:port/db`` without user or password), so that ``stella
evidence verify`` finds the log without a ``--log``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

from stella.evidence.dsse import Envelope
from stella.evidence.packet import CLUSTER_CHAIN, Statement
from stella.evidence.records import StoredPacket
from stella.models.common import rfc3339

PREFIX = "stella.io/"
L_EVIDENCE = PREFIX + "evidence"
L_SCOPE = PREFIX + "chain-scope"
L_ENVIRONMENT = PREFIX + "environment"
L_RELEASE = PREFIX + "release"
L_RELEASE_NS = PREFIX + "release-namespace"
L_KIND = PREFIX + "kind"
L_SEQUENCE = PREFIX + "sequence"
L_AGENT = PREFIX + "agent"
A_PACKET_ID = PREFIX + "packet-id"
A_DIGEST = PREFIX + "digest"
A_PREVIOUS = PREFIX + "previous-digest"
A_CHAIN = PREFIX + "chain"
A_RECORDED = PREFIX + "recorded-at"
A_KEY_ID = PREFIX + "key-id"
DATA_ENVELOPE = "envelope.json"
DATA_KEY_PEM = "public.pem"
DATA_KEY_ID = "keyid"
DATA_LOG = "log"

COMMON_LABELS = {"app.kubernetes.io/managed-by": "stella", "app.kubernetes.io/part-of": "stella"}
PACKET_SELECTOR = f"{L_EVIDENCE}=packet"
_PACKET_LABELS = {**COMMON_LABELS, L_EVIDENCE: "packet"}
KEY_SELECTOR = f"{L_EVIDENCE}=key"
LOG_SELECTOR = f"{L_EVIDENCE}=log"

# fullmatch, not match with `$`: `$` also matches before a trailing newline, and the API
# server refuses such a label value (the ConfigMap would not be stored).
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def configmap_name(chain: str, sequence: int) -> str:
    if chain == CLUSTER_CHAIN:
        return f"stella-evidence-cluster-{sequence:010d}"
    return f"stella-evidence-env-{chain}-{sequence:010d}"


def chain_selector(chain: str) -> str:
    if chain == CLUSTER_CHAIN:
        return f"{PACKET_SELECTOR},{L_SCOPE}=cluster"
    return f"{PACKET_SELECTOR},{L_ENVIRONMENT}={chain}"


@functools.lru_cache(maxsize=4096)  # environments, kinds, namespaces repeat in every packet
def _label_value(value: str) -> str | None:
    return value if len(value) <= 63 and _LABEL_VALUE.fullmatch(value) else None


def labels_for(statement: Statement) -> dict[str, str]:
    p = statement.predicate
    return packet_labels(
        p.chain,
        p.environment,
        p.release.name if p.release else None,
        p.release.namespace if p.release else None,
        p.agent.name if p.agent else None,
        p.kind,
        p.sequence,
    )


def packet_labels(
    chain: str,
    environment: str | None,
    release: str | None,
    release_namespace: str | None,
    agent: str | None,
    kind: str,
    sequence: int,
) -> dict[str, str]:
    """The labels of a packet's ConfigMap, from the signed predicate's fields (verify
    computes them from parsed JSON, without a Statement)."""
    labels = dict(_PACKET_LABELS)
    labels[L_SCOPE] = "cluster" if chain == CLUSTER_CHAIN else "environment"
    for key, value in (
        (L_ENVIRONMENT, environment),
        (L_RELEASE, release),
        (L_RELEASE_NS, release_namespace),
        (L_AGENT, agent),
        (L_KIND, kind),
        (L_SEQUENCE, str(sequence)),
    ):
        if value is not None and (safe := _label_value(value)) is not None:
            labels[key] = safe
    return labels


def annotations_for(statement: Statement) -> dict[str, str]:
    p = statement.predicate
    out = {
        A_PACKET_ID: p.packet_id,
        A_DIGEST: statement.digest(),
        A_CHAIN: p.chain,
        A_RECORDED: rfc3339(p.recorded_at),
    }
    if p.previous_digest:
        out[A_PREVIOUS] = p.previous_digest
    return out


def stored_packet(statement: Statement, envelope: Envelope) -> StoredPacket:
    p = statement.predicate
    return StoredPacket(
        name=configmap_name(p.chain, p.sequence),
        envelope_json=envelope.canonical().decode(),
        labels=labels_for(statement),
        annotations=annotations_for(statement),
    )


def configmap_manifest(packet: StoredPacket, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": packet.name,
            "namespace": namespace,
            "labels": dict(packet.labels),
            "annotations": dict(packet.annotations),
        },
        "immutable": True,
        "data": {DATA_ENVELOPE: packet.envelope_json},
    }


def key_configmap_name(key_id: str) -> str:
    return "stella-evidence-key-" + hashlib.sha256(key_id.encode()).hexdigest()[:20]


def key_manifest(key_id: str, pem: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": key_configmap_name(key_id),
            "namespace": namespace,
            "labels": {**COMMON_LABELS, L_EVIDENCE: "key"},
            "annotations": {A_KEY_ID: key_id},
        },
        "immutable": True,
        "data": {DATA_KEY_ID: key_id, DATA_KEY_PEM: pem},
    }


def log_configmap_name(locator: str) -> str:
    return "stella-evidence-log-" + hashlib.sha256(locator.encode()).hexdigest()[:20]


def log_manifest(locator: str, namespace: str) -> dict[str, Any]:
    """Where the operator's external log is (never a password: see ``locator`` of the
    logs)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": log_configmap_name(locator),
            "namespace": namespace,
            "labels": {**COMMON_LABELS, L_EVIDENCE: "log"},
        },
        "immutable": True,
        "data": {DATA_LOG: locator},
    }
