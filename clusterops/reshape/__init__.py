"""Layer 5, moving slots: the reshape plan (pure), the key mover (MIGRATE), scaling a live
cluster to a new plan, and rebalancing."""
