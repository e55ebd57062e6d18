"""Deployment agents (threats T2, T3, T8): one-time enrolment, the agents' CA in Vault's
PKI engine, mTLS sessions with rotating refresh tokens, and the agent's own client.

Built: enrollment.py (registration tokens), ca.py (CSR signing), tokens.py (sessions),
hub.py (what an agent may ask), kube_store.py (Agents on the API server), client.py (the
agent side). Not yet: task dispatch to agents — the engine still reports Environments
whose targets select agents as Blocked (AgentTargetsUnsupported).
"""
