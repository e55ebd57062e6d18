"""Deployment agents: registration, mTLS agent API, task credentials, the agent itself.

Not built yet. The engine reports Environments whose targets select agents as Blocked
(reason AgentTargetsUnsupported) rather than pretending to deploy there.
"""
