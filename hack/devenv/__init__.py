"""Real local components for development, tests and the demo, all on 127.0.0.1.

Nothing here is a mock: each class starts the real program (kube-apiserver, etcd, kwok,
OpenBao, the distribution registry, PostgreSQL) and stops it without leaving a process.
"""
