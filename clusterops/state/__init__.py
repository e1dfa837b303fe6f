"""Layer 3, the cluster as it is, read-only: the majority's slot map and checks, verification of
a formed cluster, the live read the repairs act on, open slots and the one rule that finishes
them. Imports the core and node layers."""
