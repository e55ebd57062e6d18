"""Supply-chain checks before deploy and Stella's release passport (issue 17).

* :mod:`.keys` — trusted public keys (cosign's PEM keys) and their signatures;
* :mod:`.cosign` — cosign's storage and wire formats: ``sha256-<hex>.sig`` / ``.att`` tags,
  the simple-signing payload, DSSE envelopes of in-toto Statements;
* :mod:`.bundle` — Sigstore bundles (v0.3): keyed ones verified here, certificate ones
  through sigstore-python against a trusted root;
* :mod:`.provenance` — SLSA provenance (v1 and v0.2): builder id, source repository,
  source revision;
* :mod:`.check` — what the engine calls before a deploy: an image's signatures and
  provenance against an Environment's policy, every outcome a report;
* :mod:`.passport` — after a promotion: a SLSA Verification Summary and Stella's approval
  predicate, signed with the evidence key and attached to the image as cosign does.

Nothing here imports kopf or the handlers; the registry is reached only through
:mod:`stella.registry`.
"""
