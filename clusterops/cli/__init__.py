"""Layer 8, the command line (`python -m clusterops ...`): argument parsing, targets from stack
outputs or flags, one module per command. Nothing below imports it."""
