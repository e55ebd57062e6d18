"""Stella: a Kubernetes-native release orchestrator.

The package is layered (enforced by import-linter, see pyproject.toml):
models -> policy -> secrets -> registry/evidence -> agents -> handlers -> cli.
"""

__version__ = "0.2.0"
GROUP = "stella.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
