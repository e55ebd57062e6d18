"""The promotion engine: turns observed objects into decisions (via stella.policy) and
decisions into API writes. It never imports kopf; handlers call it."""
