"""The console's evidence pages: the chains with their verification, a Release's packets
with theirs, DORA's figures, and the refusals. Pure: the reading and the checks are done
by the caller (stella.web.kube with the person's token, stella.web.evidence)."""

from __future__ import annotations

from collections.abc import Sequence

from stella.evidence.dora import Dora
from stella.web.evidence import Checked, ReleaseEvidence
from stella.web.pictures import dora_charts
from stella.web.render import esc, table


def release_evidence(entries: Sequence[ReleaseEvidence] | None) -> str:
    """A Release's evidence packets, each with its verification state (signature and chain
    link, checked on the spot from the ConfigMaps read with the person's token)."""
    if entries is None:
        return (
            '<h2>Evidence</h2><p class="hint" id="release-evidence">Reading evidence needs '
            "the auditor's Role (stella-evidence-reader).</p>"
        )
    if not entries:
        return '<h2>Evidence</h2><p class="empty" id="release-evidence">No evidence yet.</p>'
    rows = [
        [
            esc(e.chain),
            str(e.row.sequence),
            esc(e.row.kind),
            f"<time>{esc(e.row.recorded)}</time>",
            (
                '<span class="phase bad">FAILED</span> '
                + esc("; ".join(f"{f.code}: {f.message}" for f in e.findings))
                if e.findings
                else '<span class="phase ok">verified</span>'
            ),
        ]
        for e in entries
    ]
    failed = sum(1 for e in entries if e.findings)
    summary = (
        f'<p class="notice bad" role="alert">{failed} of {len(entries)} packets do not verify.</p>'
        if failed
        else f'<p class="notice ok">All {len(entries)} packets verify (signatures and chain '
        "links; the external log is compared by <code>stella evidence verify</code>).</p>"
    )
    return (
        '<h2>Evidence</h2><div id="release-evidence">'
        + summary
        + table(["Chain", "#", "Kind", "Recorded", "Verification"], rows, "chain")
        + "</div>"
    )


def dora_page(checked: Checked, rows: Sequence[Dora], namespace: str) -> str:
    """DORA's four keys per Environment, only from evidence that verifies."""
    if not checked.ok:
        return (
            f'<p class="notice bad" role="alert" id="dora-refused">The evidence in '
            f"{esc(namespace)} does not verify ({len(checked.findings)} findings): DORA "
            'figures are computed only from evidence that verifies. See <a href="/evidence">'
            "Evidence</a>.</p>"
        )
    return (
        '<p class="hint">From the signed evidence in '
        f"{esc(namespace)}, read with your token and verified (signatures, chains); the same "
        "figures as <code>stella dora</code>, which also compares the external log.</p>"
        + dora_charts(rows)
    )


def evidence_page(checked: Checked, namespace: str) -> str:
    if checked.ok:
        verdict = (
            f'<p class="notice ok" id="verified">Verified: {checked.signatures} signatures and '
            f"{len(checked.chains)} hash chains of the evidence ConfigMaps in "
            f"{esc(namespace)} hold.</p>"
        )
    else:
        verdict = (
            f'<p class="notice bad" id="verified" role="alert">Verification FAILED: '
            f"{len(checked.findings)} findings.</p><ul class=findings>"
            + "".join(f"<li>{esc(f)}</li>" for f in checked.findings)
            + "</ul>"
        )
    verdict += (
        '<p class="hint">The console reads the ConfigMaps with your own token. The external '
        "append-only log is compared with them by <code>stella evidence verify</code>, not "
        "here.</p>"
    )
    out = [verdict]
    for chain in sorted(checked.chains):
        rows = checked.chains[chain]
        out.append(
            f'<h2>Chain {esc(chain)} <a class="export" href="/evidence/export?chain={esc(chain)}">'
            "export</a></h2>"
            + table(
                ["#", "Kind", "Release", "Recorded", "Digest"],
                [
                    [
                        str(r.sequence),
                        esc(r.kind),
                        esc(r.release or "—"),
                        f"<time>{esc(r.recorded)}</time>",
                        f"<code>{esc(r.digest[:23])}…</code>",
                    ]
                    for r in rows
                ],
                "chain",
            )
        )
    if not checked.chains:
        out.append('<p class="empty">No evidence yet.</p>')
    return "".join(out)


def evidence_forbidden_page(namespace: str) -> str:
    return (
        f'<p class="notice warn" id="forbidden">You may not read Stella\'s evidence in '
        f"{esc(namespace)}: that needs the auditor's Role there (stella-evidence-reader; the "
        "chart binds it to groups.auditors).</p>"
    )


def too_large_page(reason: str) -> str:
    return (
        f'<p class="notice bad" role="alert" id="too-large">Export refused: {esc(reason)}. '
        "Export one chain at a time, or use <code>stella evidence export</code>.</p>"
    )


def quota_page(limit: int, retry_after: float) -> str:
    return (
        f'<p class="notice bad" role="alert" id="quota">Export refused: you have made '
        f"{limit} evidence exports in the last hour, the most one person may. Try again in "
        f"{int(retry_after)} s, or use <code>stella evidence export</code> with your own "
        "credentials.</p>"
    )
