"""The approved digests in the workload-digests policy's parameter: one key per first hex
digit, so the API server scans only the key of the digest it checks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stella.policy.digest_buckets import approved_digests, bucket_key, digest_buckets

HEX = "0123456789abcdef"
digests = st.text(HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h)


def test_a_digest_is_listed_under_its_first_hex_digit() -> None:
    a, b, a2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:a" + "0" * 63
    assert bucket_key(a) == "digests.a"
    assert digest_buckets([a, b, a2, a]) == {"digests.a": f"{a2}\n{a}", "digests.b": b}
    assert digest_buckets([]) == {}


@given(st.lists(digests, max_size=60), digests)
def test_the_policy_finds_exactly_the_listed_digests(listed: list[str], probe: str) -> None:
    """What the policy's CEL does (the key of the digest's first hex digit, then `contains`
    of its 64 hex) finds a digest exactly when it was listed, and nothing is lost."""
    data = digest_buckets(listed)
    assert approved_digests(data) == sorted(set(listed))
    hex64 = probe[-64:]
    key = "digests." + probe[-64:-63]
    found = key in data and hex64 in data[key]
    assert found == (probe in listed)
