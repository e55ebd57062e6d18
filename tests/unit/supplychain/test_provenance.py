"""requireProvenance's logic: SLSA provenance (v1 and v0.2) in DSSE, signed by a trusted
builder key, builder id and source repository matched; the revision is what evidence gets."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.supplychain_support import BUILDER, COMMIT, REPO, KeyPair, dsse, found, provenance

from stella.supplychain.check import ProvenanceRule, check_provenance
from stella.supplychain.cosign import statement_bytes
from stella.supplychain.discovery import Attestation
from stella.supplychain.errors import (
    ProvenanceBuilderNotAllowed,
    ProvenanceMissing,
    ProvenanceSourceNotAllowed,
    ProvenanceUntrusted,
)
from stella.supplychain.provenance import (
    SLSA_V02,
    builder_allowed,
    normalize_repository,
    read_provenance,
)

DIGEST = "sha256:" + hashlib.sha256(b"the web image").hexdigest()
IMAGE = f"reg.example/shop/web@{DIGEST}"


@pytest.fixture
def builder() -> KeyPair:
    return KeyPair.generate("builder")


def rule(key: KeyPair) -> ProvenanceRule:
    return ProvenanceRule(keys=(key.trusted,), builders=(BUILDER,), source_repositories=(REPO,))


def test_good_provenance_passes_with_its_source_revision(builder: KeyPair) -> None:
    prov, signer = check_provenance(
        IMAGE, DIGEST, found(provenance(builder, DIGEST)), rule(builder)
    )
    assert (prov.builder_id, prov.source_repository, prov.source_revision) == (
        BUILDER,
        REPO,
        COMMIT,
    )
    assert signer == "builder"


def test_no_provenance_is_refused(builder: KeyPair) -> None:
    with pytest.raises(ProvenanceMissing) as err:
        check_provenance(IMAGE, DIGEST, found(), rule(builder))
    assert ".att" in err.value.message


def test_provenance_signed_by_an_untrusted_key_is_refused(builder: KeyPair) -> None:
    forged = provenance(KeyPair.generate("mallory"), DIGEST)
    with pytest.raises(ProvenanceUntrusted) as err:
        check_provenance(IMAGE, DIGEST, found(forged), rule(builder))
    assert "trusted: builder" in err.value.message


def test_the_wrong_builder_is_refused_naming_it(builder: KeyPair) -> None:
    att = provenance(builder, DIGEST, builder="https://laptop.example/alice")
    with pytest.raises(ProvenanceBuilderNotAllowed) as err:
        check_provenance(IMAGE, DIGEST, found(att), rule(builder))
    assert "https://laptop.example/alice" in err.value.message and BUILDER in err.value.message


def test_the_wrong_source_repository_is_refused_naming_it(builder: KeyPair) -> None:
    att = provenance(builder, DIGEST, repo="https://git.example.com/mallory/fork")
    with pytest.raises(ProvenanceSourceNotAllowed) as err:
        check_provenance(IMAGE, DIGEST, found(att), rule(builder))
    assert "mallory/fork" in err.value.message


def test_provenance_for_another_digest_is_missing_for_this_one(builder: KeyPair) -> None:
    other = "sha256:" + "0" * 64
    with pytest.raises(ProvenanceMissing):
        check_provenance(IMAGE, DIGEST, found(provenance(builder, other)), rule(builder))


def test_one_good_provenance_among_bad_ones_passes(builder: KeyPair) -> None:
    bad = provenance(builder, DIGEST, builder="https://other.example/b")
    good = provenance(builder, DIGEST)
    prov, _ = check_provenance(IMAGE, DIGEST, found(bad, good), rule(builder))
    assert prov.builder_id == BUILDER


def test_slsa_v02_provenance_is_read_too(builder: KeyPair) -> None:
    predicate = {
        "builder": {"id": BUILDER},
        "invocation": {
            "configSource": {"uri": f"git+{REPO}.git@refs/tags/v1", "digest": {"sha1": COMMIT}}
        },
    }
    st_ = statement_bytes("web", DIGEST, SLSA_V02, predicate)
    att = Attestation(SLSA_V02, json.dumps(dsse(builder, st_).to_dict()).encode())
    prov, _ = check_provenance(IMAGE, DIGEST, found(att), rule(builder))
    assert prov.source_repository == REPO and prov.source_revision == COMMIT


def test_provenance_without_a_builder_id_is_nothing() -> None:
    assert read_provenance(SLSA_V02, {"invocation": {}}) is None
    assert read_provenance("https://example.com/other", {"builder": {"id": "x"}}) is None


def test_builder_patterns() -> None:
    assert builder_allowed("https://ci/b@v1", ["https://ci/b@*"])
    assert not builder_allowed("https://ci/bx", ["https://ci/b"])
    assert not builder_allowed("https://ci/other@v1", ["https://ci/b@*"])


@given(
    host=st.sampled_from(["github.com", "git.example.com"]),
    path=st.from_regex(r"[a-z]{1,8}/[a-z]{1,8}", fullmatch=True),
    ref=st.sampled_from(["", "@refs/heads/main", "@v1.2.3"]),
    git=st.booleans(),
    plus=st.booleans(),
)
def test_repository_spellings_normalize_to_one(
    host: str, path: str, ref: str, git: bool, plus: bool
) -> None:
    uri = f"{'git+' if plus else ''}https://{host}/{path}{'.git' if git else ''}{ref}"
    assert normalize_repository(uri) == f"https://{host}/{path}"
