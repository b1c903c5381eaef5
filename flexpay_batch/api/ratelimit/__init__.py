"""api.ratelimit."""
