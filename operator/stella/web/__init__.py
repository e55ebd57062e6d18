"""`stella web`: the gateway tier's console, its own process.

It reads the cluster through its own synced view (stella.k8s.informer), never through the
operator's process, and acts as the person: every write goes to the API server with the
person's own bearer token, so admission stamps their identity and RBAC and separation of
duties apply exactly as with kubectl. Sessions, CSRF and the security headers are pure
modules (sessions, csrf, headers), as are the pages, pictures, quotas and rollback plans;
app (reads), write_routes and evidence_routes are the aiohttp glue.
"""
