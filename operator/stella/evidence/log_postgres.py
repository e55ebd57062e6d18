"""The external log in PostgreSQL: an append-only table, written by an INSERT+SELECT role.

Schema (created by :func:`install`, idempotent)::

    stella.evidence_log(id bigserial, environment text, seq bigint, packet_id text UNIQUE,
                        digest text, prev_digest text, kind text, envelope jsonb,
                        recorded_at timestamptz, inserted_at timestamptz default now(),
                        UNIQUE (environment, seq))

* ``environment`` is the chain (an environment name, or ``_cluster``).
* BEFORE UPDATE OR DELETE (row) and BEFORE TRUNCATE (statement) triggers raise, so not even
  the table's owner can change or remove a row without first disabling a trigger (which
  needs the owner, a NOLOGIN role, or a superuser — and `stella evidence verify` finds
  whatever they changed).
* A BEFORE INSERT trigger checks the chain link: sequence 1 has no previous digest; any
  other sequence must name the digest of the row before it. Together with
  UNIQUE(environment, seq) this is the optimistic concurrency of the chain head: of two
  writers racing for the same next sequence, one wins and the other gets ChainConflict.
* The writer role has USAGE on the schema, SELECT and INSERT on the table, USAGE on its
  id sequence, and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from stella.evidence.errors import ChainConflict, DuplicatePacket, LogUnavailable
from stella.evidence.records import LogEntry

log = logging.getLogger("stella.evidence")

SCHEMA = "stella"
TABLE = "evidence_log"
APPEND_ONLY_SQLSTATE = "SA001"
CHAIN_LINK_SQLSTATE = "SC001"

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner};
CREATE TABLE IF NOT EXISTS {table} (
    id          bigserial PRIMARY KEY,
    environment text        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq >= 1),
    packet_id   text        NOT NULL,
    digest      text        NOT NULL,
    prev_digest text,
    kind        text        NOT NULL,
    envelope    jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT evidence_log_packet_id_key UNIQUE (packet_id),
    CONSTRAINT evidence_log_chain_seq_key UNIQUE (environment, seq)
);
ALTER TABLE {table} OWNER TO {owner};

CREATE OR REPLACE FUNCTION {schema}.evidence_log_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evidence_log is append-only: % refused', TG_OP
        USING ERRCODE = 'SA001';
END $$;

CREATE OR REPLACE FUNCTION {schema}.evidence_log_link() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq = 1 THEN
        IF NEW.prev_digest IS NOT NULL THEN
            RAISE EXCEPTION 'chain %: packet 1 names a previous packet', NEW.environment
                USING ERRCODE = 'SC001';
        END IF;
    ELSIF NOT EXISTS (
        SELECT 1 FROM {table}
        WHERE environment = NEW.environment AND seq = NEW.seq - 1
          AND digest = NEW.prev_digest
    ) THEN
        RAISE EXCEPTION 'chain %: packet % does not link to the head', NEW.environment, NEW.seq
            USING ERRCODE = 'SC001';
    END IF;
    RETURN NEW;
END $$;
ALTER FUNCTION {schema}.evidence_log_refuse() OWNER TO {owner};
ALTER FUNCTION {schema}.evidence_log_link() OWNER TO {owner};

CREATE OR REPLACE TRIGGER evidence_log_no_update_delete
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {schema}.evidence_log_refuse();
CREATE OR REPLACE TRIGGER evidence_log_no_truncate
    BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.evidence_log_refuse();
CREATE OR REPLACE TRIGGER evidence_log_chain_link
    BEFORE INSERT ON {table}
    FOR EACH ROW EXECUTE FUNCTION {schema}.evidence_log_link();

REVOKE ALL ON {table} FROM PUBLIC;
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {writer};
GRANT SELECT, INSERT ON {table} TO {writer};
GRANT USAGE ON SEQUENCE {sequence} TO {writer};
"""


def install(
    dsn_admin: str,
    *,
    writer_role: str = "stella_evidence_writer",
    writer_password: str | None = None,
    owner_role: str = "stella_evidence_owner",
    schema: str = SCHEMA,
    reader_role: str | None = None,
    reader_password: str | None = None,
) -> None:
    """Create (or bring up to date) the roles, schema, table, triggers and grants.

    Run once at install time with an administrator's DSN; the operator then connects as
    ``writer_role``. ``writer_password`` sets (or resets) the writer's password.
    ``reader_role`` (optional) is a LOGIN role with SELECT only, for auditors running
    ``stella evidence verify``; ``reader_password`` sets its password.
    """
    ident = {
        "schema": sql.Identifier(schema),
        "table": sql.Identifier(schema, TABLE),
        "sequence": sql.Identifier(schema, f"{TABLE}_id_seq"),
        "owner": sql.Identifier(owner_role),
        "writer": sql.Identifier(writer_role),
    }
    try:
        with (
            psycopg.connect(dsn_admin, autocommit=True, connect_timeout=5) as conn,
            conn.transaction(),
        ):
            # Serialize concurrent installs (CREATE ... IF NOT EXISTS is not atomic).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('stella.evidence.install'))")
            roles: list[tuple[str, bool]] = [(owner_role, False), (writer_role, True)]
            if reader_role:
                roles.append((reader_role, True))
            for role, login in roles:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                if not exists:
                    conn.execute(
                        sql.SQL("CREATE ROLE {} {}").format(
                            sql.Identifier(role), sql.SQL("LOGIN" if login else "NOLOGIN")
                        )
                    )
            passwords = [(writer_role, writer_password), (reader_role, reader_password)]
            for who, password in passwords:
                if who and password is not None:
                    conn.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            sql.Identifier(who), sql.Literal(password)
                        )
                    )
            conn.execute(sql.SQL(_DDL).format(**ident))
            if reader_role:
                conn.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}; GRANT SELECT ON {} TO {}").format(
                        ident["schema"],
                        sql.Identifier(reader_role),
                        ident["table"],
                        sql.Identifier(reader_role),
                    )
                )
    except psycopg.OperationalError as exc:
        raise LogUnavailable(f"cannot install the evidence log: {_safe(exc)}") from exc


# What a person does about the PostgreSQL errors a reader or writer of the log meets.
_BY_SQLSTATE = {
    "28P01": "password authentication failed; set PGPASSWORD (or ~/.pgpass) for this role",
    "28000": "the server refused this role (pg_hba.conf or a role without LOGIN)",
    "3D000": "the database does not exist; check the database name in the URL",
    "42P01": "the log table does not exist; create it with `stella evidence install-log`",
    "3F000": "the log's schema does not exist; create it with `stella evidence install-log`",
    "42501": "permission denied: this role may not use the log table (install-log creates "
    "the writer role, and with --reader-role a role that may read it)",
    "57P03": "the server is starting up or shutting down; retry in a moment",
}
_BY_TEXT = (  # libpq's connection failures carry no SQLSTATE, only text
    # TLS first: a missing CA file also "does not exist", a plain refusal is a pg_hba one.
    (
        "certificate verify failed",
        "the server's TLS certificate is not signed by the CA given as sslrootcert "
        "(PGSSLROOTCERT): give the CA that issued it",
    ),
    (
        "does not match host name",
        "the server's TLS certificate does not name this host: connect by a name or address "
        "its certificate lists",
    ),
    (
        "root certificate file",
        "the CA file named by sslrootcert (PGSSLROOTCERT) does not exist or cannot be read",
    ),
    (
        "server does not support ssl",
        "the server does not offer TLS, and sslmode requires it: turn on ssl in postgresql.conf",
    ),
    (
        "no encryption",
        "the server accepts only TLS connections: connect with sslmode=verify-full and "
        "sslrootcert=<its CA> (or PGSSLMODE/PGSSLROOTCERT)",
    ),
    ("password authentication failed", _BY_SQLSTATE["28P01"]),
    ("no pg_hba.conf entry", _BY_SQLSTATE["28000"]),
    ("database system is", _BY_SQLSTATE["57P03"]),
    ('database "', _BY_SQLSTATE["3D000"]),  # database "x" does not exist
    ("connection refused", "connection refused: is PostgreSQL running and listening there?"),
    ("timeout expired", "the connection timed out: is the host reachable?"),
    ("timed out", "the connection timed out: is the host reachable?"),
    ("could not translate host name", "unknown host name"),
    ("name or service not known", "unknown host name"),
    ("name resolution", "unknown host name"),
    ("no password supplied", "no password: set PGPASSWORD (or ~/.pgpass) for this role"),
    ("does not exist", "the role does not exist; check the user in the URL"),
)


def _safe(exc: Exception) -> str:
    """What went wrong, for a person, without the DSN (which may hold a password): a
    known SQLSTATE or libpq failure in words, else only the error's type."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state and state in _BY_SQLSTATE:
            return _BY_SQLSTATE[state]
        text = str(exc).lower()
        for needle, words in _BY_TEXT:
            if needle in text:
                return words
        return type(exc).__name__ + (f" ({state})" if state else "")
    return type(exc).__name__


def unverified_tls(conn: psycopg.Connection[Any]) -> str | None:
    """None when the connection is TLS checked against a CA and the host name
    (sslmode=verify-full, as libpq resolved it from the URL and PG* variables); else what
    it is, e.g. "sslmode=prefer, TLS on"."""
    options = {o.keyword.decode(): (o.val or b"").decode() for o in conn.pgconn.info}
    mode = options.get("sslmode") or "prefer"
    in_use = conn.pgconn.ssl_in_use
    if mode == "verify-full" and in_use:
        return None
    return f"sslmode={mode}, TLS {'on' if in_use else 'off'}"


def where(dsn: str) -> str:
    """`user@host:port/db` of a DSN, never its password (for messages)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "PostgreSQL"
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host") or "localhost"
    return f"{user}{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def locator(dsn: str) -> str:
    """``postgresql://host:port/db`` of a DSN: where the log is, for anyone to read with
    their own user and password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgresql://localhost:5432/"
    host = info.get("host") or "localhost"
    return f"postgresql://{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


_COLUMNS = "id, environment, seq, packet_id, digest, prev_digest, kind, recorded_at, envelope"


def _entry(row: tuple[Any, ...]) -> LogEntry:
    rid, chain, seq, pid, digest, prev, kind, recorded_at, envelope = row
    assert isinstance(recorded_at, datetime)
    return LogEntry(
        chain=chain,
        sequence=int(seq),
        packet_id=pid,
        digest=digest,
        previous_digest=prev,
        kind=kind,
        recorded_at=recorded_at,
        envelope=dict(envelope),
        row=int(rid),
    )


class PostgresLog:
    """The writer's view of the log. Thread-safe; reconnects after the server returns."""

    def __init__(self, dsn: str, *, schema: str = SCHEMA, connect_timeout: int = 3) -> None:
        self._dsn = dsn
        self._table = sql.Identifier(schema, TABLE)
        self._timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def locator(self) -> str:
        """``postgresql://host:port/db``: no user (the writer's is not the reader's), no
        password."""
        return locator(self._dsn)

    def __repr__(self) -> str:  # never the DSN: it may carry a password
        return f"PostgresLog(table={self._table.as_string(None)})"

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
            weak = unverified_tls(self._conn)
            if weak is not None and not self._warned:
                self._warned = True
                log.warning(
                    "evidence log (PostgreSQL) at %s is reached without verified TLS (%s): "
                    "anyone between here and the database could read or alter what is "
                    "written; set sslmode=verify-full and sslrootcert (PGSSLMODE, "
                    "PGSSLROOTCERT; the chart's evidence.logCA), see docs/data-at-rest.md",
                    where(self._dsn),
                    weak,
                )
        return self._conn

    def _run(
        self, what: str, query: sql.Composed, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                cur = self._connection().execute(query, params)
                return cur.fetchall() if cur.description else []
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise LogUnavailable(
                    f"evidence log (PostgreSQL) unavailable: cannot {what} at "
                    f"{where(self._dsn)}: {_safe(exc)}",
                    retry_after=2,
                ) from exc
            except psycopg.Error as exc:
                if what == "append":
                    raise  # append() tells its conflicts apart
                raise LogUnavailable(
                    f"evidence log (PostgreSQL): cannot {what} at {where(self._dsn)}: {_safe(exc)}",
                    retry_after=2,
                ) from exc

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def head(self, chain: str) -> LogEntry | None:
        rows = self._run(
            "read the chain head",
            sql.SQL("SELECT {} FROM {} WHERE environment = %s ORDER BY seq DESC LIMIT 1").format(
                sql.SQL(_COLUMNS), self._table
            ),
            (chain,),
        )
        return _entry(rows[0]) if rows else None

    def find(self, packet_id: str) -> LogEntry | None:
        rows = self._run(
            "look up a packet",
            sql.SQL("SELECT {} FROM {} WHERE packet_id = %s ORDER BY id LIMIT 1").format(
                sql.SQL(_COLUMNS), self._table
            ),
            (packet_id,),
        )
        return _entry(rows[0]) if rows else None

    def entries(self, chain: str | None = None) -> list[LogEntry]:
        where = sql.SQL("WHERE environment = %s") if chain is not None else sql.SQL("")
        rows = self._run(
            "read the log",
            sql.SQL("SELECT {} FROM {} {} ORDER BY environment, seq, id").format(
                sql.SQL(_COLUMNS), self._table, where
            ),
            (chain,) if chain is not None else (),
        )
        return [_entry(r) for r in rows]

    def append(self, entry: LogEntry) -> None:
        query = sql.SQL(
            "INSERT INTO {} (environment, seq, packet_id, digest, prev_digest, kind, envelope,"
            " recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(self._table)
        params = (
            entry.chain,
            entry.sequence,
            entry.packet_id,
            entry.digest,
            entry.previous_digest,
            entry.kind,
            Jsonb(entry.envelope),
            entry.recorded_at,
        )
        try:
            self._run("append", query, params)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "evidence_log_packet_id_key":
                raise DuplicatePacket(f"packet {entry.packet_id} is already logged") from exc
            raise ChainConflict(
                f"chain {entry.chain}: sequence {entry.sequence} was taken by another writer"
            ) from exc
        except psycopg.Error as exc:
            if exc.sqlstate == CHAIN_LINK_SQLSTATE:
                raise ChainConflict(
                    f"chain {entry.chain}: packet {entry.sequence} does not link to the head"
                ) from exc
            raise LogUnavailable(f"evidence log refused the append: {_safe(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()
