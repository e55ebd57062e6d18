"""For mypy only. tests/unit/evidence/conftest.py puts its directory on sys.path, so
tests import its helper as `evidence_fakes`; mypy knows that file as
tests.unit.evidence.evidence_fakes (adding the directory to mypy_path would clash
the conftest.py files), so this stub names it."""

from tests.unit.evidence.evidence_fakes import *  # noqa: F403
