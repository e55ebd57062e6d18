from __future__ import annotations

from collections.abc import Iterable

from stella.evidence.chain import Link, check_chain, next_link
from stella.evidence.findings import Finding


def _links(n: int, chain: str = "prod") -> list[Link]:
    out, prev = [], None
    for seq in range(1, n + 1):
        digest = f"sha256:{seq:064x}"
        out.append(Link(chain, seq, digest, prev, f"cm-{chain}-{seq}"))
        prev = digest
    return out


def codes(findings: Iterable[Finding]) -> list[str]:
    return sorted(f.code for f in findings)


def test_next_link() -> None:
    assert next_link(None, None) == (1, None)
    assert next_link(4, "sha256:x") == (5, "sha256:x")


def test_linear_chain_is_clean() -> None:
    assert check_chain(_links(5) + _links(3, "dev"), where="log") == []


def test_gap_is_named() -> None:
    links = _links(6)
    del links[2:4]  # 3 and 4
    findings = check_chain(links, where="ConfigMaps")
    assert "chain-gap" in codes(findings)
    gap = next(f for f in findings if f.code == "chain-gap")
    assert "3..4" in gap.message and "prod" in gap.message


def test_missing_first_is_a_gap() -> None:
    assert "chain-gap" in codes(check_chain(_links(3)[1:], where="log"))
    # unless we look at a window that starts later
    assert check_chain(_links(3)[1:], where="log", complete=False) == []


def test_broken_link_and_fork() -> None:
    links = _links(4)
    links[2] = Link("prod", 3, links[2].digest, "sha256:" + "f" * 64, "cm-prod-3")
    assert codes(check_chain(links, where="log")) == ["chain-broken-link"]
    forked = [*_links(3), Link("prod", 3, "sha256:" + "e" * 64, _links(3)[1].digest, "x")]
    assert "chain-fork" in codes(check_chain(forked, where="log"))


def test_first_packet_must_not_name_a_previous() -> None:
    links = [Link("prod", 1, "sha256:" + "1" * 64, "sha256:" + "0" * 64, "cm")]
    assert codes(check_chain(links, where="log")) == ["chain-broken-link"]
