"""Layer 7, operator tasks a command runs on given targets: health, the failover drill and its
writers and fault injection, backup and restore."""
