"""Hash chains, pure: each chain's packets carry sequence 1, 2, 3, ... and the digest of
the packet before them (None for the first)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from stella.evidence.findings import Finding


class Link(NamedTuple):  # a tuple: verify builds two per packet
    chain: str
    sequence: int
    digest: str
    previous_digest: str | None
    item: str  # how a finding names it: a ConfigMap name or a log row


def next_link(head_sequence: int | None, head_digest: str | None) -> tuple[int, str | None]:
    """The sequence and previous digest of the packet that follows the head."""
    if head_sequence is None:
        return 1, None
    return head_sequence + 1, head_digest


def check_chain(links: Iterable[Link], *, where: str, complete: bool = True) -> list[Finding]:
    """Every problem in one store's links of one or more chains.

    ``complete`` means the links start at sequence 1; otherwise (a ``--since`` window) the
    first link present is taken as the start and only what follows it is checked.
    """
    by_chain: dict[str, dict[int, list[Link]]] = defaultdict(lambda: defaultdict(list))
    for link in links:
        by_chain[link.chain][link.sequence].append(link)
    findings: list[Finding] = []
    for chain, by_seq in sorted(by_chain.items()):
        seqs = sorted(by_seq)
        start = 1 if complete else seqs[0]
        expected = start
        for seq in seqs:
            if seq < 1:
                findings.append(
                    Finding(
                        "chain-bad-sequence",
                        by_seq[seq][0].item,
                        f"{where}: chain {chain} has sequence {seq} (< 1)",
                    )
                )
                continue
            if seq > expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                findings.append(
                    Finding(
                        "chain-gap",
                        f"{where}:{chain}#{missing}",
                        f"{where}: chain {chain} is missing sequence {missing}",
                    )
                )
            expected = seq + 1
            here = by_seq[seq]
            if len(here) > 1 and len({link.digest for link in here}) > 1:
                findings.append(
                    Finding(
                        "chain-fork",
                        ", ".join(sorted(link.item for link in here)),
                        f"{where}: chain {chain} has {len(here)} different packets "
                        f"at sequence {seq}",
                    )
                )
            for link in here:
                if seq == 1:
                    if link.previous_digest is not None:
                        findings.append(
                            Finding(
                                "chain-broken-link",
                                link.item,
                                f"{where}: first packet of chain {chain} names a previous packet",
                            )
                        )
                    continue
                before = by_seq.get(seq - 1)
                if not before:
                    if link.previous_digest is None:
                        findings.append(
                            Finding(
                                "chain-broken-link",
                                link.item,
                                f"{where}: packet {seq} of chain {chain} names no previous packet",
                            )
                        )
                    continue  # the gap is reported above (or lies before the window)
                if link.previous_digest == before[0].digest:
                    continue  # linked to the (first) packet before it: the common case
                if link.previous_digest not in {b.digest for b in before}:
                    findings.append(
                        Finding(
                            "chain-broken-link",
                            link.item,
                            f"{where}: packet {seq} of chain {chain} does not link to "
                            f"packet {seq - 1} (previousDigest "
                            f"{link.previous_digest} != {before[0].digest})",
                        )
                    )
    return findings
