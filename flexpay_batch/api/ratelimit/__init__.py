"""api.ratelimit: the class limiter (limiter), its adaptive rate (aimd), where its state
lives (store: the seam; inprocess: the in-process default) and the pause gate (gate)."""
