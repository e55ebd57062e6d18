"""The PostgreSQL log's failures in words a person can act on, never the DSN's password
and never a bare exception name where the cause is known."""

from __future__ import annotations

import psycopg
import pytest

from stella.evidence.log_postgres import _safe, where


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (psycopg.errors.lookup("28P01")("auth"), "password authentication failed; set PGPASSWORD"),
        (psycopg.errors.lookup("42P01")("no table"), "stella evidence install-log"),
        (psycopg.errors.lookup("42501")("denied"), "permission denied"),
        (psycopg.errors.lookup("3D000")("no db"), "the database does not exist"),
        (
            psycopg.OperationalError(
                'connection to server at "10.0.0.1", port 5432 failed: Connection refused'
            ),
            "connection refused: is PostgreSQL running",
        ),
        (
            psycopg.OperationalError(
                'failed to resolve host "db.invalid": [Errno -2] Name or service not known'
            ),
            "unknown host name",
        ),
        (psycopg.OperationalError('FATAL:  database "nope" does not exist'), "database does not"),
        (psycopg.OperationalError("FATAL:  the database system is starting up"), "starting up"),
        (psycopg.OperationalError('FATAL:  role "x" does not exist'), "the role does not"),
        (psycopg.OperationalError("something new"), "OperationalError"),
    ],
)
def test_failures_in_words(exc: Exception, says: str) -> None:
    assert says in _safe(exc)


def test_where_never_shows_the_password() -> None:
    assert where("postgresql://reader:s3cret@db.example.com:6432/stella") == (
        "reader@db.example.com:6432/stella"
    )
    assert "s3cret" not in where("host=db user=reader password=s3cret dbname=stella")
    assert where("postgresql://db/stella") == "db:5432/stella"
