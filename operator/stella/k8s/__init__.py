"""Thin access to the Kubernetes API with the official client (no kopf here)."""
