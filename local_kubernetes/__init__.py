"""A three-node Kubernetes cluster on this one machine, from Kubernetes' own components
(scripts/local-kubernetes.sh; README, *Kubernetes*)."""
