"""For mypy only. tests/unit/cli/conftest.py puts its directory on sys.path, so
tests import its helper as `cli_fakes`; mypy knows that file as
tests.unit.cli.cli_fakes (adding the directory to mypy_path would clash
the conftest.py files), so this stub names it."""

from tests.unit.cli.cli_fakes import *  # noqa: F403
