"""Layer 6, repairing what an interrupted move or a failover left: fix (unserved and open
slots) and failback (the planned masters back)."""
