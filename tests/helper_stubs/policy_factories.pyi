"""For mypy only. tests/unit/policy/conftest.py puts its directory on sys.path, so
tests import its helper as `policy_factories`; mypy knows that file as
tests.unit.policy.policy_factories (adding the directory to mypy_path would clash
the conftest.py files), so this stub names it."""

from tests.unit.policy.policy_factories import *  # noqa: F403
