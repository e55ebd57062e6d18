"""There is a first-ten-minutes guide (docs/guides/) for each role, and the index links
each one. That their commands parse with today's CLI and name people of the demo is
checked for every doc in test_doc_commands.py; tests/e2e/test_docs_e2e.py runs them and
tests/e2e/test_personas_e2e.py checks what they do."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
ROLES = ("platform-engineer", "requester", "approver", "auditor")


def test_there_is_a_guide_per_role() -> None:
    names = {p.stem for p in GUIDES}
    assert set(ROLES) <= names
    index = (ROOT / "docs" / "guides" / "README.md").read_text()
    for role in ROLES:
        assert f"({role}.md)" in index
