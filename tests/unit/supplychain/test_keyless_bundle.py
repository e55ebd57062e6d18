"""Certificate-signed ("keyless") Sigstore bundles that pass requireSignatures offline:
sigstore-python's Verifier, given the platform team's trusted_root.json and the Environment's
identities, against a Fulcio-like CA, a CT log and a Rekor-like log made in the test
(tests/keyless_support.py) — and every way such a bundle must fail."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from tests.keyless_support import SigstoreInstance, raw

from stella.supplychain.bundle import Identity, verify_bundle
from stella.supplychain.check import SignatureRule, check_signatures
from stella.supplychain.discovery import Found
from stella.supplychain.errors import SignatureUntrusted, SupplyChainError, TrustConfigError

SUBJECT, ISSUER = "ci@example.com", "https://issuer.example.com"
IMAGE = "reg.example/shop/web"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def sigstore() -> SigstoreInstance:
    return SigstoreInstance()


def rule(
    instance: SigstoreInstance, *identities: tuple[str, str], root: dict[str, Any] | None = None
) -> SignatureRule:
    return SignatureRule(
        keys=(),
        trusted_root_json=json.dumps(root or instance.trusted_root()),
        identities=tuple(Identity(s, i) for s, i in identities or [(SUBJECT, ISSUER)]),
    )


def refusal(rule_: SignatureRule, bundle: dict[str, Any]) -> str:
    """Why verify_bundle refuses ``bundle`` (it must)."""
    with pytest.raises(SignatureUntrusted) as err:
        verify_bundle(
            raw(bundle), (), trusted_root_json=rule_.trusted_root_json, identities=rule_.identities
        )
    return err.value.message


def signed(rule_: SignatureRule, *bundles: dict[str, Any], digest: str = DIGEST) -> str:
    found = Found(bundles=[raw(b) for b in bundles])
    return check_signatures(f"{IMAGE}@{digest}", digest, found, rule_)


def test_a_keyless_bundle_passes_for_its_identity_and_digest(sigstore: SigstoreInstance) -> None:
    bundle = sigstore.bundle(sigstore.leaf(SUBJECT, ISSUER), IMAGE, DIGEST)
    r = rule(sigstore, ("someone@example.com", ISSUER), (SUBJECT, ISSUER))
    assert signed(r, bundle) == f"{SUBJECT} (issuer {ISSUER})"
    # The same bundle does not sign another digest.
    with pytest.raises(SignatureUntrusted):
        signed(r, bundle, digest="sha256:" + "cd" * 32)


def test_a_uri_identity_as_a_ci_workflow_has_one(sigstore: SigstoreInstance) -> None:
    workflow = "https://ci.example.com/acme/shop/.ci/release.yml@refs/heads/main"
    bundle = sigstore.bundle(sigstore.leaf(workflow, ISSUER), IMAGE, DIGEST)
    assert signed(rule(sigstore, (workflow, ISSUER)), bundle).startswith(workflow)


@pytest.mark.parametrize(
    ("identity", "says"),
    [
        (("mallory@example.com", ISSUER), f"signed by {SUBJECT} (issuer {ISSUER}), none of"),
        (
            (SUBJECT, "https://other-issuer.example.com"),
            "trusts: ci@example.com (issuer https://other",
        ),
    ],
)
def test_a_wrong_identity_or_issuer_is_refused(
    sigstore: SigstoreInstance, identity: tuple[str, str], says: str
) -> None:
    bundle = raw(sigstore.bundle(sigstore.leaf(SUBJECT, ISSUER), IMAGE, DIGEST))
    r = rule(sigstore, identity)
    with pytest.raises(SignatureUntrusted) as err:
        verify_bundle(bundle, (), trusted_root_json=r.trusted_root_json, identities=r.identities)
    assert says in err.value.message


def test_the_issuer_may_be_only_in_fulcios_current_extension(sigstore: SigstoreInstance) -> None:
    """1.3.6.1.4.1.57264.1.8 alone (sigstore-python's Identity reads only the deprecated
    .1.1): it passes for its issuer and for no other."""
    leaf = sigstore.leaf(SUBJECT, ISSUER, issuer_v1=False)
    bundle = sigstore.bundle(leaf, IMAGE, DIGEST)
    assert signed(rule(sigstore), bundle) == f"{SUBJECT} (issuer {ISSUER})"
    other = rule(sigstore, (SUBJECT, "https://other-issuer.example.com"))
    assert f"signed by {SUBJECT} (issuer {ISSUER}), none of" in refusal(other, bundle)


def test_a_certificate_not_valid_at_the_logs_integrated_time_is_refused(
    sigstore: SigstoreInstance,
) -> None:
    """The log says it saw the signature an hour after the 10-minute certificate expired
    (the SET is genuine): the chain is not valid at that time."""
    leaf = sigstore.leaf(SUBJECT, ISSUER)
    late = leaf.cert.not_valid_after_utc + timedelta(hours=1)
    early = leaf.cert.not_valid_before_utc - timedelta(hours=1)
    for when in (late, early):
        bundle = sigstore.bundle(leaf, IMAGE, DIGEST, integrated=when)
        assert "not valid at validation time" in refusal(rule(sigstore), bundle)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _flip(b64: str) -> str:
    data = bytearray(base64.b64decode(b64))
    data[len(data) // 2] ^= 0x01
    return _b64(bytes(data))


def _flip_note_signature(note: str) -> str:
    """The checkpoint's last line is `— <origin> base64(key hint + signature)`."""
    head, _, sig = note.rstrip("\n").rpartition(" ")
    return f"{head} {_flip(sig)}\n"


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["verificationMaterial"]["tlogEntries"][0]  # type: ignore[no-any-return]


# what each tampering does to the log entry, and what the refusal then says
TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "the proof's sibling hash": (
        lambda e: e["inclusionProof"].update(hashes=[_flip(e["inclusionProof"]["hashes"][0])]),
        "inclusion proof contains invalid root hash",
    ),
    "the proof's root hash": (
        lambda e: e["inclusionProof"].update(rootHash=_flip(e["inclusionProof"]["rootHash"])),
        "inclusion proof contains invalid root hash",
    ),
    "the checkpoint's signature": (
        lambda e: e["inclusionProof"]["checkpoint"].update(
            envelope=_flip_note_signature(e["inclusionProof"]["checkpoint"]["envelope"])
        ),
        "checkpoint: invalid signature",
    ),
    "the signed entry timestamp": (
        lambda e: e["inclusionPromise"].update(
            signedEntryTimestamp=_flip(e["inclusionPromise"]["signedEntryTimestamp"])
        ),
        "SET: invalid inclusion promise",
    ),
    "the integrated time": (
        lambda e: e.update(integratedTime=str(int(e["integratedTime"]) + 60)),
        "SET: invalid inclusion promise",
    ),
    "the log index": (lambda e: e.update(logIndex="1"), "SET: invalid inclusion promise"),
}


@pytest.mark.parametrize("what", sorted(TAMPERINGS))
def test_a_tampered_log_entry_is_refused(sigstore: SigstoreInstance, what: str) -> None:
    bundle = sigstore.bundle(sigstore.leaf(SUBJECT, ISSUER), IMAGE, DIGEST)
    assert signed(rule(sigstore), bundle)  # untampered, it passes
    tamper, says = TAMPERINGS[what]
    tamper(_entry(bundle))
    assert says in refusal(rule(sigstore), bundle)


def test_an_envelope_swapped_under_a_genuine_log_entry_is_refused(
    sigstore: SigstoreInstance,
) -> None:
    """The log entry of one signature, the envelope of another by the same certificate:
    the entry's payload hash no longer matches (CVE-2022-36056's shape)."""
    leaf = sigstore.leaf(SUBJECT, ISSUER)
    a = sigstore.bundle(leaf, IMAGE, DIGEST)
    b = sigstore.bundle(leaf, IMAGE, "sha256:" + "cd" * 32)
    a["dsseEnvelope"] = b["dsseEnvelope"]
    assert "payload hash does not match" in refusal(rule(sigstore), a)


def test_other_cas_ct_logs_and_transparency_logs_are_not_trusted(
    sigstore: SigstoreInstance,
) -> None:
    stranger = SigstoreInstance()  # its own CA, CT log and log keys
    same_ca = SigstoreInstance(
        root_key=sigstore.root_key, intermediate_key=sigstore.intermediate_key
    )  # our CA's keys, another CT log and log
    cases = {
        "another CA": (
            stranger.bundle(stranger.leaf(SUBJECT, ISSUER), IMAGE, DIGEST),
            "failed to build timestamp certificate chain",
        ),
        "an SCT from an unknown CT log": (
            sigstore.bundle(same_ca.leaf(SUBJECT, ISSUER), IMAGE, DIGEST),
            "failed to verify SCT",
        ),
        "an unknown transparency log": (
            same_ca.bundle(sigstore.leaf(SUBJECT, ISSUER), IMAGE, DIGEST),
            "checkpoint: invalid signature",
        ),
    }
    for what, (bundle, says) in cases.items():
        assert says in refusal(rule(sigstore), bundle), what
        assert signed(rule(sigstore, root=_trusting(what, sigstore, stranger, same_ca)), bundle), (
            what
        )


def _trusting(
    what: str, ours: SigstoreInstance, stranger: SigstoreInstance, same_ca: SigstoreInstance
) -> dict[str, Any]:
    """The root that would accept the case: proof that each refusal above is about the one
    component that is not trusted."""
    if what == "another CA":
        return stranger.trusted_root()
    part = "ctlogs" if "CT log" in what else "tlogs"
    return {**ours.trusted_root(), part: same_ca.trusted_root()[part]}


def test_a_keyless_bundle_needs_the_root_and_identities_else_trust_is_invalid(
    sigstore: SigstoreInstance,
) -> None:
    bundle = raw(sigstore.bundle(sigstore.leaf(SUBJECT, ISSUER), IMAGE, DIGEST))
    root = json.dumps(sigstore.trusted_root())
    no_tlog = json.dumps({**sigstore.trusted_root(), "tlogs": []})
    for kwargs in (
        {"trusted_root_json": None, "identities": (Identity(SUBJECT, ISSUER),)},
        {"trusted_root_json": root, "identities": ()},
        {"trusted_root_json": "{not json", "identities": (Identity(SUBJECT, ISSUER),)},
        {"trusted_root_json": no_tlog, "identities": (Identity(SUBJECT, ISSUER),)},
    ):
        with pytest.raises(SupplyChainError) as err:
            verify_bundle(bundle, (), **kwargs)
        assert isinstance(err.value, TrustConfigError), (kwargs, err.value)
