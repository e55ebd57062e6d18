"""`stella evidence verify --jobs N` on a bundle large enough to start workers: the same
JSON report, finding for finding, as `--jobs 1`, with tampering scattered through it, in
threads (--jobs 2, with the thread layout chosen) and in worker processes (--jobs 2 as
verify chooses it, and --jobs 3)."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from tests.integration.evidence.helpers import Clock, event

from stella.cli import build_parser
from stella.evidence import verify_parallel
from stella.evidence.bundle import write_bundle
from stella.evidence.dsse import parse_envelope, sign_envelope
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify_parallel import PARALLEL_MIN, layout_for
from stella.secrets.signers import LocalKeySigner

PACKETS = PARALLEL_MIN + 400  # over the threshold: --jobs 2 and more start workers


def run(*argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(["evidence", *argv])
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


def cm(seq: int, env: str = "prod") -> str:
    return f"stella-evidence-env-{env}-{seq:010d}"


def test_jobs_report_the_same_findings_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = LocalKeySigner(tmp_path / "evidence.pem")
    log, store = MemoryLog(), MemoryStore()
    rec = Recorder(signer, log, store, "0.1.0", clock=Clock())
    for n in range(PACKETS):
        rec.record(event(env=("prod", "staging")[n % 2], n=n))
    (tmp_path / "pinned.pem").write_text(next(iter(store.published_keys().values())))

    # a flipped signature, early; a re-signature under a published foreign key, late
    env = parse_envelope(store.packets[cm(40)].envelope_json)
    sig = bytearray(base64.b64decode(env.signatures[0].sig))
    sig[10] ^= 0xFF
    flipped = env.model_copy(
        update={
            "signatures": [
                env.signatures[0].model_copy(update={"sig": base64.b64encode(sig).decode()})
            ]
        }
    )
    store.packets[cm(40)] = replace(
        store.packets[cm(40)], envelope_json=flipped.canonical().decode()
    )
    foreign = LocalKeySigner(tmp_path / "foreign.pem")
    store.publish_keys(foreign.public_keys())
    env = parse_envelope(store.packets[cm(1100)].envelope_json)
    resigned = sign_envelope(env.payload_bytes(), foreign).canonical().decode()
    store.packets[cm(1100)] = replace(store.packets[cm(1100)], envelope_json=resigned)
    # two ConfigMaps swapped, and one log row gone, mid-chain
    a, b = store.packets[cm(600, "staging")], store.packets[cm(601, "staging")]
    store.packets[a.name] = replace(a, envelope_json=b.envelope_json)
    store.packets[b.name] = replace(b, envelope_json=a.envelope_json)
    log.rows = [e for e in log.rows if (e.chain, e.sequence) != ("prod", 900)]

    bundle = tmp_path / "bundle.json"
    write_bundle(
        bundle,
        keys=store.published_keys(),
        configmaps=store.list(),
        log=log.entries(),
        namespace="stella-system",
    )
    common = ("verify", "--bundle", str(bundle), "--trusted-keys", str(tmp_path / "pinned.pem"))
    code1, out1 = run(*common, "-o", "json", "--jobs", "1")
    code2, out2 = run(*common, "-o", "json", "--jobs", "2")
    code3, out3 = run(*common, "-o", "json", "--jobs", "3")
    assert layout_for(PACKETS, 2) == (2, 1) and layout_for(PACKETS, 3) == (3, 1)
    with monkeypatch.context() as m:
        m.setattr(verify_parallel, "THREADS_MAX", 2)
        assert layout_for(PACKETS, 2) == (1, 2)
        code_t, out_t = run(*common, "-o", "json", "--jobs", "2")
    assert (code1, code2, code3, code_t) == (1, 1, 1, 1)
    one, two, three = json.loads(out1), json.loads(out2), json.loads(out3)
    assert two == one and three == one and json.loads(out_t) == one
    found = {(f["code"], f["item"]) for f in two["findings"]}
    assert {
        ("signature-invalid", f"ConfigMap {cm(40)}"),
        ("untrusted-key", f"ConfigMap {cm(1100)}"),
        ("configmap-name-mismatch", f"ConfigMap {cm(600, 'staging')}"),
        ("configmap-name-mismatch", f"ConfigMap {cm(601, 'staging')}"),
        ("log-entry-missing", f"ConfigMap {cm(900)}"),
        ("chain-gap", "log:prod#900"),
    } <= found
    assert two["signatures"] == PACKETS + 1  # every packet once, and the foreign re-signature
