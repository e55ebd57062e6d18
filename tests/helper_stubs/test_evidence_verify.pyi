"""For mypy only. test_evidence_verify_canonical imports its neighbour as
`test_evidence_verify` (tests/unit/evidence/conftest.py puts that directory on sys.path);
mypy knows the file as tests.unit.evidence.test_evidence_verify, so this stub names it."""

from tests.unit.evidence.test_evidence_verify import _world as _world
