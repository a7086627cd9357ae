"""ASGI middlewares: the edge (request id, rate limit, body limit, access log) and auth (after routing)."""
