"""Layer 1, the vocabulary: planned nodes and slot ranges (model), errors and exit codes,
deadlines and polling, units, child-process environments. Imports nothing else of clusterops."""
