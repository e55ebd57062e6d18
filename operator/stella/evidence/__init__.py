"""Evidence: signed in-toto packets in DSSE envelopes, hash-chained per environment,
stored as immutable ConfigMaps and in an external append-only log, verifiable offline.

The operator calls one thing: :class:`stella.evidence.recorder.Recorder` ``.record(event)``.
Everything else here is the machinery behind it and behind ``stella evidence ...``.
"""
