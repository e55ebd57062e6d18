"""TLS to the evidence log (issue 15, T9): the PostgreSQL fixture serves only TLS, with a
CA and server certificate made per run, and the log connects with sslmode=verify-full
against that CA. A wrong CA, a name the certificate does not list, a missing CA file and a
plain connection are each refused before anything is written, with a message that says
what to do and never the password."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import psycopg
import pytest
from tests.integration.evidence.helpers import Clock, EvidenceDb, event

from devenv import pki
from devenv.services import Postgres
from stella.evidence.errors import LogUnavailable
from stella.evidence.log_postgres import PostgresLog
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryStore
from stella.secrets.signers import LocalKeySigner


def with_params(dsn: str, **params: str) -> str:
    """The DSN with these libpq parameters set (others kept)."""
    url = urllib.parse.urlsplit(dsn)
    query = dict(urllib.parse.parse_qsl(url.query))
    query.update(params)
    return urllib.parse.urlunsplit(url._replace(query=urllib.parse.urlencode(query)))


def test_the_log_is_reached_over_verified_tls(
    evidence_db: EvidenceDb, postgres: Postgres, tmp_path: Path
) -> None:
    assert "sslmode=verify-full" in evidence_db.writer_dsn
    recorder = Recorder(
        LocalKeySigner(tmp_path / "key.pem"),
        evidence_db.log(),
        MemoryStore(),
        "0.1.0-test",
        clock=Clock(),
    )
    recorder.record(event(n=1))
    assert len(evidence_db.log().entries()) == 1
    with psycopg.connect(evidence_db.writer_dsn) as conn:
        assert conn.pgconn.ssl_in_use
        version = conn.execute("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert (version.fetchone() or [""])[0].startswith("TLSv1.")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("wrong CA", "not signed by the CA given as sslrootcert"),
        ("wrong name", "does not name this host"),
        ("no CA file", "the CA file named by sslrootcert (PGSSLROOTCERT) does not exist"),
        ("plain", "accepts only TLS connections: connect with sslmode=verify-full"),
    ],
)
def test_a_connection_that_is_not_verified_tls_is_refused(
    evidence_db: EvidenceDb, tmp_path: Path, change: str, says: str
) -> None:
    other_ca, _ = pki.make_ca(tmp_path / "other", "not-the-postgres-ca")
    password = "writer-test-pw"
    dsn = {
        "wrong CA": with_params(evidence_db.writer_dsn, sslrootcert=str(other_ca)),
        # hostaddr is where to connect; host is the name the certificate must list.
        "wrong name": with_params(
            evidence_db.writer_dsn.replace("@127.0.0.1:", "@postgres.example:"),
            hostaddr="127.0.0.1",
        ),
        "no CA file": with_params(evidence_db.writer_dsn, sslrootcert=str(tmp_path / "none")),
        "plain": with_params(evidence_db.writer_dsn, sslmode="disable"),
    }[change]
    assert password in dsn
    before = len(evidence_db.log().entries())

    refused = PostgresLog(dsn)
    with pytest.raises(LogUnavailable) as info:
        refused.append(_entry(tmp_path))
    assert says in info.value.message, info.value.message
    assert password not in info.value.message
    with pytest.raises(LogUnavailable):
        refused.entries()
    assert len(evidence_db.log().entries()) == before  # nothing written


def _entry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A log entry the recorder would append (recorded into memory only)."""
    from stella.evidence.log_jsonl import JsonlLog

    recorder = Recorder(
        LocalKeySigner(tmp_path / "k.pem"),
        JsonlLog(tmp_path / "l.jsonl"),
        MemoryStore(),
        "0.1.0-test",
        clock=Clock(),
    )
    recorder.record(event(n=9))
    return recorder.log.entries()[0]


def test_a_log_reached_without_verified_tls_is_a_warning_once(
    evidence_db: EvidenceDb, caplog: pytest.LogCaptureFixture
) -> None:
    """sslmode=require encrypts but checks no certificate: it works (the server has TLS),
    and the log says, once, that it is not verified and what to set."""
    weak = PostgresLog(with_params(evidence_db.writer_dsn, sslmode="require"))
    with caplog.at_level("WARNING", logger="stella.evidence"):
        weak.entries()
        weak._drop()  # a reconnection warns no more
        weak.entries()
        PostgresLog(evidence_db.writer_dsn).entries()  # verify-full: nothing to say
    warned = [r.getMessage() for r in caplog.records if "without verified TLS" in r.getMessage()]
    assert len(warned) == 1
    assert "sslmode=require, TLS on" in warned[0] and "sslmode=verify-full" in warned[0]
    assert "writer-test-pw" not in warned[0]
