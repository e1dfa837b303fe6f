"""Layer 4, making a cluster as planned: formation (meet, slots, replicas), live settings,
password rotation and ACL users, a node's handover before it is replaced."""
