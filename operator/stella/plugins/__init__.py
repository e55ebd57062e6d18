"""Workflow plugins (threat T7): signed manifests, declared capabilities, a wasmtime sandbox.

Never imports kopf, the handlers or the engine (an import-linter contract): the engine
calls this package, not the other way round.
"""
