"""Fixtures for the evidence integration tests: a fresh database with the append-only log
installed, a fresh OpenBao transit key, and builders of real recorders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import hvac
import psycopg
import pytest
from tests.integration.evidence.helpers import WRITER, WRITER_PASSWORD, EvidenceDb

from stella.evidence.log_postgres import install
from stella.secrets.signers import VaultTransitSigner, ensure_transit_key


@pytest.fixture
def evidence_db(postgres) -> Iterator[EvidenceDb]:  # type: ignore[no-untyped-def]
    name = f"ev_{uuid.uuid4().hex[:10]}"
    root = postgres.dsn(password="postgres")
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = EvidenceDb(
        name=name,
        admin_dsn=postgres.dsn(password="postgres", db=name),
        writer_dsn=postgres.dsn(user=WRITER, password=WRITER_PASSWORD, db=name),
    )
    install(db.admin_dsn, writer_role=WRITER, writer_password=WRITER_PASSWORD)
    yield db


@pytest.fixture
def vault(openbao) -> hvac.Client:  # type: ignore[no-untyped-def]
    return hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=5)


@pytest.fixture
def transit_signer(vault: hvac.Client) -> VaultTransitSigner:
    name = f"stella-evidence-{uuid.uuid4().hex[:8]}"
    ensure_transit_key(vault, name)
    return VaultTransitSigner(vault, name)
