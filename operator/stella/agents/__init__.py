"""Deployment agents (threats T2, T3, T8): one-time enrolment, the agents' CA in Vault's
PKI engine, mTLS sessions with rotating refresh tokens, and the agent's own client.

Built: enrollment.py (registration tokens), ca.py (CSR signing), tokens.py (sessions),
hub.py (what an agent may ask, tasks included), kube_store.py and cache.py (Agents and
AgentTasks on the API server, watched), client.py and executor.py (the agent side). The
engine writes the AgentTasks (engine/agent_dispatch.py, engine/agent_promotion.py).
"""
