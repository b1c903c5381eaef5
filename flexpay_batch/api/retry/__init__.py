"""api.retry."""
