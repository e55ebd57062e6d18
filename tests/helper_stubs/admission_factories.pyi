"""For mypy only. tests/unit/admission/conftest.py puts its directory on sys.path, so
tests import its helper as `admission_factories`; mypy knows that file as
tests.unit.admission.admission_factories (adding the directory to mypy_path would clash
the conftest.py files), so this stub names it."""

from tests.unit.admission.admission_factories import *  # noqa: F403
