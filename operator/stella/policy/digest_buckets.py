"""How the parameter of the workload-digests ValidatingAdmissionPolicy lists approved
digests (charts/stella/files/admission-policies.yaml): written by the operator
(stella-approved-digests, admission/workloads.py) and by `stella passport params`
(stella-passport-digests, supplychain/admission_params.py).

The API server looks a Pod's digest up in that list for every Pod, with CEL's `contains`,
and CEL also measures the string's size for its cost budget: both scan the whole string.
One string of 1,000 digests (72 KB) cost 0.37 ms of API server CPU per Pod, an eighth of
all it spends on one (bench/bench_webhooks.py --profile). So the digests are split into
16 keys by the first hex digit, `digests.0` .. `digests.f`, and the policy reads only the
key of the digest it checks: a sixteenth of the scan, with few keys to convert (one key
per digest cost the API server more than the one string: converting the map).
Each value holds `sha256:<64 hex>` one a line; a 64-hex digest cannot match across a line
break, so `contains` is exact.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = "digests."


def bucket_key(digest: str) -> str:
    """The key that holds `digest` (`sha256:<64 hex>`): digests.<its first hex digit>."""
    return PREFIX + digest.rpartition(":")[2][:1]


def digest_buckets(digests: Iterable[str]) -> dict[str, str]:
    """{digests.<h>: the digests starting with hex digit h, sorted, one a line}; only the
    keys that hold one (no key: none approved there)."""
    out: dict[str, list[str]] = {}
    for d in sorted(set(digests)):
        out.setdefault(bucket_key(d), []).append(d)
    return {k: "\n".join(v) for k, v in sorted(out.items())}


def approved_digests(data: dict[str, str]) -> list[str]:
    """Every digest a parameter's data lists (the inverse of digest_buckets), sorted."""
    return sorted(
        line
        for key, value in data.items()
        if key.startswith(PREFIX)
        for line in value.splitlines()
        if line
    )
