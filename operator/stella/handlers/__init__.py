"""kopf glue. `stella.handlers.main` registers every handler; each is one line of delegation."""
