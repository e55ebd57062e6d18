from __future__ import annotations

import json

from evidence_fakes import promotion_event

from stella.evidence.manifest import (
    configmap_manifest,
    configmap_name,
    key_configmap_name,
    key_manifest,
)
from stella.evidence.packet import CLUSTER_CHAIN
from stella.evidence.recorder import Recorder


def test_names() -> None:
    assert configmap_name("prod", 42) == "stella-evidence-env-prod-0000000042"
    assert configmap_name(CLUSTER_CHAIN, 1) == "stella-evidence-cluster-0000000001"
    # an environment named "a-1" and one named "a" never collide
    assert configmap_name("a-1", 2) != configmap_name("a", 12)
    assert key_configmap_name("transit/stella-evidence:v1").startswith("stella-evidence-key-")


def test_manifest_is_immutable_labelled_and_holds_the_envelope(recorder: Recorder) -> None:
    done = recorder.record(promotion_event(n=7))
    packet = recorder.store.get(done.configmap)
    assert packet is not None
    m = configmap_manifest(packet, "stella-system")
    assert m["immutable"] is True
    assert m["metadata"]["namespace"] == "stella-system"
    assert m["metadata"]["name"] == "stella-evidence-env-prod-0000000001"
    labels = m["metadata"]["labels"]
    assert labels["stella.io/evidence"] == "packet"
    assert labels["stella.io/environment"] == "prod"
    assert labels["stella.io/release"] == "shop-7"
    assert labels["stella.io/release-namespace"] == "shop"
    assert labels["stella.io/kind"] == "PromotionAuthorized"
    assert labels["stella.io/sequence"] == "1"
    ann = m["metadata"]["annotations"]
    assert ann["stella.io/packet-id"] == done.packet_id
    assert ann["stella.io/digest"] == done.digest
    assert json.loads(m["data"]["envelope.json"]) == done.envelope.to_dict()
    assert set(m["data"]) == {"envelope.json"}


def test_key_manifest() -> None:
    m = key_manifest("local:abc", "PEM", "ns")
    assert m["immutable"] is True
    assert m["data"] == {"keyid": "local:abc", "public.pem": "PEM"}
    assert m["metadata"]["labels"]["stella.io/evidence"] == "key"


def test_a_label_value_with_a_trailing_newline_is_left_out_not_stored() -> None:
    # `$` matches before a final newline; the API server would refuse the ConfigMap.
    from stella.evidence.manifest import L_RELEASE, packet_labels

    kept = packet_labels("prod", "prod", "shop-1", "shop", None, "PromotionAuthorized", 3)
    assert kept[L_RELEASE] == "shop-1"
    left_out = packet_labels("prod", "prod", "shop-1\n", "shop", None, "PromotionAuthorized", 3)
    assert L_RELEASE not in left_out
