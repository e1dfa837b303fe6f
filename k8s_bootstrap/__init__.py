"""The Kubernetes bootstrap Job: forms and validates the cluster with clusterops, in-cluster."""
